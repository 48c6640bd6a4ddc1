"""Every forecast metric, once, in numpy: used by training's validation report, evaluate and bench.

Arrays are (N, H): N forecast origins, H horizons, µg/m³. A NaN target is a missing observation and
the pair is left out of every metric; forecasts are always finite. Per-horizon functions return one
value per horizon (a list of H floats, rounded for JSON).
"""

from __future__ import annotations

import numpy as np

from aqi.concentrations import exceedance_probability, log_loss
from aqi.levels import Standard, level

DIGITS = 4  # rounding of reported metrics: well below any difference worth reporting


def per_horizon(y: np.ndarray, pred: np.ndarray, std: Standard) -> dict[str, list[float]]:
    """MAE, RMSE, bias (µg/m³) and the level scores of `per_horizon_levels`, per horizon."""
    out: dict[str, list[float]] = {k: [] for k in ("mae", "rmse", "bias")}
    for h in range(y.shape[1]):
        ok = np.isfinite(y[:, h])
        t, p = y[ok, h], pred[ok, h]
        out["mae"].append(float(np.abs(t - p).mean()))
        out["rmse"].append(float(np.sqrt(((t - p) ** 2).mean())))
        out["bias"].append(float((p - t).mean()))
    out = {k: [round(v, DIGITS) for v in vs] for k, vs in out.items()}
    return out | per_horizon_levels(y, level(pred, std), std)


def per_horizon_levels(y: np.ndarray, levels: np.ndarray, std: Standard) -> dict[str, list[float]]:
    """Level accuracy, macro-F1 over levels, and POD / FAR / CSI of reaching the standard's first
    unhealthy level (`std.unhealthy`), per horizon, for (N, H) published level numbers."""
    out: dict[str, list[float]] = {k: [] for k in ("level_accuracy", "macro_f1", "pod", "far", "csi")}
    for h in range(y.shape[1]):
        ok = np.isfinite(y[:, h])
        lt, lp = level(y[ok, h], std), levels[ok, h]
        out["level_accuracy"].append(level_accuracy(lt, lp))
        out["macro_f1"].append(macro_f1(lt, lp, std.n_levels))
        for k, v in exceedance_scores(lt >= std.unhealthy, lp >= std.unhealthy).items():
            out[k].append(v)
    return {k: [round(v, DIGITS) for v in vs] for k, vs in out.items()}


def per_horizon_calibration(
    y: np.ndarray, probs: np.ndarray, chosen: np.ndarray, std: Standard
) -> dict[str, list[float]]:
    """Per horizon, the published level's mean probability (`chosen`, (N, H): calibrated where it
    equals the level accuracy) and the mean log loss of the (N, H, K) level probabilities."""
    out: dict[str, list[float]] = {"mean_probability": [], "level_log_loss": []}
    for h in range(y.shape[1]):
        ok = np.isfinite(y[:, h])
        out["mean_probability"].append(float(chosen[ok, h].mean()))
        out["level_log_loss"].append(float(log_loss(probs[ok, h], level(y[ok, h], std)).mean()))
    return {k: [round(v, DIGITS) for v in vs] for k, vs in out.items()}


def pooled(y: np.ndarray, pred: np.ndarray, std: Standard) -> tuple[float, float]:
    """(MAE µg/m³, level accuracy) over every observed (origin, horizon) pair together."""
    ok = np.isfinite(y)
    t, p = y[ok], pred[ok]
    return float(np.abs(t - p).mean()), float((level(t, std) == level(p, std)).mean())


def confusion(y: np.ndarray, pred: np.ndarray, std: Standard) -> list[list[int]]:
    """Levels observed (rows) × forecast (columns), all horizons pooled."""
    ok = np.isfinite(y)
    return confusion_matrix(level(y[ok], std), level(pred[ok], std), std.n_levels).tolist()


def confusion_matrix(observed: np.ndarray, forecast: np.ndarray, n_levels: int) -> np.ndarray:
    pairs = observed.astype(np.int64) * n_levels + forecast.astype(np.int64)
    return np.bincount(pairs, minlength=n_levels * n_levels).reshape(n_levels, n_levels)


def macro_f1(observed: np.ndarray, forecast: np.ndarray, n_levels: int) -> float:
    """Mean over all levels of 2·TP / (2·TP + FP + FN); a level never observed nor forecast counts 0."""
    c = confusion_matrix(observed, forecast, n_levels)
    tp = np.diag(c)
    denom = c.sum(0) + c.sum(1)  # (TP + FP) + (TP + FN)
    return float(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean())


def exceedance_scores(observed: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """POD, FAR and CSI of a yes/no event (e.g. 'level ≥ Unhealthy for Sensitive Groups')."""
    hit = int((observed & forecast).sum())
    miss = int((observed & ~forecast).sum())
    false = int((~observed & forecast).sum())
    return {
        "pod": hit / max(hit + miss, 1),
        "far": false / max(hit + false, 1),
        "csi": hit / max(hit + miss + false, 1),
    }


def level_accuracy(observed: np.ndarray, forecast: np.ndarray) -> float:
    """Share of equal levels; `observed` and `forecast` are level numbers (levels.level)."""
    return float((np.asarray(observed) == np.asarray(forecast)).mean())


def probabilistic(y: np.ndarray, q: np.ndarray, quantiles, std: Standard) -> dict:
    """Per horizon, for (N, H, Q) quantile forecasts: coverage and mean width (µg/m³) of the
    outer-quantile interval, pinball loss per quantile (µg/m³), Brier score of P(level ≥ unhealthy)."""
    ok = np.isfinite(y)
    y0 = np.where(ok, y, 0.0)
    n = np.maximum(ok.sum(0), 1)
    inside = (y0 >= q[..., 0]) & (y0 <= q[..., -1]) & ok
    p = exceedance_probability(quantiles, q, std.edges[std.unhealthy - 1])
    event = (level(np.where(ok, y, np.nan), std) >= std.unhealthy).astype(float)
    pin = pinball(y0, q, quantiles)
    return {
        "interval": [quantiles[0], quantiles[-1]],
        "coverage": (inside.sum(0) / n).round(DIGITS).tolist(),
        "width": (((q[..., -1] - q[..., 0]) * ok).sum(0) / n).round(2).tolist(),
        "pinball": {
            f"{qq:g}": ((pin[..., i] * ok).sum(0) / n).round(3).tolist()
            for i, qq in enumerate(quantiles)
        },
        "brier": ((((p - event) ** 2) * ok).sum(0) / n).round(DIGITS).tolist(),
    }


def pinball(y: np.ndarray, q: np.ndarray, quantiles) -> np.ndarray:
    """(N, H, Q) pinball loss of quantile forecasts q (N, H, Q) at levels `quantiles` for y (N, H)."""
    err = y[..., None] - q
    tau = np.asarray(quantiles)
    return np.maximum(tau * err, (tau - 1) * err)
