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

from aqi.config import MEASURES, POLLUTANTS, AqiError, WindowConfig
from aqi.split import Split

LOG_COLS = tuple(c for c in POLLUTANTS if c != "pm25")  # heavy-tailed µg/m³: log1p before scaling
PLAIN_COLS = ("pm25", *LOG_COLS, "temp", "pres", "dewp", "rain", "wspm")
PM25_FEATURE = PLAIN_COLS.index("pm25")  # feature column of the linear PM2.5 input (µg/m³, scaled)
MEASURED = tuple(c for c in MEASURES if c != "wd_deg")
# Missing-value indicators per hour: PM2.5 only; those of the other measures are almost always 0 and
# only added inputs to overfit.
INDICATED = ("pm25",)
# columns of `feature_frame`: the plain ones, log PM2.5, wind sin/cos, hour/dow/month sin/cos, flags
N_FEATURES = len(PLAIN_COLS) + 1 + 2 + 6 + len(INDICATED)


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray  # (F,) float32, fitted on the train split only
    std: np.ndarray  # (F,)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))

    def pm25(self) -> tuple[float, float]:
        """(mean, std) µg/m³ of the PM2.5 input: the model un-scales persistence with them."""
        return float(self.mean[PM25_FEATURE]), float(self.std[PM25_FEATURE])


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


def feature_frame(grid: pd.DataFrame, tz: str, max_gap: int) -> pd.DataFrame:
    """Unscaled hourly features (float32), gaps ≤ max_gap hours filled from the past only. Built
    as columns of one dict: a forecast of 1,000 stations builds 1,000 of these frames."""
    filled = grid[list(MEASURED)].ffill(limit=max_gap)
    f = {}
    for c in PLAIN_COLS:
        v = filled[c].to_numpy(np.float64)
        f[c] = np.log1p(np.clip(v, 0, None)) if c in LOG_COLS else v
    f["log_pm25"] = np.log1p(np.clip(filled["pm25"].to_numpy(np.float64), 0, None))
    rad = np.deg2rad(grid["wd_deg"].ffill(limit=max_gap).to_numpy(np.float64))
    f["wd_sin"] = np.nan_to_num(np.sin(rad))  # calm (missing) → (0, 0)
    f["wd_cos"] = np.nan_to_num(np.cos(rad))
    local = grid.index.tz_convert(tz)
    for name, v, period in [
        ("hour", local.hour, 24),
        ("dow", local.dayofweek, 7),
        ("month", local.month - 1, 12),
    ]:
        f[f"{name}_sin"] = np.sin(2 * np.pi * np.asarray(v) / period)
        f[f"{name}_cos"] = np.cos(2 * np.pi * np.asarray(v) / period)
    for c in INDICATED:
        f[f"miss_{c}"] = grid[c].isna().to_numpy()  # the raw hour was missing (filled or not)
    return pd.DataFrame({k: np.asarray(v, np.float32) for k, v in f.items()}, index=grid.index)


class Moments:
    """Running count, sum and sum of squares of the continuous features over train rows, so one
    scaler can be fitted over many stations without holding their rows together."""

    def __init__(self, columns: list[str]):
        # log1p PM2.5 inputs of the station and of the network are scaled like PM2.5's own log
        self.cont = np.array([c in PLAIN_COLS or c.startswith("log_") for c in columns])
        self.n = self.s = self.s2 = np.zeros(len(columns))

    def add(self, f: np.ndarray) -> Moments:
        ok = np.isfinite(f)
        v = np.where(ok, f, 0.0).astype(np.float64)
        self.n, self.s, self.s2 = self.n + ok.sum(0), self.s + v.sum(0), self.s2 + (v * v).sum(0)
        return self

    def merge(self, other: Moments) -> Moments:
        out = Moments.__new__(Moments)
        out.cont, out.n, out.s, out.s2 = (
            self.cont,
            self.n + other.n,
            self.s + other.s,
            self.s2 + other.s2,
        )
        return out

    def scaler(self) -> Scaler:
        """Mean/std of the continuous columns; indicators and sin/cos left as they are (0, 1)."""
        n = np.maximum(self.n, 1)
        mean = self.s / n
        std = np.sqrt(np.maximum(self.s2 / n - mean**2, 0.0))
        mean = np.where(self.cont & (self.n > 0), mean, 0.0)
        std = np.where(self.cont & (std > 1e-6), std, 1.0)
        return Scaler(mean.astype(np.float32), std.astype(np.float32))


