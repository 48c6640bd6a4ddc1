"""Sliding feature windows: past L hours of features → PM2.5 at the next H hours. Pure numpy/pandas.

A window at origin t (an index on the complete hourly grid) reads inputs at t-L+1..t and targets
at t+1..t+H (`window_offsets`); nothing at or after t+1 is ever an input. Short input gaps are
forward-filled from the past only (≤ max_gap hours), windows whose PM2.5 inputs still have a hole
are dropped, and missing targets stay NaN (masked by the loss), never dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aqi.config import MEASURES, AqiError, WindowConfig
from aqi.features import (
    INDICATED,
    LOG_COLS,
    MEASURED,
    PLAIN_COLS,
    PM25_FEATURE,
    Moments,
    Scaler,
)
from aqi.split import Split

# inputs an outage blanks: every measured one (not the calendar, not other stations' columns)
CARRIED = (*PLAIN_COLS, "log_pm25", "wd_sin", "wd_cos")


@dataclass
class Windows:
    x: np.ndarray  # (N, L, F) float32, scaled
    y: np.ndarray  # (N, H) float32 µg/m³, NaN = missing target
    origin: pd.DatetimeIndex  # (N,) UTC time of each window's last input hour
    last_pm25: np.ndarray  # (N,) µg/m³ at the origin after gap filling (persistence)
    features: list[str]
    scaler: Scaler
    split: np.ndarray  # (N,) 'train' | 'val' | 'test' | ''  (by target time)
    dates: Split  # the split dates the labels were made with

    def __len__(self) -> int:
        return len(self.x)

    def part(self, name: str) -> Windows:
        k = self.split == name
        return dataclasses.replace(
            self,
            x=self.x[k],
            y=self.y[k],
            origin=self.origin[k],
            last_pm25=self.last_pm25[k],
            split=self.split[k],
        )

    def persistence(self) -> np.ndarray:
        """(N, H) the last observed PM2.5 (after gap filling) for every horizon, µg/m³."""
        return np.repeat(self.last_pm25[:, None], self.y.shape[1], axis=1)


def window_offsets(lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the origin t: inputs t-L+1..t (L values ≤ 0), targets t+1..t+H (H values ≥ 1)."""
    if lookback < 1 or horizon < 1:
        raise AqiError(f"--lookback {lookback} / --horizon {horizon}: both must be >= 1")
    return np.arange(-lookback + 1, 1), np.arange(1, horizon + 1)


def complete_grid(df: pd.DataFrame) -> pd.DataFrame:
    """Reindex a station's rows onto every hour between its first and last time (UTC index)."""
    if df.empty:
        raise AqiError("station has no rows")
    t = pd.DatetimeIndex(df["time"])
    full = pd.date_range(t.min(), t.max(), freq="h", name="time")
    return df.set_index(t.rename("time"))[list(MEASURES)].reindex(full)


def ffill(a: np.ndarray, limit: int) -> np.ndarray:
    """(T, C) with NaN gaps of at most `limit` rows filled from the row before (pandas' `ffill`
    rule, which leaves longer gaps' later rows missing), in numpy."""
    rows = np.arange(len(a))[:, None]
    last = np.maximum.accumulate(np.where(np.isnan(a), -1, rows), axis=0)  # last valid row
    out = a[np.maximum(last, 0), np.arange(a.shape[1])]
    return np.where((last >= 0) & (rows - last <= limit), out, np.nan)


def feature_frame(grid: pd.DataFrame, tz: str, max_gap: int, inputs=()) -> pd.DataFrame:
    """Unscaled hourly features (float32), gaps ≤ max_gap hours filled from the past only."""
    f = feature_columns(grid[list(MEASURES)].to_numpy(np.float64), grid.index, tz, max_gap, inputs)
    return pd.DataFrame(f, index=grid.index)


def feature_columns(values: np.ndarray, times: pd.DatetimeIndex, tz: str, max_gap: int, inputs=()):
    """`feature_frame`'s columns, {name: (T,) float32}, from `values` (T, MEASURES) on the complete
    UTC grid `times`; numpy only: a forecast of 1,000 stations builds 1,000 of these."""
    raw = dict(zip(MEASURES, values.T, strict=True))
    cols = [*MEASURED, "wd_deg"]
    filled = dict(zip(cols, ffill(np.stack([raw[c] for c in cols], 1), max_gap).T, strict=True))
    f = {}
    for c in PLAIN_COLS:
        v = filled[c]
        f[c] = np.log1p(np.clip(v, 0, None)) if c in LOG_COLS else v
    f["log_pm25"] = np.log1p(np.clip(filled["pm25"], 0, None))
    rad = np.deg2rad(filled["wd_deg"])
    f["wd_sin"] = np.nan_to_num(np.sin(rad))  # calm (missing) → (0, 0)
    f["wd_cos"] = np.nan_to_num(np.cos(rad))
    local = times.tz_convert(tz)
    for name, v, period in [
        ("hour", local.hour, 24),
        ("dow", local.dayofweek, 7),
        ("month", local.month - 1, 12),
    ]:
        f[f"{name}_sin"] = np.sin(2 * np.pi * np.asarray(v) / period)
        f[f"{name}_cos"] = np.cos(2 * np.pi * np.asarray(v) / period)
    for c in INDICATED:
        f[f"miss_{c}"] = np.isnan(raw[c])  # the raw hour was missing (filled or not)
    absent = set(MEASURES) - set(inputs) - {"pm25"} if inputs else set()
    dropped = absent | ({"wd_sin", "wd_cos"} if "wd_deg" in absent else set())
    return {k: np.asarray(v, np.float32) for k, v in f.items() if k not in dropped}


