"""The published level: level probabilities, the cost-based decision, the level head end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import F, array_config, learnable_frame, problem, tiny_config, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aqi.cli import app
from aqi.concentrations import decide_level, level_probabilities
from aqi.evaluate import evaluate_station
from aqi.ingest import ingest
from aqi.levels import STANDARDS
from aqi.losses import LevelLoss, tf
from aqi.model import build_model
from aqi.train import train_station
from aqi.trained import live_folder, predict

US = STANDARDS["us-epa-2024"]
runner = CliRunner()
exceedances = st.lists(st.floats(0, 1), min_size=5, max_size=5)


@given(exceedances)
def test_level_probabilities_are_a_distribution(e):
    p = level_probabilities(np.asarray(e))
    assert p.shape == (6,) and (p >= -1e-12).all() and p.sum() == pytest.approx(1.0)


@settings(max_examples=60)
@given(st.lists(exceedances, min_size=1, max_size=30))
def test_unit_miss_cost_is_the_most_probable_level_and_detections_grow_with_it(es):
    probs = level_probabilities(np.sort(np.asarray(es), axis=-1)[:, ::-1])
    chosen, p = decide_level(probs, US.unhealthy, 1.0)
    np.testing.assert_array_equal(p, probs.max(-1))
    calls = [(decide_level(probs, US.unhealthy, c)[0] >= US.unhealthy).sum() for c in (1, 2, 4, 8)]
    assert calls == sorted(calls)  # a dearer miss never makes fewer 'unhealthy' calls


def test_level_head_probabilities_decrease_and_the_ordinal_loss_rewards_them():
    cfg = array_config().replace(model={"head": "level"})
    model = build_model(cfg, F, (40.0, 30.0))
    x, y = problem()
    out = predict(model, x * 20)
    assert out.shape == (70, 3, 1 + len(US.edges))
    p = out[..., 1:]
    assert ((p >= 0) & (p <= 1)).all() and (np.diff(p, axis=-1) <= 1e-7).all()
    loss = LevelLoss.from_standard(US, cfg.loss, "level")
    right = np.concatenate([y[..., None], (y[..., None] >= np.asarray(US.edges)) * 0.98 + 0.01], -1)
    wrong = right.copy()
    wrong[..., 1:] = 1 - wrong[..., 1:]
    yt = tf.constant(y)
    assert float(tf.reduce_mean(loss.call(yt, right))) < float(tf.reduce_mean(loss.call(yt, wrong)))
    assert np.isfinite(loss.call(yt, tf.constant(np.nan_to_num(wrong, nan=0.0)))).all()


@pytest.fixture(scope="module")
def level_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("lv")
    ingest([write_csv(learnable_frame(), d / "raw" / "s.csv")], d / "data")
    cfg = tiny_config(epochs=2).replace(model={"head": "level"})
    train_station(d / "data", "Synth", cfg, quiet=True, echo=lambda *a: None)
    return d / "data"


def test_evaluate_scores_the_published_level_and_its_trade_off(level_store):
    m = evaluate_station(level_store, "Synth")
    assert len(m["decided"]["level_accuracy"]) == 6 and m["decided"]["miss_cost"] == 1.0
    pods = [r["pod"] for r in m["decision_curve"]]
    assert pods == sorted(pods) and {"far", "csi", "level_accuracy"} <= set(m["decision_curve"][0])
    png = level_store / "reports" / "evaluate" / "Synth" / "decision_curve.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_forecast_publishes_a_level_with_its_probability(level_store):
    args = ["--data-dir", str(level_store), "forecast", "--station", "Synth", "--format", "json"]
    rows = json.loads(runner.invoke(app, args).output)[0]["forecasts"]
    assert all(0 < r["level_probability"] <= 1 and "point_level" in r for r in rows)
    warned = json.loads(runner.invoke(app, [*args, "--miss-cost", "50"]).output)[0]["forecasts"]
    assert all(
        w["level"] >= r["level"] or r["level"] >= US.unhealthy for r, w in zip(rows, warned, strict=True)
    )
    for bad in ("0", "inf"):
        r = runner.invoke(app, [*args, "--miss-cost", bad])
        assert r.exit_code == 2 and f"--miss-cost {float(bad)}" in r.output and r.output.count("\n") == 1


def test_a_level_head_trains_with_its_log_loss_switched_off():
    cfg = array_config().replace(model={"head": "level"}, loss={"level_weight": 0.0})
    x, y = problem()
    out = predict(build_model(cfg, F, (40.0, 30.0)), x)
    loss = LevelLoss.for_model(US, cfg)
    assert loss.level_head and np.isfinite(loss.call(tf.constant(y), tf.constant(out)).numpy()).all()


def test_a_corrupt_model_record_is_one_line(level_store, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(level_store, d)
    (live_folder(d / "models" / "Synth") / "meta.json").write_text("{not json")
    r = runner.invoke(app, ["--data-dir", str(d), "forecast", "--station", "Synth"])
    assert r.exit_code == 2 and "meta.json: corrupt" in r.output and r.output.count("\n") == 1
