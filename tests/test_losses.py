"""The tanh-step level loss: limits, monotonicity, bounds, gradients, masking, serialization."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.config import LossConfig
from aqi.levels import STANDARDS, level
from aqi.losses import LevelLoss, breakpoint_taus, hard_level, keras, soft_level, tf

US = STANDARDS["us-epa-2024"]
B = list(US.edges)


def test_soft_level_tends_to_hard_level_as_tau_shrinks():
    c = np.array([0.0, 5.0, 20.0, 40.0, 100.0, 200.0, 400.0], np.float32)  # away from breakpoints
    errs = [
        np.abs(soft_level(tf.constant(c), B, tau).numpy() - level(c, US)).max()
        for tau in (4.0, 1.0, 0.1, 0.01)
    ]
    assert errs[-1] < 1e-6 and errs == sorted(errs, reverse=True)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 600, allow_nan=False), min_size=2, max_size=40), st.floats(0.05, 20))
def test_soft_level_monotone_and_bounded(cs, tau):
    c = np.sort(np.asarray(cs, np.float32))
    s = soft_level(tf.constant(c), B, tau).numpy()
    assert np.all(np.diff(s) >= -1e-5)
    assert s.min() >= 0 and s.max() <= len(B)


def _grad(loss, y, p):
    p = tf.Variable(np.asarray(p, np.float32)[None])
    with tf.GradientTape() as t:
        v = tf.reduce_sum(loss.call(tf.constant(np.asarray(y, np.float32)[None]), p))
    return t.gradient(v, p).numpy()[0]


def test_pure_level_loss_has_no_gradient_far_from_breakpoints():
    """Why the seed's weights did not move: tanh saturates between breakpoints."""
    g = _grad(LevelLoss(B, tau=2.0, alpha=1.0), [20.0, 80.0, 300.0], [22.0, 90.0, 280.0])
    assert np.abs(g).max() < 1e-4  # ≥ 6 tau from every breakpoint
    g_near = _grad(LevelLoss(B, tau=2.0, alpha=1.0), [20.0], [35.0])  # 0.5 µg/m³ from 35.5
    assert np.abs(g_near).max() > 0.1


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 500), st.floats(0, 500), st.floats(0, 0.95), st.floats(1, 100))
def test_mixed_loss_gradient_is_at_least_the_mae_share(y, p, alpha, scale):
    if abs(y - p) < 1e-2:
        return
    g = _grad(LevelLoss(B, tau=2.0, alpha=alpha, scale=scale), [y], [p])
    assert abs(g[0]) >= (1 - alpha) / scale * 0.999


def test_masked_targets_contribute_nothing():
    loss = LevelLoss(B, alpha=0.5)
    y = tf.constant([[10.0, np.nan, 50.0]])
    a = loss.call(y, tf.constant([[12.0, 500.0, 40.0]]))
    b = loss.call(y, tf.constant([[12.0, -80.0, 40.0]]))
    assert np.isfinite(a.numpy()).all() and a.numpy() == pytest.approx(b.numpy())
    assert np.isfinite(_grad(loss, [10.0, np.nan], [12.0, 3.0])).all()
    assert _grad(loss, [10.0, np.nan], [12.0, 3.0])[1] == 0


def test_loss_is_per_example_and_unscales_predictions():
    loss = LevelLoss(B, alpha=0.0, scale=1.0, y_scale=10.0, y_shift=5.0)
    v = loss.call(tf.constant([[15.0], [25.0]]), tf.constant([[1.0], [1.0]]))
    assert v.shape == (2,) and v.numpy().tolist() == [0.0, 10.0]


def test_band_scaled_tau():
    taus = breakpoint_taus(US, LossConfig(tau_frac=0.1))
    assert taus == pytest.approx([0.91, 2.64, 2.0, 7.0, 10.0])