def fit_scaler(feats: pd.DataFrame, rows: np.ndarray) -> Scaler:
    """The scaler of one station's train rows `rows`."""
    return Moments(list(feats.columns)).add(feats.to_numpy()[rows]).scaler()


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

    def windows(self, scaler: Scaler) -> Windows:
        xs = np.nan_to_num(scaler.apply(self.feats))  # unfilled non-PM2.5 holes → the train mean
        view = np.lib.stride_tricks.sliding_window_view(xs, self.lookback, axis=0)
        x = view[self.origins - self.lookback + 1].transpose(0, 2, 1)
        return Windows(
            np.ascontiguousarray(x), self.y, self.times[self.origins], self.last_pm25,
            self.features, scaler, self.split, self.dates,
        )  # fmt: skip


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
    feats = feature_frame(grid, tz, cfg.max_gap)
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
) -> Windows:
    """All windows of one station with their split labels. The scaler is fitted on train-split hours
    and the split dates resolved from `cfg` unless given (evaluation reuses the model's)."""
    h = hourly(df, cfg, tz, dates, extra)
    if scaler is None:
        rows = h.train_rows()
        if len(rows) < cfg.lookback + cfg.horizon:
            raise AqiError(f"too little training data before {h.dates.train_end:%Y-%m-%d %H:%M}")
        scaler = Moments(h.features).add(rows).scaler()
    return h.windows(scaler)


def window_at(
    df: pd.DataFrame,
    cfg: WindowConfig,
    tz: str,
    scaler: Scaler,
    at: pd.Timestamp | None = None,
    extra: pd.DataFrame | None = None,
) -> tuple[np.ndarray, pd.Timestamp, float]:
    """The one input window (1, L, F) whose origin is `at` (default: the last hour in the store),
    its origin (UTC) and the PM2.5 at the origin. Errors name the hours that block it."""
    grid = complete_grid(df)
    end = grid.index[-1]
    origin = end if at is None else at.tz_convert("UTC").floor("h")
    if not grid.index[0] <= origin <= end:
        first, last = (t.tz_convert(tz).strftime("%Y-%m-%dT%H:%M") for t in (grid.index[0], end))
        raise AqiError(f"--at {at.tz_convert(tz):%Y-%m-%dT%H:%M}: outside the data ({first} .. {last})")
    inp, _ = window_offsets(cfg.lookback, cfg.horizon)
    pos = grid.index.get_loc(origin) + inp
    if pos[0] < 0:
        raise AqiError(
            f"history too short: {cfg.lookback} hours before {origin} needed, "
            f"data starts {grid.index[0]}"
        )
    feats = feature_frame(grid.iloc[pos[0] : pos[-1] + 1], tz, cfg.max_gap)
    if extra is not None:
        feats = feats.join(extra.reindex(feats.index))
    holes = feats.index[feats["pm25"].isna()]
    if len(holes):
        raise AqiError(
            f"PM2.5 missing for longer than {cfg.max_gap} h in the last {cfg.lookback} h "
            f"before {origin:%Y-%m-%d %H:%M} UTC: {_hours(holes)}"
        )
    x = np.nan_to_num(scaler.apply(feats.to_numpy()))[None]
    return x, origin, float(feats["pm25"].iloc[-1])


def _hours(idx: pd.DatetimeIndex) -> str:
    shown = ", ".join(f"{t:%Y-%m-%d %H:00}" for t in idx[:6])
    return shown + (f" and {len(idx) - 6} more" if len(idx) > 6 else "") + " UTC"
