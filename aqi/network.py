"""What a model of many stations can see that one station's model cannot: the network's PM2.5.

`NetworkPm25` holds every station's hourly log1p(PM2.5) on one UTC grid (hours x stations, float32:
35 k hours x 1,000 stations is 140 MB), read from the store's PM2.5 column only. From it each station
gets extra hourly input columns (`extra_columns`), every one at hours <= the window's hours, so no
input ever reaches past the origin:
- `log_nb<k>` / `miss_nb<k>`: its k-th neighbour's PM2.5 (gaps <= max_gap forward-filled) and a
  missing indicator; a missing neighbour is a 0 input with its indicator set, never a dropped window;
- `log_net`: the mean log PM2.5 of every other station at the hour (when configured);
- `log_day<k>`: its own 24-hour mean PM2.5 k days earlier (k = 1..days), a week of history at the cost
  of a few columns;
- `pm25_mean`, `pm25_std`: its PM2.5 scale (µg/m³, its own train split), with which the model
  un-scales its inputs and scales its correction: one network serves stations of any level;
- `station_index`: its row in the model's embedding (0 = a station the model never saw).
Neighbours are the stations most correlated with it on the train split (log PM2.5, hourly), or the
nearest by great-circle distance (`NetworkConfig.neighbours_by`; coordinates from OpenAQ, AQS or
`aqi stations --locations`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from aqi.config import AqiError, NetworkConfig
from aqi.store import has_station, read_stations
from aqi.windows import Hourly, Scaler, ffill

# the last input columns of a network model: the station's PM2.5 scale and its embedding row
STATION_COLUMNS = ("pm25_mean", "pm25_std", "station_index")
UNKNOWN = 0  # embedding row of a station the model was not trained on (cold start)
READ_CHUNK = 64  # stations per multi-threaded read: 3x faster than one by one, memory bounded


def no_rows() -> pd.DataFrame:
    """A station's PM2.5 with no hours: what a corrupt partition is to its neighbours."""
    return pd.DataFrame({"time": pd.DatetimeIndex([], tz="UTC"), "pm25": np.float32([])})


