"""Which model forecasts a station: its own when it has one, else the network model, bound to it.

A bound network model is an ordinary `TrainedModel` for that station: its windows carry the
network's inputs (`network.extra_columns`) and its station's embedding row, so forecast, evaluate and
the scripts use it exactly as a one-station model. A station the network model never saw gets the
'unknown' row, neighbours chosen on its last `cold_days` days before the test split (its first
ones when it was installed later; `NetworkConfig`) and the network's pooled scaler (cold start).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import AqiError
from aqi.datadir import NETWORK, model_dir, network_dir
from aqi.network import UNKNOWN, NetworkPm25, coordinates, extra_columns, nearest, neighbours
from aqi.shards import pick
from aqi.store import has_station, load_manifest, stamp, stations
from aqi.trained import TrainedModel, live_folder, load_from, trained_stations
from aqi.windows import Scaler


def load(data_dir: Path, station: str) -> TrainedModel:
    """The station's own model, else the network model bound to it; AqiError when neither exists."""
    if live_folder(model_dir(data_dir, station)):
        tm = load_from(model_dir(data_dir, station), station)
        return bind(tm, data_dir, station) if tm.config.network.stations else tm  # fine-tuned
    if live_folder(network_dir(data_dir)):
        return bind(load_network(data_dir), data_dir, station)
    raise AqiError(
        f"no trained model for station {station!r} in {Path(data_dir) / 'models'}; "
        f"run `aqi train --station {station}` or `aqi train --station all`"
    )


def load_network(data_dir: Path) -> TrainedModel:
    """The data folder's network model (`network_at`)."""
    return network_at(network_dir(data_dir))


def network_at(folder: Path) -> TrainedModel:
    """The network model in `folder` (a models/_network), loaded once per process while its
    CURRENT pointer is unchanged."""
    pointer = Path(folder) / "CURRENT"
    key = pointer.stat().st_mtime_ns if pointer.exists() else 0
    where = str(pointer.resolve())
    if _NET.get(where, (None,))[0] != key:
        while len(_NET) >= NET_CACHE:  # the oldest first: a script trying many networks
            _NET.pop(next(iter(_NET)))
        _NET[where] = (key, load_from(Path(folder), NETWORK))
    return _NET[where][1]


_NET: dict = {}  # per CURRENT pointer: (its mtime, the network model) (`load_network`)
NET_CACHE = 4  # network models kept loaded: the data dir's and a few `--model NAME=DIR`


def covered(tm: TrainedModel) -> list[str]:
    """The stations a network model was trained on, in embedding order (row i + 1)."""
    return list(tm.info["data"]["stations"])


def bind(tm: TrainedModel, data_dir: Path, station: str, net=None, entry: dict | None = None):
    """The network model `tm` as the model of `station` (one it covers, or a new one). A caller
    binding many stations reads `net` and the manifest once and passes each one's `entry`."""
    known = covered(tm)
    net = net if net is not None else read_network(tm, data_dir, [station])
    entry = entry if entry is not None else load_manifest(data_dir)["stations"].get(station, {})
    tz = entry.get("timezone", "UTC")
    cfg = tm.config
    if station in known:
        index, near = known.index(station) + 1, tm.info["data"]["neighbours"][station]
        scaler = Scaler.from_dict(tm.info["data"]["scalers"][station])
    else:
        index, (near, scaler) = UNKNOWN, _cold_start(tm, net, station, entry)
    extra = extra_columns(net, station, near, index, cfg.network, cfg.window.max_gap, scaler.pm25())
    kind = tm.info.get("kind", "network")
    info = tm.info | {"kind": kind, "neighbours": near, "covered": station in known}
    return dataclasses.replace(tm, station=station, timezone=tz, scaler=scaler, extra=extra, info=info)


def read_network(tm: TrainedModel, data_dir: Path, names: list[str], since=None) -> NetworkPm25:
    """The PM2.5 of every station `tm` covers and of `names` (from `since`, UTC). The last one
    read is kept while its partitions are unchanged: evaluating N stations reads it once, not N
    times."""
    stations = needed(tm, data_dir, names)
    key = (str(Path(data_dir).resolve()), tuple(stations), since, stamp(data_dir, stations))
    if _LAST.get("key") != key:
        _LAST.update(key=key, net=NetworkPm25.read(data_dir, stations, since))
    return _LAST["net"]


