"""A model's forecast for N windows (`Prediction`): its point, quantile or level-head outputs, and the
levels published from them (the decided level with its probability, or the point forecast's level).
Numpy only: forecast, evaluate and training's decision rule share these definitions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from aqi.concentrations import decide_level, exceedance_probability, level_probabilities, temper
from aqi.config import ModelConfig, median_index
from aqi.levels import Standard, level


@dataclass(frozen=True)
class Prediction:
    point: np.ndarray  # (N, H) µg/m³: the point head, or the median of the quantile head
    quantiles: np.ndarray | None = None  # (N, H, Q) µg/m³ with a quantile head
    exceed: np.ndarray | None = None  # (N, H, E) P(PM2.5 ≥ b_i) with a level head
    quantile_levels: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()  # µg/m³, the breakpoints b_i of `exceed` (the head's standard)
    temperature: tuple[float, ...] = ()  # per hour ahead, fitted on validation (`job`); () = none
    origin: np.ndarray | None = None  # (N,) µg/m³ PM2.5 at the origin: persistence's forecast

    def row(self, i: int) -> Prediction:
        """The forecast of window i alone (arrays keep their leading axis, of length 1)."""
        arrays = {k: getattr(self, k) for k in ("point", "quantiles", "exceed", "origin")}
        return dataclasses.replace(self, **{k: v[i : i + 1] for k, v in arrays.items() if v is not None})

    def exceedance(self, std: Standard) -> np.ndarray | None:
        """(N, H, E) P(PM2.5 ≥ b_i) at the standard's breakpoints: the level head's own, or read
        off the quantiles; None for a point head."""
        if self.exceed is not None:  # only at the breakpoints it was trained on
            return self.exceed if tuple(std.edges) == self.edges else None
        if self.quantiles is None:
            return None
        q = self.quantile_levels
        return np.stack([exceedance_probability(q, self.quantiles, b) for b in std.edges], -1)

    def level_probabilities(self, std: Standard) -> np.ndarray | None:
        """(N, H, K) P(level = k) under `std`, calibrated by the level head's temperatures; None
        for a point head."""
        p = self.exceedance(std)
        if p is None:
            return None
        tempered = self.exceed is not None and self.temperature
        return temper(level_probabilities(p), self.temperature) if tempered else level_probabilities(p)

    def decided(self, std: Standard, miss_cost: float = 1.0):
        """(levels (N, H), their probabilities) to publish, or None for a point head."""
        p = self.level_probabilities(std)
        return None if p is None else decide_level(p, std.unhealthy, miss_cost)


def as_prediction(raw: np.ndarray, m: ModelConfig, std: Standard) -> Prediction:
    """A head's raw output as a Prediction: (N, H) point, (N, H, Q) quantiles, (N, H, 1 + E) level
    (its exceedances at the breakpoints of `std`, the standard the model was trained with)."""
    if m.head == "quantile":
        return Prediction(raw[..., median_index(m.quantiles)], raw, quantile_levels=m.quantiles)
    if m.head == "level":
        return Prediction(raw[..., 0], exceed=raw[..., 1:], edges=tuple(std.edges))
    return Prediction(raw)


# probability margins tried per hour ahead by `fit_stay` (0: the model's level); capped at 0.2,
# since one margin of 0.3 at every hour gave up 2 points of test-year level accuracy (README)
STAY_GRID = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)


def publish(pred: Prediction, std: Standard, miss_cost: float, decided_horizons=None, stay=None):
    """(levels (N, H), their probabilities) to publish: the decided level where `decided_horizons`
    (H,) is true (default: every horizon), the point forecast's level elsewhere; then, at hour h,
    the level at the origin wherever its probability is within `stay[h]` of that level's (`stay`
    (H,), None: never). None without a predictive distribution."""
    probs = pred.level_probabilities(std)
    if probs is None:
        return None
    d = decide_level(probs, std.unhealthy, miss_cost)
    use = (
        np.ones(pred.point.shape[1], bool) if decided_horizons is None else np.asarray(decided_horizons)
    )
    own = level(pred.point, std)
    own_p = np.take_along_axis(probs, own[..., None], -1)[..., 0]
    levels, p = np.where(use, d[0], own), np.where(use, d[1], own_p)
    if stay is None or pred.origin is None:
        return levels, p
    now = np.broadcast_to(level(pred.origin, std)[:, None], levels.shape)
    now_p = np.take_along_axis(probs, now[..., None], -1)[..., 0]
    keep = (np.asarray(stay) > 0) & (p - now_p <= np.asarray(stay)) & (now >= 0)
    return np.where(keep, now, levels), np.where(keep, now_p, p)


def fit_stay(pred: Prediction, std: Standard, y: np.ndarray, decided_horizons) -> list[float]:
    """Per hour ahead, the margin of STAY_GRID whose published levels (miss cost 1) hit most
    observed levels of `y` (N, H) µg/m³ (NaN: not scored); ties: the smaller margin."""
    seen, truth = np.isfinite(y), level(np.nan_to_num(y), std)
    hits = []
    for m in STAY_GRID:
        levels = publish(pred, std, 1.0, decided_horizons, np.full(y.shape[1], m))[0]
        hits.append(((levels == truth) & seen).sum(0))
    return [STAY_GRID[i] for i in np.argmax(np.asarray(hits), 0)]  # argmax: the first of the best
