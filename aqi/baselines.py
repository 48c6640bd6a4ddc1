"""Baselines, computed on the very windows the model is scored on: (N, H) PM2.5 forecasts in µg/m³.

- persistence: the last observed value (after the same past-only gap filling the model sees);
- seasonal naive: the same hour on the previous day (t+h-24k, k = ceil(h/24)), persistence where that
  hour is missing;
- climatology: train-split mean by (month, hour of day) of the target time (local).
The gradient-boosting baseline, pooled over the network, is `gbm.py`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aqi.windows import Windows, feature_frame, window_offsets


def persistence(w: Windows) -> np.ndarray:
    return w.persistence()


def seasonal_naive(w: Windows, grid: pd.DataFrame, tz: str, max_gap: int) -> np.ndarray:
    """PM2.5 at t+h-24·ceil(h/24): always at or before the origin, so never a look-ahead."""
    pm = feature_frame(grid, tz, max_gap)["pm25"]
    _, tgt = window_offsets(1, w.y.shape[1])
    back = tgt - 24 * np.ceil(tgt / 24).astype(int)  # ≤ 0
    pos = grid.index.get_indexer(w.origin)[:, None] + back
    out = pm.to_numpy()[np.clip(pos, 0, None)]
    out = np.where(pos >= 0, out, np.nan)
    return np.where(np.isnan(out), persistence(w), out).astype(np.float32)


def climatology(w: Windows, grid: pd.DataFrame, tz: str, train_end: pd.Timestamp) -> np.ndarray:
    """(N, H) train-split mean PM2.5 by (month, hour of day) of each target time."""
    return _by_month_hour(w, grid, tz, train_end, lambda g: g.mean())[..., 0]


def climatology_quantiles(
    w: Windows, grid: pd.DataFrame, tz: str, train_end: pd.Timestamp, quantiles
) -> np.ndarray:
    """(N, H, Q) train-split quantiles of PM2.5 by (month, hour of day): the probabilistic baseline."""
    return _by_month_hour(w, grid, tz, train_end, lambda g: g.quantile(list(quantiles)).unstack())


def _by_month_hour(w: Windows, grid: pd.DataFrame, tz: str, train_end, stat) -> np.ndarray:
    local = grid.index.tz_convert(tz)
    train = grid["pm25"][(local <= train_end) & grid["pm25"].notna().to_numpy()]
    tl = train.index.tz_convert(tz)
    table = pd.DataFrame(stat(train.groupby([tl.month, tl.hour])))
    fallback = pd.DataFrame(stat(train.groupby(np.zeros(len(train), int)))).to_numpy()[0]
    _, tgt = window_offsets(1, w.y.shape[1])
    times = w.origin.tz_convert("UTC").tz_localize(None).to_numpy()[:, None] + tgt.astype("m8[h]")
    t = pd.DatetimeIndex(times.ravel()).tz_localize("UTC").tz_convert(tz)
    vals = table.reindex(pd.MultiIndex.from_arrays([t.month, t.hour])).to_numpy()
    vals = np.where(np.isnan(vals), fallback, vals)
    return vals.reshape(*times.shape, -1).astype(np.float32)