@dataclass
class Hourly:
    """One station's hourly inputs before windowing, what a stream slices windows from."""

    feats: np.ndarray  # (T, F) float32 unscaled features on the complete hourly grid
    features: list[str]
    times: pd.DatetimeIndex  # (T,) UTC
    origins: np.ndarray  # (N,) grid positions of the kept windows' origins
    y: np.ndarray  # (N, H) µg/m³, NaN = missing
    last_pm25: np.ndarray  # (N,) µg/m³ at the origin after gap filling
    split: np.ndarray  # (N,) split labels
    dates: Split
    lookback: int

    def train_rows(self) -> np.ndarray:
        """(n, F) the unscaled hours up to the end of the train split."""
        return self.feats[self.times <= self.dates.train_end]

    def x(self, scaled: np.ndarray, which: np.ndarray) -> np.ndarray:
        """(n, L, F) windows at origins[which] from the scaled hourly array (T, F)."""
        return scaled[self.origins[which, None] + np.arange(-self.lookback + 1, 1)]

    def windows(self, scaler: Scaler, gap: int | np.ndarray = 0) -> Windows:
        """Every window; with `gap` (hours, one or one per window) as if its last `gap` input
        hours were missing: each measured input carries its value of hour t-gap forward with the
        PM2.5-missing flag set, as a live forecast through an outage does (`window_at`)."""
        xs = np.nan_to_num(scaler.apply(self.feats))  # unfilled non-PM2.5 holes → the train mean
        view = np.lib.stride_tricks.sliding_window_view(xs, self.lookback, axis=0)
        x = np.ascontiguousarray(view[self.origins - self.lookback + 1].transpose(0, 2, 1))
        last = self.last_pm25
        g = np.broadcast_to(np.asarray(gap), self.origins.shape)
        if g.any():
            src = np.maximum(self.origins - g, 0)  # the last observed hour before the outage
            rows = np.arange(self.lookback) >= self.lookback - g[:, None]  # (N, L) missing hours
            carried = np.array([c in CARRIED for c in self.features])
            x[:, :, carried] = np.where(rows[..., None], xs[src][:, None, carried], x[:, :, carried])
            m = self.features.index("miss_pm25")
            x[:, :, m] = np.where(rows, 1.0, x[:, :, m])
            last = self.feats[src, PM25_FEATURE].astype(np.float32)
        return Windows(
            x, self.y, self.times[self.origins], last, self.features, scaler, self.split, self.dates
        )


def hourly(
    df: pd.DataFrame,
    cfg: WindowConfig,
    tz: str,
    dates: Split | None = None,
    extra: pd.DataFrame | None = None,
) -> Hourly:
    """A station's features (with `extra` columns on a UTC hourly index appended) and the origins of
    its windows: PM2.5 inputs complete after gap filling, at least one target observed."""
    grid = complete_grid(df)
    feats = feature_frame(grid, tz, cfg.max_gap, cfg.inputs)
    if extra is not None:
        feats = feats.join(extra.reindex(feats.index))
    n, (L, H) = len(grid), (cfg.lookback, cfg.horizon)
    inp, tgt = window_offsets(L, H)
    if n < L + H:
        raise AqiError(f"too little data: {n} hours, but --lookback {L} + --horizon {H} need more")
    origins = np.arange(-inp[0], n - tgt[-1])  # every t with t+inp ≥ 0 and t+tgt < n
    pm = feats["pm25"].to_numpy()
    inputs_ok = np.lib.stride_tricks.sliding_window_view(~np.isnan(pm), L).all(axis=1)
    y = grid["pm25"].to_numpy(np.float32)[origins[:, None] + tgt]  # (N, H), NaN kept (masked)
    keep = inputs_ok[origins + inp[0]] & ~np.isnan(y).all(axis=1)
    origins, y, times = origins[keep], y[keep], grid.index
    dates = dates or Split.resolve(cfg, times[-1], tz)
    labels = dates.labels(times[origins + tgt[0]], times[origins + tgt[-1]])
    return Hourly(
        feats.to_numpy(np.float32), list(feats.columns), times, origins, y,
        pm[origins].astype(np.float32), labels, dates, L,
    )  # fmt: skip


