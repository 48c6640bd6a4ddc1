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
Neighbours are the stations most correlated with it on the train split (log PM2.5, hourly): the store
holds no coordinates yet, so nearness by distance is not available.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aqi.config import AqiError, NetworkConfig
from aqi.datadir import partition_path
from aqi.windows import Hourly, Scaler

# the last input columns of a network model: the station's PM2.5 scale and its embedding row
STATION_COLUMNS = ("pm25_mean", "pm25_std", "station_index")
UNKNOWN = 0  # embedding row of a station the model was not trained on (cold start)
MIN_OVERLAP = 24 * 30  # hours both stations observed on the train split for a correlation to count


@dataclass(frozen=True)
class NetworkPm25:
    values: np.ndarray  # (T, S) float32 log1p(PM2.5 µg/m³), NaN = missing
    times: pd.DatetimeIndex  # (T,) UTC hours, complete
    names: tuple[str, ...]  # (S,) station ids, the columns of `values`
    total: np.ndarray  # (T,) sum over stations of `values` (NaN as 0), for the network mean
    count: np.ndarray  # (T,) stations observed at each hour

    @classmethod
    def read(cls, data_dir: Path, names: list[str], since: pd.Timestamp | None = None):
        """The stations' PM2.5 (from `since`, UTC, when given: a forecast needs a week only)."""
        series = {}
        when = [("time", ">=", since.to_pydatetime())] if since is not None else None
        for st in names:
            path = partition_path(data_dir, st)
            if not path.exists():
                raise AqiError(f"station {st!r}: not in {path.parent.parent}; ingest it first")
            t = pq.read_table(path, columns=["time", "pm25"], filters=when).to_pandas()
            if t.empty:
                raise AqiError(f"station {st!r}: no rows in {path} after {since}")
            series[st] = pd.Series(t["pm25"].to_numpy(np.float32), pd.DatetimeIndex(t["time"]))
        first = min(s.index.min() for s in series.values())
        last = max(s.index.max() for s in series.values())
        times = pd.date_range(first, last, freq="h", name="time")
        values = np.full((len(times), len(names)), np.nan, np.float32)
        for j, st in enumerate(names):
            s = series[st]
            values[times.get_indexer(s.index), j] = np.log1p(np.clip(s.to_numpy(), 0, None))
        seen = np.isfinite(values)
        total = np.where(seen, values, 0.0).sum(1, dtype=np.float32)
        return cls(values, times, tuple(names), total, seen.sum(1).astype(np.float32))

    def column(self, station: str) -> np.ndarray:
        if station not in self.names:
            raise AqiError(f"station {station!r}: not among the network's stations")
        return self.values[:, self.names.index(station)]


def neighbours(
    net: NetworkPm25,
    start: pd.Timestamp,
    end: pd.Timestamp,
    k: int,
    among=None,
    min_overlap: int = MIN_OVERLAP,
) -> dict[str, list[str]]:
    """Per station, the k others (of `among`, default all) whose hourly log PM2.5 correlates most
    with its own over start..end (the train split; missing hours count as the station's mean;
    pairs observed together < MIN_OVERLAP hours are not neighbours)."""
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
    out = pd.DataFrame(index=net.times)
    for k in range(cfg.neighbours):
        name = neighbours_of[k] if k < len(neighbours_of) else None
        col = pd.Series(net.column(name) if name else np.nan, index=net.times, dtype=np.float32)
        out[f"log_nb{k + 1}"] = col.ffill(limit=max_gap)
        out[f"miss_nb{k + 1}"] = out[f"log_nb{k + 1}"].isna().astype(np.float32)
    own = pd.Series(net.column(station), index=net.times)
    if cfg.network_mean:  # the mean of every other station's log PM2.5 at the hour
        mine = np.isfinite(own.to_numpy())
        rest = net.count - mine
        mean = (net.total - np.where(mine, own, 0.0)) / np.where(rest > 0, rest, np.nan)
        out["log_net"] = pd.Series(mean, index=net.times).ffill(limit=max_gap)
    daily = own.rolling(24, min_periods=12).mean()  # the 24 h ending at each hour
    for d in range(1, cfg.days + 1):
        out[f"log_day{d}"] = daily.shift(24 * d)
    for col, value in zip(STATION_COLUMNS, (*scale, index), strict=True):
        out[col] = np.float32(value)
    return out.astype(np.float32)


def with_scale(h: Hourly, scaler: Scaler) -> Hourly:
    """The station's hourly inputs with its PM2.5 scale (mean, std µg/m³) in their columns."""
    feats = h.feats.copy()
    for col, value in zip(STATION_COLUMNS[:2], scaler.pm25(), strict=True):
        feats[:, h.features.index(col)] = value
    return dataclasses.replace(h, feats=feats)
