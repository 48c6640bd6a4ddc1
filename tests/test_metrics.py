"""The one metrics module: known cases, and scikit-learn as an independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, f1_score

from aqi import metrics
from aqi.levels import STANDARDS, level

US = STANDARDS["us-epa-2024"]


def test_per_horizon_on_a_known_case():
    y = np.array([[10.0, 1.0], [40.0, 2.0], [60.0, np.nan], [np.nan, 4.0]])
    p = np.array([[12.0, 1.0], [20.0, 3.0], [70.0, 9.0], [5.0, 4.0]])
    s = metrics.per_horizon(y, p, US)
    assert s["mae"] == [pytest.approx(32 / 3, abs=1e-3), pytest.approx(1 / 3, abs=1e-3)]
    assert s["bias"][0] == pytest.approx((2 - 20 + 10) / 3, abs=1e-3)
    assert s["rmse"][0] == pytest.approx(np.sqrt((4 + 400 + 100) / 3), abs=1e-3)
    assert s["level_accuracy"] == [pytest.approx(2 / 3, abs=1e-4), 1.0]
    # unhealthy = level ≥ 2 (≥ 35.5): observed 40, 60; forecast 70 → 1 hit, 1 miss, 0 false alarms
    assert (s["pod"][0], s["far"][0], s["csi"][0]) == (0.5, 0.0, 0.5)
    assert metrics.pooled(y, p, US) == pytest.approx(((32 + 1) / 6, 5 / 6))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 400), st.floats(0, 400)), min_size=1, max_size=60))
def test_confusion_and_macro_f1_agree_with_scikit_learn(pairs):
    y, p = (np.asarray(v, np.float64) for v in zip(*pairs, strict=True))
    lt, lp = level(y, US), level(p, US)
    labels = np.arange(US.n_levels)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(lt, lp, US.n_levels), confusion_matrix(lt, lp, labels=labels)
    )
    want = f1_score(lt, lp, average="macro", labels=labels, zero_division=0)
    assert metrics.macro_f1(lt, lp, US.n_levels) == pytest.approx(want, abs=1e-12)


def test_probabilistic_scores_on_a_known_case():
    y = np.array([[10.0], [50.0], [np.nan]])
    q = np.array([[[5.0, 10.0, 20.0]], [[20.0, 30.0, 40.0]], [[0.0, 1.0, 2.0]]])
    s = metrics.probabilistic(y, q, (0.1, 0.5, 0.9), US)
    assert s["coverage"] == [0.5] and s["width"] == [17.5]  # 10 inside [5, 20]; 50 above [20, 40]
    # pinball at 0.9 for y=50 above 40: 0.9 * 10; for y=10 inside: 0.9 * (10 - 20) < 0 → 0.1 * 10
    assert s["pinball"]["0.9"] == [pytest.approx((1.0 + 9.0) / 2)]
    assert 0 <= s["brier"][0] <= 1
