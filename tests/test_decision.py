"""The published level: level probabilities, the cost-based decision, the level head end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import F, array_config, learnable_frame, problem, tiny_config, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aqi.cli import app
from aqi.concentrations import decide_level, fit_temperature, level_probabilities, log_loss, temper
from aqi.evaluate import evaluate_station
from aqi.ingest import ingest
from aqi.levels import STANDARDS, level
from aqi.losses import LevelLoss, tf
from aqi.model import build_model
from aqi.prediction import STAY_GRID, Prediction, fit_stay, publish
from aqi.train import train_station
from aqi.trained import live_folder, load_from, predict

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


@settings(max_examples=60)
@given(st.lists(exceedances, min_size=1, max_size=20), st.floats(0.2, 5.0))
def test_tempering_keeps_a_distribution_and_its_most_probable_level(es, t):
    probs = level_probabilities(np.sort(np.asarray(es), axis=-1)[:, ::-1])[:, None]  # (N, 1, K)
    out = temper(probs, [t])
    assert np.allclose(out.sum(-1), 1.0) and (out >= 0).all()
    top = probs.max(-1, keepdims=True) - probs < 1e-9  # a tie may go either way
    assert np.take_along_axis(top, out.argmax(-1)[..., None], -1).all()
    np.testing.assert_allclose(
        temper(probs, [1.0]), np.clip(probs, 1e-6, 1) / np.clip(probs, 1e-6, 1).sum(-1, keepdims=True)
    )


def test_fitted_temperatures_undo_an_over_and_an_under_confident_hour():
    rng = np.random.default_rng(0)
    true = rng.dirichlet(np.ones(4) * 0.7, size=20000)  # (N, K), the levels' real chances
    observed = np.array([rng.choice(4, p=p) for p in true])[:, None].repeat(2, 1)  # (N, 2)
    shown = np.stack([temper(true[:, None], [0.5])[:, 0], temper(true[:, None], [2.0])[:, 0]], 1)
    t = fit_temperature(shown, observed, np.ones((20000, 2), bool))
    assert t[0] == pytest.approx(2.0, rel=0.1) and t[1] == pytest.approx(0.5, rel=0.1)
    fixed = temper(shown, t)
    assert log_loss(fixed, observed).mean() < log_loss(shown, observed).mean()
    assert fit_temperature(shown, observed, np.zeros((20000, 2), bool)) == [1.0, 1.0]


def test_only_a_level_head_prediction_is_tempered():
    exceed = np.array([[[0.9, 0.6, 0.2, 0.1, 0.05, 0.01]]])  # (1, 1, E) at US breakpoints
    raw = Prediction(np.zeros((1, 1)), exceed=exceed, edges=tuple(US.edges))
    hot = Prediction(np.zeros((1, 1)), exceed=exceed, edges=tuple(US.edges), temperature=(3.0,))
    p, q = raw.level_probabilities(US), hot.level_probabilities(US)
    assert q.max() < p.max() and q.argmax() == p.argmax()
    assert hot.decided(US)[1][0, 0] == pytest.approx(q.max())


def _at_origin(exceed, origin) -> Prediction:
    """A level-head forecast of (N, H, E) exceedances at US breakpoints, from PM2.5 `origin` (N,)."""
    n, h = exceed.shape[:2]
    return Prediction(np.zeros((n, h)), exceed=exceed, edges=tuple(US.edges), origin=np.asarray(origin))


def test_the_level_at_the_origin_is_published_only_within_its_margin():
    # P(level) = 0.1, 0.5, 0.4, 0, 0, 0: the model calls level 1; PM2.5 now 40 µg/m³ is level 2
    exceed = np.array([[[0.9, 0.4, 0.0, 0.0, 0.0]] * 3])  # (1, 3, E)
    pred = _at_origin(exceed, [40.0])
    levels, p = publish(pred, US, 1.0, None, [0.0, 0.05, 0.15])
    np.testing.assert_array_equal(levels, [[1, 1, 2]])  # 0.4 is within 0.15 of 0.5, not within 0.05
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.4]])
    unchanged = publish(pred, US, 1.0)
    np.testing.assert_array_equal(publish(pred, US, 1.0, None, [0.0] * 3)[0], unchanged[0])
    no_origin = dataclasses.replace(pred, origin=None)
    np.testing.assert_array_equal(publish(no_origin, US, 1.0, None, [0.2] * 3)[0], unchanged[0])


@settings(max_examples=40)
@given(st.lists(exceedances, min_size=1, max_size=20), st.floats(0, 300))
def test_a_wider_margin_never_publishes_the_level_at_the_origin_less_often(es, now):
    ex = np.sort(np.asarray(es), axis=-1)[:, ::-1]
    pred = _at_origin(ex[:, None], np.full(len(es), now))
    same = [(publish(pred, US, 1.0, None, [m])[0] == level(now, US)).sum() for m in STAY_GRID]
    assert same == sorted(same)


def test_the_stay_margin_of_most_hits_is_chosen_per_hour():
    # the model prefers level 1 (0.5) over level 2, the level at the origin (0.4), at both hours;
    # hour 0's observations side with the model, hour 1's with persistence (8 of 10)
    exceed = np.array([[[0.9, 0.4, 0.0, 0.0, 0.0]] * 2] * 10)  # (10, 2, E)
    y = np.stack([np.full(10, 20.0), np.r_[np.full(8, 40.0), np.nan, 20.0]], 1)  # µg/m³
    assert fit_stay(_at_origin(exceed, np.full(10, 40.0)), US, y, None) == [0.0, 0.1]


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
    assert all(0 < p <= 1 for p in m["decided"]["mean_probability"])
    assert all(v > 0 for v in m["decided"]["level_log_loss"])
    temperature = load_from(level_store / "models" / "Synth", "Synth").info["level_temperature"]
    assert len(temperature) == 6 and all(0.2 <= t <= 5 for t in temperature)
    margins = load_from(level_store / "models" / "Synth", "Synth").info["stay_margin"]
    assert len(margins) == 6 and set(margins) <= set(STAY_GRID)
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
