"""Evaluation against baselines, and forecasting, on a tiny trained model of synthetic data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TZ, learnable_frame, series, tiny_config, tree_digest, write_csv
from typer.testing import CliRunner

from aqi import baselines
from aqi.cli import app
from aqi.config import WindowConfig
from aqi.evaluate import METHODS, evaluate_station
from aqi.ingest import ingest
from aqi.levels import STANDARDS, level
from aqi.report import summary_markdown
from aqi.train import train_station
from aqi.windows import build_windows, complete_grid

runner = CliRunner()
US = STANDARDS["us-epa-2024"]


@pytest.fixture(scope="module")
def trained(synth_store):
    train_station(synth_store, "Synth", tiny_config(epochs=2), quiet=True, echo=lambda *a: None)
    return synth_store


def test_baselines_use_only_the_past_and_the_train_split():
    cfg = WindowConfig(
        lookback=4,
        horizon=30,
        train_end="2016-01-04 23:00",
        val_end="2016-01-06 23:00",
        test_end="2016-01-10 23:00",
    )
    df = series(24 * 10)  # PM2.5 at hour i is i + 1
    w = build_windows(df, cfg, TZ)
    grid = complete_grid(df)
    pos = (w.last_pm25 - 1).astype(int)  # origin positions
    sn = baselines.seasonal_naive(w, grid, TZ, 3)
    ok = pos >= 24
    assert (sn[ok, 0] == pos[ok] + 1 + 1 - 24).all()  # h=1: t+1-24
    assert (sn[ok, 26] == pos[ok] + 1 + 27 - 48).all()  # h=27: t+27-48
    assert (sn[:, :24] <= w.last_pm25[:, None]).all()  # never a value after the origin
    assert (baselines.persistence(w) == w.last_pm25[:, None]).all()
    clim = baselines.climatology(w, grid, TZ, pd.Timestamp(cfg.train_end, tz=TZ))
    assert clim.max() <= 96  # the train split holds hours 1..96 only


def test_evaluate_scores_every_method_on_the_same_pairs(trained):
    m = evaluate_station(trained, "Synth")
    assert set(m["methods"]) == set(METHODS) and m["horizons"] == list(range(1, 7))
    for v in m["methods"].values():
        assert len(v["mae"]) == 6 and len(v["level_accuracy"]) == 6
    p = pd.read_parquet(trained / "reports" / "evaluate" / "Synth" / "predictions.parquet")
    assert len(p) == m["test"]["windows"] * 6
    assert p[list(METHODS)].notna().all().all()
    assert (p["target_time"] - p["origin"] == pd.to_timedelta(p["horizon"], unit="h")).all()
    assert m["methods"]["model"]["mae"][-1] < m["methods"]["climatology"]["mae"][-1]


def test_cli_evaluate_writes_report(trained):
    r = runner.invoke(app, ["--data-dir", str(trained), "evaluate", "--station", "Synth", "-q"])
    assert r.exit_code == 0, r.output
    root = trained / "reports" / "evaluate"
    assert "Synth" in json.loads((root / "summary.json").read_text())
    assert "| Synth |" in (root / "summary.md").read_text()
    for png in ("mae_vs_horizon", "level_accuracy_vs_horizon", "confusion", "fortnight"):
        assert (root / "Synth" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_without_a_test_split_is_refused_before_the_gbm_is_fitted(
    synth_store, tmp_path, monkeypatch
):
    """A model trained for operation (the split moved to the end of the data, no test windows):
    forecasts, but `aqi evaluate` says so in one line, exit 2, before minutes of GBM fitting."""
    import aqi.gbm

    d = tmp_path / "data"
    shutil.copytree(synth_store, d)
    latest = {"test_months": 0, "val_end": None, "test_end": None}  # validation to the last hour
    cfg = tiny_config(epochs=1).replace(window=latest)
    train_station(d, "Synth", cfg, quiet=True, echo=lambda *a: None)
    assert runner.invoke(app, ["--data-dir", str(d), "forecast", "--station", "Synth"]).exit_code == 0

    def no_fit(*a, **k):
        raise AssertionError("the GBM baseline was fitted")

    monkeypatch.setattr(aqi.gbm, "pooled_gbm", no_fit)
    before = tree_digest(d)
    r = runner.invoke(app, ["--data-dir", str(d), "evaluate", "--station", "Synth", "-q"])
    assert r.exit_code == 2 and "station Synth: no test windows after" in r.output, r.output
    assert "--test-months 0?" in r.output
    assert r.output.count("\n") == 1 and tree_digest(d) == before


def test_forecast_json_schema_and_backtest(trained):
    r = runner.invoke(
        app,
        [
            "--data-dir",
            str(trained),
            "forecast",
            "--station",
            "Synth",
            "--format",
            "json",
            "--at",
            "2016-04-10T08:00",
        ],
    )
    assert r.exit_code == 0, r.output
    [res] = json.loads(r.output)
    assert set(res) == {
        *("station", "issued_at", "standard", "unit", "model", "forecasts"),
        *("last_observation_age_h", "missing_input_share"),
    }
    assert res["issued_at"] == "2016-04-10T08:00:00+08:00"
    rows = res["forecasts"]
    assert [x["horizon"] for x in rows] == list(range(1, 7))
    assert rows[0]["target_time"] == "2016-04-10T09:00:00+08:00"
    for x in rows:
        assert x["point_level"] == level(x["pm25"], US)  # the default level head also publishes
        assert x["level_name"] == US.names[x["level"]] and x["pm25"] >= 0  # its decided level
        assert 0 < x["level_probability"] <= 1


def test_forecast_table_csv_and_output_file(trained, tmp_path):
    r = runner.invoke(app, ["--data-dir", str(trained), "forecast", "--station", "Synth"])
    assert r.exit_code == 0 and "PM2.5 forecast" in r.output
    out = tmp_path / "f.csv"
    r = runner.invoke(
        app,
        [
            "--data-dir",
            str(trained),
            "forecast",
            "--station",
            "all",
            "--format",
            "csv",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0 and out.read_text().count("\n") == 7
    for name in ("g.csv", "g.json"):  # without --format, the file's suffix says which
        cmd = ["--data-dir", str(trained), "forecast", "--station", "Synth", "--output"]
        assert runner.invoke(app, [*cmd, str(tmp_path / name)]).exit_code == 0
    assert (tmp_path / "g.csv").read_text().startswith("station,")
    assert json.loads((tmp_path / "g.json").read_text())[0]["station"] == "Synth"
    r = runner.invoke(app, [*cmd, "-", "--format", "CSV"])  # '-' is the terminal
    assert r.exit_code == 0 and r.output.startswith("station,") and not (tmp_path / "-").exists()
    (tmp_path / "link.csv").symlink_to(tmp_path / "g.csv")  # the link's target is rewritten
    (tmp_path / "g.csv").write_text("old")
    assert runner.invoke(app, [*cmd, str(tmp_path / "link.csv")]).exit_code == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "g.csv").read_text().startswith("station,")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--station", "Nope"], "run `aqi train --station Nope`"),
        (["--station", "Synth", "--at", "2031-01-01T00:00"], "--at 2031-01-01T00:00: outside the data"),
        (["--station", "Synth", "--at", "yesterday-ish"], "--at 'yesterday-ish': not a time"),
        (["--station", "Synth", "--format", "xml"], "--format 'xml'"),
    ],
)
def test_forecast_errors(trained, args, message):
    r = runner.invoke(app, ["--data-dir", str(trained), "forecast", *args])
    assert r.exit_code == 2 and message in r.output and r.output.count("\n") == 1


def test_forecast_all_reports_a_stale_station_and_forecasts_the_rest(tmp_path):
    gap = learnable_frame("Gappy")
    gap.loc[gap.index[-30:], "PM2.5"] = np.nan  # 30 hours missing: past the 24 h staleness limit
    ingest(
        [write_csv(learnable_frame(), tmp_path / "a.csv"), write_csv(gap, tmp_path / "b.csv")],
        tmp_path / "d",
    )
    for st in ("Synth", "Gappy"):
        train_station(tmp_path / "d", st, tiny_config(epochs=1), quiet=True, echo=lambda *a: None)
    r = runner.invoke(
        app, ["--data-dir", str(tmp_path / "d"), "forecast", "--station", "all", "--format", "json"]
    )
    assert r.exit_code == 2
    assert "error: Gappy: PM2.5 at " in r.output and "is stale" in r.output
    assert '"station": "Synth"' in r.output and '"station": "Gappy"' not in r.output


def test_summary_markdown_rows_and_mean():
    row = {
        m: {"mae": mae, "level_accuracy": acc, "daily_level_accuracy": daily}
        for m, mae, acc, daily in [
            ("model", 30.0, 0.5, 0.6),
            ("gbm", 32.0, 0.45, None),
            ("persistence", 40.0, 0.4, 0.3),
        ]
    }
    other = {k: v | {"mae": v["mae"] + 2} for k, v in row.items()}
    md = summary_markdown({"A": row, "B": other})
    lines = md.splitlines()
    assert "| A | 30.00 | 32.00 | 40.00 | 0.500 | 0.450 | 0.400 | 0.600 | nan |" in lines
    assert "| **mean** | **31.00** | **33.00** | **41.00** | **0.500** |" in md
    assert md.count("| B |") == 1 and "**nan**" in md  # no daily accuracy anywhere: NaN, no warning


@pytest.mark.parametrize("outage, code", [(5, 0), (30, 2)])
def test_forecast_through_an_outage_or_refused_past_the_staleness_limit(trained, tmp_path, outage, code):
    from conftest import learnable_frame, write_csv

    d = tmp_path / "d"
    shutil.copytree(trained, d)
    late = learnable_frame("Late", days=122).iloc[: 120 * 24 + outage]  # Synth's feed is out
    runner.invoke(app, ["--data-dir", str(d), "ingest", str(write_csv(late, tmp_path / "l.csv"))])
    r = runner.invoke(app, ["--data-dir", str(d), "forecast", "--station", "Synth", "--format", "json"])
    assert r.exit_code == code, r.output
    if code:
        assert "stale" in r.stderr and "24 h staleness limit" in r.stderr
        return
    [res] = json.loads(r.stdout)
    assert res["last_observation_age_h"] == outage and res["missing_input_share"] == round(5 / 24, 3)


def test_many_stations_print_one_overview_table(capsys):
    """Past OVERVIEW_AFTER stations the table format is one row per station (worst level, when)."""
    from aqi.forecast_view import OVERVIEW_AFTER, forecast_output

    def result(i):
        rows = [
            {"target_time": f"2017-02-2{6 + h // 24}T{h % 24:02d}:00:00+08:00", "horizon": h + 1,
             "pm25": 10.0 + h, "aqi": 40, "level": int(h in (5, 9)) * 3,
             "level_name": "Unhealthy" if h in (5, 9) else "Good",
             "color": "red" if h in (5, 9) else "green"}
            for h in range(24)
        ]  # fmt: skip
        return {"station": f"S{i:04d}", "issued_at": "2017-02-26T00:00:00+08:00",
                "standard": "us-epa-2024", "model": {"kind": "network"}, "forecasts": rows}  # fmt: skip

    forecast_output([result(i) for i in range(OVERVIEW_AFTER + 1)], "table", None, print)
    out = capsys.readouterr().out
    assert out.count("S00") == OVERVIEW_AFTER + 1 and "PM2.5 forecast issued" not in out
    assert "02-26 05:00" in out and "02-26 09:00" not in out  # the worst level's first hour
    assert "33.0" in out  # the peak point forecast
    forecast_output([result(0)], "table", None, print)
    assert "PM2.5 forecast issued" in capsys.readouterr().out  # few stations: hourly tables