_LAST: dict = {}  # the last network read (`read_network`): key and NetworkPm25


def needed(tm: TrainedModel, data_dir: Path, names: list[str]) -> list[str]:
    """The stations a network forecast of `names` reads: those `tm` covers, then `names`;
    AqiError when the store lacks one of them."""
    known = covered(tm)
    absent = [s for s in known if not has_station(data_dir, s)]
    if absent:
        raise AqiError(
            f"{tm.path}: the network model needs station(s) {', '.join(absent[:5])}, which the "
            f"store does not hold; ingest them or retrain with `aqi train --station all`"
        )
    for st in names:
        if not has_station(data_dir, st):
            raise AqiError(f"unknown station {st!r}: not in {Path(data_dir) / 'store'}")
    return known + sorted(set(names) - set(known))


def _cold_start(tm: TrainedModel, net: NetworkPm25, station: str, entry: dict):
    """(neighbours, scaler) of a station the model never saw: its nearest covered stations when
    the model chose by coordinates and the store has the station's, else the most correlated
    over `_cold_days`; the network's pooled scaler (its typical station): 30 days of one season
    are no estimate of a station's yearly PM2.5 spread."""
    start, end = _cold_days(tm, net, station)
    among, k, known = set(covered(tm)), tm.config.network.neighbours, tm.info["data"].get("coordinates")
    own = coordinates({station: entry}, [station]) if known else None
    if own:
        return nearest(known | own, [station], k, among)[station], tm.scaler
    return neighbours(net, start, end, k, among, tm.config.network.cold_overlap)[station], tm.scaler


def _cold_days(tm: TrainedModel, net: NetworkPm25, station: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start, end] UTC of the `cold_days` days a new station is bound on: those before the
    model's test split when they hold `cold_overlap` hours of PM2.5, else, for a station installed
    too late for that, its first `cold_days` days; AqiError when they hold fewer."""
    n, end, pm = tm.config.network, tm.split.val_end.tz_convert("UTC"), net.column(station)
    start, seen = end - pd.Timedelta(days=n.cold_days), net.times[np.isfinite(pm)]
    if _hours(net, pm, start, end) < n.cold_overlap and len(seen) and seen[0] > start:
        start = seen[0] - pd.Timedelta(hours=1)  # (start, end] then holds its first hour
        end = start + pd.Timedelta(days=n.cold_days)
    if _hours(net, pm, start, end) < n.cold_overlap:
        raise AqiError(
            f"station {station}: the network model never saw it and it has under {n.cold_overlap} "
            f"hours of PM2.5 in the {n.cold_days} days from {start:%Y-%m-%d}; too little to start"
        )
    return start, end


def _hours(net: NetworkPm25, pm: np.ndarray, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Hours with PM2.5 in (start, end]."""
    return int(np.isfinite(pm[(net.times > start) & (net.times <= end)]).sum())


def scorable(data_dir: Path) -> tuple[list[str], list[str]]:
    """(`forecastable` stations, problems); with a torn network model, the stations with their own
    models and that model's error: one damaged model must not stop a batch job's other stations."""
    try:
        return forecastable(data_dir), []
    except AqiError as e:
        return trained_stations(data_dir), [f"network model: {e}"]


def in_shard(data_dir: Path, shard: str | None) -> tuple[list[str], list[str]]:
    """`scorable` of the stations of `shard` (all when None). A shard holding none of them is empty,
    not an error (N array jobs over fewer stations than N); no model at all is an AqiError."""
    names, torn = scorable(data_dir)
    if not names and not torn:
        known = stations(data_dir)
        raise AqiError(
            f"no trained models in {Path(data_dir) / 'models'}; run `aqi train --station "
            f"{known[0] if known else 'X'}`"
        )
    return pick(names, shard), torn


def forecastable(data_dir: Path) -> list[str]:
    """Stations with their own model or covered by the network model."""
    own = set(trained_stations(data_dir))
    if live_folder(network_dir(data_dir)):
        own |= set(covered(load_network(data_dir)))
    return sorted(own)
