"""Quantile head, exceedance probabilities and the L-BFGS-B optimizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import F, array_config, learnable_frame, problem, tiny_config, write_csv
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from aqi.cli import app
from aqi.concentrations import exceedance_probability
from aqi.evaluate import evaluate_station
from aqi.ingest import ingest
from aqi.lbfgs import lbfgs_fit
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model
from aqi.train import train_station
from aqi.trained import predict

runner = CliRunner()


def test_quantile_head_never_crosses_and_stays_finite():
    cfg = array_config().replace(model={"head": "quantile", "quantiles": (0.1, 0.5, 0.9)})
    model = build_model(cfg, F, (40.0, 30.0))
    for layer in model.layers:  # push the raw head far out: increments must stay bounded
        if layer.name == "head":
            layer.kernel.assign(layer.kernel * 1e4)
    q = predict(model, problem()[0] * 100)
    assert q.shape == (70, 3, 3) and np.isfinite(q).all()
    assert (np.diff(q, axis=-1) >= 0).all()


def test_pinball_part_of_the_loss():
    loss = LevelLoss(alpha=0.0, scale=1.0, quantiles=(0.1, 0.5, 0.9))
    y = tf.constant([[10.0]])
    pred = tf.constant([[[10.0, 10.0, 10.0]]])
    assert float(loss.pinball(y, pred)[0, 0]) == 0.0
    pred = tf.constant([[[0.0, 10.0, 20.0]]])  # errors +10 (q .1), 0, -10 (q .9)
    assert float(loss.pinball(y, pred)[0, 0]) == pytest.approx((0.1 * 10 + 0.1 * 10) / 3)
    assert float(loss.pinball(tf.constant([[np.nan]]), pred)[0, 0]) == 0.0


@given(st.lists(st.floats(0, 300), min_size=3, max_size=3), st.floats(0, 400), st.floats(0, 50))
def test_exceedance_probability_is_a_survival_function(vals, t, dt):
    v = np.sort(np.asarray(vals))
    p1 = exceedance_probability([0.1, 0.5, 0.9], v, t)
    p2 = exceedance_probability([0.1, 0.5, 0.9], v, t + dt)
    assert 0 <= p2 <= p1 <= 1


def test_lbfgs_reaches_the_least_squares_optimum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1, 4)).astype(np.float32)
    y = x[:, 0] @ np.array([[1.5], [-2.0], [0.5], [3.0]]) + 0.7 + rng.normal(0, 0.1, (200, 1))
    inp = keras.Input((1, 4))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(inp)))

    class Squared:
        def call(self, y_true, y_pred):
            return tf.reduce_mean((y_true - y_pred) ** 2, axis=-1)

    res = lbfgs_fit(model, Squared(), x, y.astype(np.float32), 100)
    design = np.c_[x[:, 0], np.ones(200)]
    exact = np.linalg.lstsq(design, y, rcond=None)[0].ravel()
    got = np.r_[model.layers[-1].kernel.numpy().ravel(), model.layers[-1].bias.numpy()]
    np.testing.assert_allclose(got, exact, atol=1e-3)
    assert res.best_loss == pytest.approx(float(np.mean((design @ exact - y.ravel()) ** 2)), rel=1e-3)


def test_lbfgs_lowers_a_tiny_models_loss_monotonically_under_the_default_strategy():
    cfg = array_config()
    x, y = problem()
    with tf.distribute.get_strategy().scope():
        model = build_model(cfg, F, (40.0, 30.0))
    loss = LevelLoss()
    start = float(np.mean(loss.call(y, predict(model, x))))
    res = lbfgs_fit(model, loss, x, y, 40)
    assert res.iterations > 5
    assert np.all(np.diff(res.losses) <= 1e-7) and res.losses[-1] < 0.5 * start
    end = float(np.mean(loss.call(y, predict(model, x))))
    assert end == pytest.approx(res.best_loss, rel=1e-4)  # the model is left at the best iterate


@pytest.fixture(scope="module")
def quantile_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    ingest([write_csv(learnable_frame(), d / "raw" / "s.csv")], d / "data")
    cfg = tiny_config(epochs=2, finetune_lbfgs=10).replace(model={"head": "quantile"})
    meta = train_station(d / "data", "Synth", cfg, quiet=True, echo=lambda *a: None)
    assert meta["history"][0]["lbfgs"]["iterations"] > 0
    return d / "data"


def test_quantile_model_evaluates_coverage_and_brier(quantile_store):
    m = evaluate_station(quantile_store, "Synth")
    p = m["probabilistic"]
    assert set(p) == {"model", "climatology"}
    assert len(p["model"]["coverage"]) == 6 and 0 < np.mean(p["model"]["coverage"]) <= 1
    assert set(p["model"]["pinball"]) == {"0.1", "0.5", "0.9"}


def test_quantile_forecast_json_carries_quantiles_and_probabilities(quantile_store):
    r = runner.invoke(
        app, ["--data-dir", str(quantile_store), "forecast", "--station", "Synth", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)[0]["forecasts"][0]
    q = list(row["quantiles"].values())
    assert q == sorted(q) and set(row["quantiles"]) == {"0.1", "0.5", "0.9"}
    assert set(row["p_level_at_least"]) == {"2", "3", "4", "5"}
    ps = list(row["p_level_at_least"].values())
    assert ps == sorted(ps, reverse=True)


def test_optimizer_lbfgs_alone(synth_store):
    cfg = tiny_config(optimizer="lbfgs", finetune_lbfgs=15)
    meta = train_station(synth_store, "Synth", cfg, quiet=True, echo=lambda *a: None)
    lb = meta["history"][0]["lbfgs"]
    assert lb["iterations"] > 0 and lb["val_after"] <= lb["val_before"]