def build_windows(
    df: pd.DataFrame,
    cfg: WindowConfig,
    tz: str,
    scaler: Scaler | None = None,
    dates: Split | None = None,
    extra: pd.DataFrame | None = None,
    gap: int | np.ndarray = 0,
) -> Windows:
    """All windows of one station with their split labels (as if their last `gap` hours were
    missing, `Hourly.windows`). The scaler is fitted on train-split hours and the split dates
    resolved from `cfg` unless given (evaluation reuses the model's)."""
    h = hourly(df, cfg, tz, dates, extra)
    if scaler is None:
        rows = h.train_rows()
        if len(rows) < cfg.lookback + cfg.horizon:
            raise AqiError(
                f"too little training data before {h.dates.train_end:%Y-%m-%d %H:%M}: "
                "move the split later (--train-end, --val-end, --test-months, --test-end)"
            )
        scaler = Moments(h.features).add(rows).scaler()
    return h.windows(scaler, gap)


def window_at(
    df: pd.DataFrame,
    cfg: WindowConfig,
    tz: str,
    scaler: Scaler,
    at: pd.Timestamp | None = None,
    extra: pd.DataFrame | None = None,
    now: pd.Timestamp | None = None,
) -> tuple[np.ndarray, pd.Timestamp, float, dict]:
    """The one input window (1, L, F) whose origin is `at` (default: `now`, else the station's last
    hour; a network's `now` is its latest hour, which an outage leaves the station behind),
    its origin (UTC), the PM2.5 it forecasts from (µg/m³) and how stale its inputs are:
    `last_observation_age_h` (hours from the last PM2.5 observation to the origin) and
    `missing_input_share` (of its L hours, those without PM2.5). Through an outage each input
    carries its last value forward for up to `stale_limit` hours, the missing flag set; an older
    last observation is refused. Errors name the hours that block it."""
    if df.empty:
        raise AqiError("station has no rows")
    t = pd.DatetimeIndex(df["time"])  # sorted (the store's order)
    origin = (at if at is not None else now if now is not None else t[-1]).floor("h")
    origin = origin.tz_convert("UTC")
    if at is not None:
        _check_origin(t[0], t[-1], origin, at, tz, cfg)
    stale = pd.Timedelta(hours=cfg.stale_limit)
    hours = pd.date_range(origin - (cfg.lookback - 1) * HOUR - stale, origin, freq="h", name="time")
    span = _on_grid(df, t, hours)  # (len(hours), MEASURES): one station's window, NaN = no row
    seen = hours[~np.isnan(span[:, PM25])]
    if not len(seen) or origin - seen[-1] > stale:
        last = f"last at {seen[-1]:%Y-%m-%d %H:%M} UTC" if len(seen) else "none in the window"
        raise AqiError(
            f"PM2.5 at {origin:%Y-%m-%d %H:%M} UTC is stale ({last}): older than the "
            f"model's {cfg.stale_limit} h staleness limit (train --stale-limit); wait for the feed"
        )
    if origin - (cfg.lookback - 1) * HOUR < t[0]:
        start, first = (_local(v, tz) for v in (origin - (cfg.lookback - 1) * HOUR, t[0]))
        raise AqiError(f"history too short: inputs from {start} needed ({tz}), the data start {first}")
    f = feature_columns(span, hours, tz, cfg.stale_limit, cfg.inputs)
    arr = np.stack(list(f.values()), 1)[-cfg.lookback :]
    if extra is not None:  # the network's columns after the station's own, as `hourly` joins them
        at_rows = extra.index.get_indexer(hours[-cfg.lookback :])
        cols = extra.to_numpy(np.float32)
        arr = np.hstack([arr, np.where(at_rows[:, None] >= 0, cols[at_rows], np.nan)])
    x = np.nan_to_num(scaler.apply(arr))[None]
    info = {
        "last_observation_age_h": int((origin - seen[-1]) / HOUR),
        "missing_input_share": round(float(np.isnan(span[-cfg.lookback :, PM25]).mean()), 3),
    }
    return x, origin, float(f["pm25"][-1]), info


PM25 = MEASURES.index("pm25")  # column of PM2.5 in the store's measures


def _on_grid(df: pd.DataFrame, t: pd.DatetimeIndex, hours: pd.DatetimeIndex) -> np.ndarray:
    """The rows of `df` (times `t`) placed on the complete hourly grid `hours`, NaN elsewhere."""
    at = hours.get_indexer(t)
    out = np.full((len(hours), len(MEASURES)), np.nan)
    values = np.column_stack([df[c].to_numpy(np.float64) for c in MEASURES])  # no block copy
    out[at[at >= 0]] = values[at >= 0]
    return out


HOUR = pd.Timedelta(hours=1)


def _check_origin(first, end, origin: pd.Timestamp, at, tz: str, cfg: WindowConfig) -> None:
    """AqiError unless `--at` is between the data's first hour and its last + stale_limit."""
    if not first <= origin <= end + cfg.stale_limit * HOUR:
        shown = (_local(t, tz) for t in (first, end))
        raise AqiError(f"--at {_local(at, tz)}: outside the data ({' .. '.join(shown)})")


def _local(t: pd.Timestamp, tz: str) -> str:
    """`t` as the local time `--at` is given in."""
    return t.tz_convert(tz).strftime("%Y-%m-%dT%H:%M")
