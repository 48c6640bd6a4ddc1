"""The cross-station summary, the pooled GBM baseline's cache, and the CPU budget."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import learnable_frame, tiny_config, write_csv
from hypothesis import given
from hypothesis import strategies as st

from aqi import cpus, gbm, shards
from aqi.config import AqiError
from aqi.ingest import ingest
from aqi.store import read_station
from aqi.summary import by_horizon, merged
from aqi.train import train_station
from aqi.trained import load
from aqi.windows import complete_grid


def row(mae: float, acc: float, h: int = 24) -> dict:
    per = {"by_horizon": {"mae": [mae] * h, "level_accuracy": [acc] * h}}
    methods = ("model", "gbm", "persistence", "seasonal_naive", "climatology")
    out = {
        m: {"mae": mae + i, "level_accuracy": acc - i / 10, **_shift(per, i)}
        for i, m in enumerate(methods)
    }
    return out


def _shift(per: dict, i: int) -> dict:
    b = per["by_horizon"]
    return {
        "by_horizon": {
            "mae": [v + i for v in b["mae"]],
            "level_accuracy": [v - i / 10 for v in b["level_accuracy"]],
        }
    }


def test_by_horizon_means_winners_and_skill():
    h = by_horizon({"A": row(10.0, 0.6), "B": row(20.0, 0.4)})
    assert h["horizons"] == [1, 3, 6, 12, 24, "mean"]
    assert h["mae"]["model"][0] == 15.0 and h["mae"]["gbm"][-1] == 16.0
    assert h["winner"]["mae"] == ["model"] * 6 and h["winner"]["level_accuracy"] == ["model"] * 6
    assert h["skill_vs_persistence"][0] == pytest.approx(1 - 15 / 17, abs=1e-4)


def test_single_station_results_update_their_row_only(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"A": {"x": 1}, "B": {"x": 2}}))
    assert merged(path, {"B": {"x": 3}, "C": {"x": 4}}) == {"A": {"x": 1}, "B": {"x": 3}, "C": {"x": 4}}
    path.write_text("{not json")
    assert merged(path, {"C": {"x": 4}}) == {"C": {"x": 4}}


def test_cpu_budget_follows_slurm_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert cpus.available() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert cpus.available() >= 1
    assert cpus.limit(1) == 1 and cpus.os.environ["OMP_NUM_THREADS"] == "1"
    assert cpus.budget() == 1  # the LiteRT forward pass keeps to the limit
    monkeypatch.setenv("OMP_NUM_THREADS", "none")
    assert cpus.budget() == cpus.available()
    with pytest.raises(AqiError, match="--threads 0"):
        cpus.limit(0)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    with pytest.raises(AqiError, match=r"--threads 4: give 1\.\.3, the CPUs this job may use"):
        cpus.limit(4)


def test_openmp_threads_sleep_while_they_wait_unless_the_job_says_otherwise(monkeypatch):
    for name in (*cpus.THREAD_ENV, "TF_NUM_INTEROP_THREADS"):  # restored after the test
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "x")  # so that monkeypatch restores what was there
    monkeypatch.delenv("OMP_WAIT_POLICY")
    cpus.limit(1)
    assert cpus.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # a shared node's other jobs
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a job alone on its node may choose
    cpus.limit(1)
    assert cpus.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.fixture(scope="module")
def two_stations(tmp_path_factory):
    d = tmp_path_factory.mktemp("gbm")
    csvs = [write_csv(learnable_frame(s, seed=i), d / f"{s}.csv") for i, s in enumerate(("Ka", "Kb"))]
    ingest(csvs, d / "data")
    train_station(d / "data", "Ka", tiny_config(epochs=1), quiet=True, echo=lambda *a: None)
    return d


def test_pooled_gbm_is_cached_and_refitted_when_the_data_change(two_stations):
    d, said = two_stations / "data", []
    tm = load(d, "Ka")
    fit = gbm.pooled_gbm(d, tm.config.window, tm.split, 1, echo=said.append)
    assert any("fitting on 2 station(s)" in s for s in said) and fit.stations == ["Ka", "Kb"]
    said.clear()
    cached = gbm.pooled_gbm(d, tm.config.window, tm.split, 1, echo=said.append)
    assert not said  # loaded, not fitted
    df = read_station(d, "Ka")
    x = gbm.origin_features(complete_grid(df), tm.timezone, 3, tm.windows(df).part("test").origin)
    np.testing.assert_allclose(fit.predict("Ka", x), cached.predict("Ka", x), rtol=1e-6)
    key = gbm.cache_key(d, ["Ka", "Kb"], tm.config.window, tm.split, gbm.GbmConfig())
    changed = learnable_frame("Kb", seed=7).iloc[: 24 * 100]
    ingest([write_csv(changed, two_stations / "kb2.csv")], d, replace=True)
    assert gbm.cache_key(d, ["Ka", "Kb"], tm.config.window, tm.split, gbm.GbmConfig()) != key
    with pytest.raises(AqiError, match="not among the stations"):
        fit.predict("Nowhere", x)


def test_features_use_only_hours_at_or_before_the_origin():
    import pandas as pd
    from conftest import TZ, series

    grid = complete_grid(series(200))
    origins = grid.index[[80, 150]]
    x = gbm.origin_features(grid, TZ, 3, origins)
    assert list(x["pm25_lag0"]) == [81.0, 151.0] and list(x["pm25_lag23"]) == [58.0, 128.0]
    assert list(x["pm25_max72"]) == [81.0, 151.0] and x["pm25_mean3"].iloc[0] == pytest.approx(80.0)
    assert isinstance(x, pd.DataFrame) and np.isfinite(x.to_numpy()).all()


def test_other_models_are_scored_on_the_same_pairs(two_stations):
    from typer.testing import CliRunner

    from aqi.cli import app

    d = two_stations / "data"
    args = ["--data-dir", str(d), "evaluate", "--station", "Ka", "--format", "json"]
    r = CliRunner().invoke(app, [*args, "--model", f"twin={d / 'models'}"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["stations"]["Ka"]
    assert (
        row["twin"]["by_horizon"]["mae"] == row["model"]["by_horizon"]["mae"]
    )  # same model, same pairs
    for bad, message in [
        ("gbm=x", "NAME a word, not"),
        ("y_true=x", "NAME a word, not"),
        ("../x=x", "NAME a word, not"),
        ("nofolder", "use NAME=DIR"),
        ("a=/no/such", "no trained model in /no/such"),
        (f"a={d}", "no trained model in"),  # the data folder, not its models/
        (f"b={d / 'models'}", "'b' is given twice"),
    ]:
        twice = ["--model", bad] if bad.startswith("b=") else []
        r = CliRunner().invoke(app, [*args, "--model", bad, *twice])
        assert r.exit_code == 2 and message in r.output and r.output.count("\n") == 1


def test_a_model_of_other_pairs_is_refused_before_the_gbm_is_fitted(two_stations, monkeypatch):
    from typer.testing import CliRunner

    import aqi.evaluate as evaluate
    from aqi.cli import app

    d, other = two_stations / "data", two_stations / "other"
    shutil.copytree(d / "store", other / "store")
    cfg = tiny_config(epochs=1).replace(window={"horizon": 3})
    train_station(other, "Ka", cfg, quiet=True, echo=lambda *a: None)
    monkeypatch.setattr(evaluate.GbmCache, "get", lambda *a: pytest.fail("GBM fitted before refusing"))
    args = ["--data-dir", str(d), "evaluate", "--station", "Ka", "--model", f"h3={other / 'models'}"]
    r = CliRunner().invoke(app, args)
    assert (
        r.exit_code == 2
        and "--model h3: Ka's model there has other split dates or another --horizon" in r.output
    )


@given(
    st.lists(st.text("abcdefgh", min_size=1, max_size=6), unique=True, max_size=40), st.integers(1, 9)
)
def test_shards_are_disjoint_cover_everything_and_balance(names, n):
    parts = [shards.pick(names, f"{i}/{n}") for i in range(n)]
    flat = [s for p in parts for s in p]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("spec", ["2/2", "-1/3", "a/b", "1", "0/0"])
def test_bad_shard_specs(spec):
    with pytest.raises(AqiError, match="--shard"):
        shards.parse(spec)


def test_n_forecast_jobs_cover_every_station_once(two_stations):
    from typer.testing import CliRunner

    from aqi.cli import app

    d = two_stations / "data"
    train_station(d, "Kb", tiny_config(epochs=1), quiet=True, echo=lambda *a: None)
    seen = []
    for i in range(2):
        args = [
            "--data-dir",
            str(d),
            "forecast",
            "--station",
            "all",
            "--shard",
            f"{i}/2",
            "--format",
            "json",
        ]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        seen += [f["station"] for f in json.loads(r.output)]
    assert sorted(seen) == ["Ka", "Kb"]
    empty = ["--data-dir", str(d), "forecast", "--station", "all", "--shard", "2/3"]  # 2 stations
    r = CliRunner().invoke(app, [*empty, "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.output) == []
    r = CliRunner().invoke(app, empty)
    assert r.exit_code == 0 and "no forecasts: none of the trained stations is in this" in r.output
    r = CliRunner().invoke(app, ["--data-dir", str(d), "evaluate", "--station", "all", "--shard", "2/3"])
    assert r.exit_code == 0 and "--shard 2/3: none of the trained stations; nothing to do" in r.output
    r = CliRunner().invoke(app, ["--data-dir", str(d), "forecast", "--station", "Ka", "--shard", "0/2"])
    assert r.exit_code == 2 and "--shard 0/2: goes with --station all" in r.output
