"""Statistics of PM2.5 series and forecasts under a standard: NowCast, daily-mean levels, and the
probability of reaching a threshold from predictive quantiles. Numpy only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aqi.levels import Standard, level


def nowcast(hourly, std: Standard | None = None) -> np.ndarray:
    """US EPA NowCast for an hourly series (oldest first, NaN = missing): for each hour, the last 12
    values c1..c12 (c1 newest) weighted by w^(i-1), w = max(c_min/c_max, 0.5). NaN where fewer than 2
    of the 3 newest hours exist. Truncated to 0.1 µg/m³ (or the standard's resolution)."""
    x = np.asarray(hourly, np.float64)
    padded = np.concatenate([np.full(11, np.nan), x])
    win = np.lib.stride_tricks.sliding_window_view(padded, 12)[:, ::-1]  # (n, 12), newest first
    present = ~np.isnan(win)
    with np.errstate(all="ignore"):
        cmin, cmax = np.nanmin(np.where(present, win, np.inf), 1), np.nanmax(win, 1)
        w = np.maximum(np.where(cmax > 0, cmin / cmax, 1.0), 0.5)
        wts = np.where(present, w[:, None] ** np.arange(12), 0.0)
        nc = (wts * np.nan_to_num(win)).sum(1) / wts.sum(1)
    nc = np.where(present[:, :3].sum(1) >= 2, nc, np.nan)
    res = std.resolution if std and std.resolution else 0.1
    return np.floor(nc / res + 1e-9) * res


def daily_mean_level(
    times: pd.Series, values, std: Standard, tz: str, min_hours: int = 18
) -> pd.DataFrame:
    """Daily (local calendar day) mean concentration and its level; days with fewer than `min_hours`
    valid hours (75 % completeness, EPA's rule) get NaN and level -1."""
    s = pd.Series(np.asarray(values, np.float64), index=pd.DatetimeIndex(times).tz_convert(tz))
    g = s.groupby(s.index.normalize())
    mean = g.mean().where(g.count() >= min_hours)
    return pd.DataFrame({"mean": mean, "level": level(mean.to_numpy(), std)})


def exceedance_probability(quantiles, values, threshold: float) -> np.ndarray:
    """P(c ≥ threshold) from predictive quantiles: values (..., Q) at probability levels
    `quantiles` (Q,), increasing. The CDF is linear between quantiles; beyond the outer ones it is put
    at the middle of the tail mass (q_lo / 2, 1 - (1 - q_hi) / 2)."""
    q = np.asarray(quantiles, np.float64)
    v = np.asarray(values, np.float64)
    k = (v <= threshold).sum(-1)  # quantiles at or below the threshold
    i = np.clip(k, 1, len(q) - 1)
    v0, v1 = (
        np.take_along_axis(v, (i - 1)[..., None], -1)[..., 0],
        np.take_along_axis(v, i[..., None], -1)[..., 0],
    )
    frac = np.clip((threshold - v0) / np.maximum(v1 - v0, 1e-9), 0, 1)
    cdf = q[i - 1] + frac * (q[i] - q[i - 1])
    cdf = np.where(k == 0, q[0] / 2, np.where(k == len(q), 1 - (1 - q[-1]) / 2, cdf))
    return 1.0 - cdf


def level_probabilities(exceed: np.ndarray) -> np.ndarray:
    """(..., E) P(c ≥ b_i) for increasing breakpoints → (..., E + 1) P(level = k); the exceedances
    are made non-increasing first (a quantile interpolation can tie), so every P(level) is ≥ 0."""
    p = np.minimum.accumulate(np.clip(exceed, 0.0, 1.0), axis=-1)
    ones, zeros = np.ones_like(p[..., :1]), np.zeros_like(p[..., :1])
    return -np.diff(np.concatenate([ones, p, zeros], axis=-1), axis=-1)


def decide_level(probs: np.ndarray, unhealthy: int, miss_cost: float = 1.0):
    """The level to publish from (..., K) level probabilities: the one of least expected cost when
    every wrong level costs 1 and publishing below `unhealthy` on an hour at or above it costs
    `miss_cost` (1: the most probable level). Returns (levels (...), their probabilities (...))."""
    k = probs.shape[-1]
    cost = 1.0 - np.eye(k)
    cost[unhealthy:, :unhealthy] = miss_cost  # rows: true level; columns: published level
    chosen = np.argmin(probs @ cost, axis=-1)
    return chosen, np.take_along_axis(probs, chosen[..., None], -1)[..., 0]


TINY = 1e-6  # floor of a probability inside a log: a level given 0 costs -log(1e-6) ≈ 13.8, not inf


def log_loss(probs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(...) −log P(observed level) of (..., K) level probabilities and (...) observed levels."""
    p = np.take_along_axis(probs, np.asarray(observed)[..., None], -1)[..., 0]
    return -np.log(np.clip(p, TINY, 1.0))


def temper(probs: np.ndarray, temperature) -> np.ndarray:
    """(N, H, K) level probabilities with hour h's raised to 1 / temperature[h] and renormalised:
    > 1 flattens an over-confident hour, < 1 sharpens an under-confident one; every argmax stays."""
    logp = np.log(np.clip(probs, TINY, 1.0)) / np.asarray(temperature, np.float64)[:, None]
    e = np.exp(logp - logp.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def fit_temperature(probs: np.ndarray, observed: np.ndarray, seen: np.ndarray) -> list[float]:
    """Per hour ahead, the temperature in [0.2, 5] of least mean log loss over the `seen` (N, H)
    pairs of (N, H, K) `probs` and (N, H) `observed` levels (temperature scaling, Guo et al. 2017)."""
    return [
        _fit_hour(probs[seen[:, h], h][:, None], observed[seen[:, h], h][:, None])
        for h in range(probs.shape[1])
    ]


def _fit_hour(probs: np.ndarray, observed: np.ndarray) -> float:
    """The temperature of one hour ahead, (n, 1, K) probabilities, (n, 1) levels; 1 if n = 0."""
    from scipy.optimize import minimize_scalar  # training only: forecasting never pays its import

    if not len(probs):
        return 1.0

    def loss(t: float) -> float:
        return float(log_loss(temper(probs, [t]), observed).mean())

    return round(float(minimize_scalar(loss, bounds=(0.2, 5.0), method="bounded").x), 4)