def test_model_with_loss_round_trips_with_safe_mode(tmp_path):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.compile(optimizer="adam", loss=LevelLoss(B, tau=[1.0] * 5, alpha=0.3, scale=15.0))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, LevelLoss)
    assert loaded.loss.get_config() == model.loss.get_config()
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("key", sorted(STANDARDS))
def test_the_losses_hard_level_is_levels_level(key):
    """One definition of a level: the in-graph twin agrees with levels.level on every breakpoint,
    one resolution step either side, between breakpoints, and far above the last."""
    std = STANDARDS[key]
    step = std.resolution or 0.01
    e = np.asarray(std.edges)
    mids = (np.r_[0.0, e[:-1]] + e) / 2
    c = np.r_[e, e - step, e + step, e - step / 2, mids, 0.0, 10 * e[-1], np.nan].astype(np.float32)
    np.testing.assert_array_equal(hard_level(tf.constant(c), std).numpy(), level(c, std))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1000, width=32), min_size=1, max_size=50), st.sampled_from(sorted(STANDARDS))
)
def test_hard_level_equals_level_anywhere(cs, key):
    c = np.asarray(cs, np.float32)
    std = STANDARDS[key]
    np.testing.assert_array_equal(hard_level(tf.constant(c), std).numpy(), level(c, std))


def test_level_loss_config_round_trips_with_quantiles():
    loss = LevelLoss.from_standard(US, LossConfig(tau_frac=0.25), quantiles=(0.1, 0.5, 0.9))
    back = LevelLoss.from_config(loss.get_config())
    assert back.get_config() == loss.get_config() and back.quantiles == [0.1, 0.5, 0.9]
    y = np.array([[30.0, 50.0]], np.float32)
    p = np.array([[[20.0, 31.0, 40.0], [45.0, 52.0, 70.0]]], np.float32)
    np.testing.assert_allclose(back.call(y, p).numpy(), loss.call(y, p).numpy())


def test_annealing_widens_tau_and_restores_it():
    loss = LevelLoss(B, tau=2.0, alpha=1.0)
    y, p = [20.0], [30.0]  # 5.5 µg/m³ below 35.5: tau = 2 barely reaches it, tau = 16 does
    narrow = np.abs(_grad(loss, y, p)).max()
    loss.anneal(8.0)
    wide = np.abs(_grad(loss, y, p)).max()
    loss.anneal(1.0)
    assert wide > 10 * narrow and np.abs(_grad(loss, y, p)).max() == narrow


def test_term_standard_moves_the_point_term_and_not_the_level_heads_targets():
    cn = STANDARDS["china-hj633-2012"]
    own = LevelLoss.from_standard(cn, LossConfig(), "level")
    mixed = LevelLoss.from_standard(cn, LossConfig(term_standard="us-epa-2024"), "level")
    assert own.breakpoints == list(cn.edges) and mixed.breakpoints == B
    assert own.head_breakpoints == mixed.head_breakpoints == list(cn.edges)
    # a true 20 µg/m³ forecast as 5: one US step between them (9.1), no China step (35)
    y, pred = np.full((1, 2), 20.0, np.float32), np.full((1, 2), 5.0, np.float32)
    assert mixed.terms(y, pred)[0].numpy().min() > 0.9 > 0.1 > own.terms(y, pred)[0].numpy().max()
    p = np.full((1, 2, len(cn.edges)), 0.5, np.float32)
    # the head's targets: China's
    assert np.allclose(own.level_log_loss(y, p), mixed.level_log_loss(y, p))
    assert LevelLoss.from_config(mixed.get_config()).head_breakpoints == list(cn.edges)


def test_the_categorical_level_loss_is_the_log_loss_of_the_observed_level():
    """loss.level_loss "categorical": -log(P(≥ b_k) - P(≥ b_k+1)) at the observed level k;
    a missing target counts zero."""
    kw = {"level_head": True, "level_weight": 1.0, "level_loss": "categorical"}
    loss = LevelLoss(breakpoints=(10.0, 20.0), **kw)
    y = np.array([[5.0, 15.0, 25.0, np.nan]], np.float32)
    p = np.array([[[0.3, 0.1], [0.6, 0.2], [0.9, 0.7], [0.5, 0.5]]], np.float32)
    want = -np.log([0.7, 0.6 - 0.2, 0.7, 1.0])
    np.testing.assert_allclose(loss.level_log_loss(y, p).numpy()[0], want, rtol=1e-5)
    back = LevelLoss.from_config(loss.get_config())
    assert back.level_loss == "categorical"