@dataclass(frozen=True)
class NetworkPm25:
    values: np.ndarray  # (T, S) float32 log1p(PM2.5 µg/m³), NaN = missing
    times: pd.DatetimeIndex  # (T,) UTC hours, complete
    names: tuple[str, ...]  # (S,) station ids, the columns of `values`
    total: np.ndarray  # (T,) sum over stations of `values` (NaN as 0), for the network mean
    count: np.ndarray  # (T,) stations observed at each hour

    @classmethod
    def read(cls, data_dir: Path, names: list[str], since: pd.Timestamp | None = None):
        """The stations' PM2.5 (from `since`, UTC, when given: a forecast needs a week only). A
        corrupt partition reads as a station with no rows: to the others, a missing neighbour."""
        for st in names:
            if not has_station(data_dir, st):
                raise AqiError(f"station {st!r}: not in {Path(data_dir) / 'store'}; ingest it first")
        frames = {}
        for i in range(0, len(names), READ_CHUNK):
            part = names[i : i + READ_CHUNK]
            got, _ = read_stations(data_dir, part, since, ["time", "pm25"])
            frames |= {st: got.get(st, no_rows()) for st in part}  # corrupt: no rows
        net = cls.from_frames(frames)
        del frames
        # arrow's allocator keeps the freed pages of 1,000 reads: a training peaked 205 MiB higher
        pa.default_memory_pool().release_unused()
        return net

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame]) -> NetworkPm25:
        """From store-shaped frames (`time` UTC, `pm25` µg/m³) of the stations, in their order."""
        seen = [f["time"] for f in frames.values() if len(f)]  # a station in an outage: no rows
        if not seen:
            raise AqiError(f"stations {', '.join(list(frames)[:5])}: no rows in the hours read")
        first, last = min(t.iloc[0] for t in seen), max(t.iloc[-1] for t in seen)  # sorted
        times = pd.date_range(first, last, freq="h", name="time")
        values = np.full((len(times), len(frames)), np.nan, np.float32)
        for j, f in enumerate(frames.values()):
            pm = np.log1p(np.clip(f["pm25"].to_numpy(np.float32), 0, None))
            values[times.get_indexer(pd.DatetimeIndex(f["time"])), j] = pm
        return cls.of(values, times, tuple(frames))

    @classmethod
    def of(cls, values: np.ndarray, times: pd.DatetimeIndex, names: tuple[str, ...]) -> NetworkPm25:
        seen = np.isfinite(values)
        total = np.where(seen, values, 0.0).sum(1, dtype=np.float32)
        return cls(values, times, names, total, seen.sum(1).astype(np.float32))

    def only(self, names: list[str]) -> NetworkPm25:
        """The stations `names` on the same UTC grid: a subset without reading the store again."""
        return self.of(self.values[:, [self.positions[n] for n in names]], self.times, tuple(names))

    def column(self, station: str) -> np.ndarray:
        j = self.positions.get(station)
        if j is None:
            raise AqiError(f"station {station!r}: not among the network's stations")
        return self.values[:, j]

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Station id → its column of `values`."""
        return {n: j for j, n in enumerate(self.names)}


def neighbours(
    net: NetworkPm25,
    start: pd.Timestamp,
    end: pd.Timestamp,
    k: int,
    among=None,
    min_overlap: int = NetworkConfig.min_overlap,
) -> dict[str, list[str]]:
    """Per station, the k others (of `among`, default all) whose hourly log PM2.5 correlates most
    with its own over start..end (the train split; missing hours count as the station's mean;
    pairs observed together < min_overlap hours are not neighbours)."""
    rows = (net.times >= start) & (net.times <= end)
    v = net.values[rows]
    seen = np.isfinite(v)
    z = np.where(seen, (v - np.nanmean(v, 0)) / (np.nanstd(v, 0) + 1e-6), 0.0)
    corr = (z.T @ z) / np.maximum(seen.T.astype(np.float32) @ seen.astype(np.float32), 1.0)
    overlap = seen.T.astype(np.float32) @ seen.astype(np.float32)
    corr[(overlap < min_overlap) | np.eye(len(net.names), dtype=bool)] = -np.inf
    if among is not None:
        corr[:, [n not in among for n in net.names]] = -np.inf
    out = {}
    for j, st in enumerate(net.names):
        order = [i for i in np.argsort(-corr[j], kind="stable") if np.isfinite(corr[j, i])]
        out[st] = [net.names[i] for i in order[:k]]
    return out


def coordinates(entries: dict[str, dict], names: list[str]) -> dict[str, list[float]] | None:
    """{station: [latitude, longitude]} (degrees) from manifest `entries`, or None unless every
    one of `names` has both (AirNow's hourly files and the UCI files carry none)."""
    out = {
        st: [entries.get(st, {}).get("latitude"), entries.get(st, {}).get("longitude")] for st in names
    }
    ok = all(isinstance(v, int | float) and math.isfinite(v) for ll in out.values() for v in ll)
    return out if ok else None


def nearest(
    coords: dict[str, list[float]], names: list[str], k: int, among=None
) -> dict[str, list[str]]:
    """Per station of `names`, the k others of `among` (default `names`) nearest by great-circle
    distance (haversine; ties in name order)."""
    pool = sorted(among if among is not None else names)
    lat, lon = (np.radians([coords[s][i] for s in pool]) for i in (0, 1))
    out = {}
    for st in names:
        la, lo = np.radians(coords[st])
        h = np.sin((lat - la) / 2) ** 2 + np.cos(la) * np.cos(lat) * np.sin((lon - lo) / 2) ** 2
        order = np.argsort(np.arcsin(np.sqrt(np.clip(h, 0, 1))), kind="stable")
        out[st] = [pool[i] for i in order if pool[i] != st][:k]
    return out


def extra_columns(
    net: NetworkPm25,
    station: str,
    neighbours_of: list[str],
    index: int,
    cfg: NetworkConfig,
    max_gap: int,
    scale: tuple[float, float] = (np.nan, np.nan),
) -> pd.DataFrame:
    """(T, C) float32 extra inputs of `station` on the network's UTC grid (see the module doc);
    the caller reindexes them onto the station's own grid. `scale` is its PM2.5 (mean, std),
    µg/m³; left NaN, `with_scale` fills it in once the station's scaler is fitted."""
    out, t = {}, len(net.times)
    for k in range(cfg.neighbours):
        name = neighbours_of[k] if k < len(neighbours_of) else None
        col = _ffill(net.column(name) if name else np.full(t, np.nan, np.float32), max_gap)
        out[f"log_nb{k + 1}"], out[f"miss_nb{k + 1}"] = col, np.isnan(col)
    own = net.column(station)
    if cfg.network_mean:  # the mean of every other station's log PM2.5 at the hour
        mine = np.isfinite(own)
        rest = net.count - mine
        mean = (net.total - np.where(mine, own, 0.0)) / np.where(rest > 0, rest, np.nan)
        out["log_net"] = _ffill(mean, max_gap)
    daily = rolling_mean(own, 24, 12)  # the 24 h ending at each hour
    for d in range(1, cfg.days + 1):
        out[f"log_day{d}"] = np.r_[np.full(min(24 * d, t), np.nan), daily[: max(t - 24 * d, 0)]]
    for col, value in zip(STATION_COLUMNS, (*scale, index), strict=True):
        out[col] = np.full(t, value)
    cols = np.stack([np.asarray(v, np.float32) for v in out.values()], 1)
    return pd.DataFrame(cols, index=net.times, columns=list(out))


def n_extra(cfg: NetworkConfig) -> int:
    """How many columns `extra_columns` makes under `cfg`."""
    return 2 * cfg.neighbours + int(cfg.network_mean) + cfg.days + len(STATION_COLUMNS)


def rolling_mean(v: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Mean of the finite values among the `window` steps ending at each step, NaN where fewer
    than `min_periods` (pandas' `rolling(window, min_periods).mean()`, on a plain array)."""
    ok = np.isfinite(v)
    total = np.r_[0.0, np.cumsum(np.where(ok, v, 0.0), dtype=np.float64)]
    count = np.r_[0, np.cumsum(ok)]
    end = np.arange(1, len(v) + 1)
    start = np.maximum(end - window, 0)
    n = count[end] - count[start]
    return np.where(n >= min_periods, (total[end] - total[start]) / np.maximum(n, 1), np.nan)


def _ffill(v: np.ndarray, limit: int) -> np.ndarray:
    """Forward-fill NaN gaps of at most `limit` steps (pandas' rule, `windows.ffill`), (T,)."""
    return ffill(np.asarray(v)[:, None], limit)[:, 0]


def with_scale(h: Hourly, scaler: Scaler) -> Hourly:
    """The station's hourly inputs with its PM2.5 scale (mean, std µg/m³) in their columns."""
    feats = h.feats.copy()
    for col, value in zip(STATION_COLUMNS[:2], scaler.pm25(), strict=True):
        feats[:, h.features.index(col)] = value
    return dataclasses.replace(h, feats=feats)


def with_history(net: NetworkPm25, w, end: pd.Timestamp) -> list[str]:
    """The stations with a window a network model can learn from: an origin with L hours of PM2.5
    (gaps <= max_gap filled) and H hours after it, the last by `end` (a train window's targets) and
    by the station's last observation, at least one of them observed (as `windows.hourly` keeps)."""
    raw = ~np.isnan(net.values)  # (T, S)
    seen = pd.DataFrame(net.values).ffill(limit=w.max_gap).notna().to_numpy()
    L, H, T = w.lookback, w.horizon, len(net.times)
    ci, ct = (np.vstack([np.zeros((1, raw.shape[1])), np.cumsum(a, 0)]) for a in (seen, raw))
    t = np.arange(L - 1, T - H)  # origins with L inputs and H targets on the grid
    full = (ci[t + 1] - ci[t + 1 - L]) == L
    observed = (ct[t + H + 1] - ct[t + 1]) > 0
    last = T - 1 - np.argmax(raw[::-1], axis=0)  # (S,) last observed hour
    ok = full & observed & (t[:, None] + H <= last) & (net.times[t + H] <= end)[:, None]
    return [n for n, good in zip(net.names, ok.any(0), strict=True) if good]
