"""`aqi forecast`: the next H hours of PM2.5 from a station's model and the last L hours in the store.

The JSON schema (one object per station) is stable for batch jobs:
  {"station", "issued_at" (origin, local ISO 8601), "standard", "unit": "µg/m³",
   "model": {"path", "trained_range": [first origin, end of the train split], "sha256",
             "kind": "station" | "network" | "finetuned", "runtime": "litert" | "keras"},
   "forecasts": [{"target_time", "horizon", "pm25", "aqi", "level", "level_name", "color",
                  ("point_level", "level_probability") with a level or quantile head,
                  ("quantiles": {"0.1": …}, "p_level_at_least": {"2": …}) with a quantile head}]}
"level" is the published level: the point forecast's, or with a predictive distribution the level
of least expected cost (`--miss-cost`; 1 = the most probable); "aqi" is the point forecast's index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aqi.concentrations import exceedance_probability
from aqi.config import AqiError
from aqi.levels import Standard, get_standard, index_value, level
from aqi.network import NetworkPm25, no_rows
from aqi.prediction import Prediction
from aqi.resolve import bind, in_shard, load, load_network, needed
from aqi.store import load_manifest, read_station, read_stations
from aqi.trained import MODEL_FILE, trained_stations


def forecast_station(
    data_dir: Path,
    station: str,
    at: str | None = None,
    standard: str | None = None,
    miss_cost: float | None = None,
    now: pd.Timestamp | None = None,
) -> dict:
    """One station's forecast at `at`, else at `now` (default `store_end`)."""
    tm = load(data_dir, station)
    when = _parse_at(at, tm.timezone) if at else None
    now = now if now is not None else store_end(data_dir)
    x, origin, last, stale = tm.window_at(read_station(data_dir, station), when, now)
    return _result(tm, origin, tm.predict(x, np.array([last])), standard, miss_cost) | stale


def store_end(data_dir: Path) -> pd.Timestamp:
    """The latest hour of any station: a forecast's default issue time. A station whose feed is
    out is forecast from that hour too, through its gap (`window_at`)."""
    return max(pd.Timestamp(m["last_time"]) for m in load_manifest(data_dir)["stations"].values())


def network_forecasts(
    data_dir: Path, names: list[str], at, standard, miss_cost
) -> tuple[list[dict], list[str]]:
    """Forecasts of many stations by the network model: loaded once, the network's PM2.5 read once
    (recent hours only), one forward pass for every station's window."""
    if not names:
        return [], []
    tm, manifest = load_network(data_dir), load_manifest(data_dir)["stations"]
    latest = max(pd.Timestamp(m["last_time"]) for m in manifest.values())  # `store_end`
    since = _history_start(tm, _parse_at(at, tm.timezone) if at else latest)
    frames, bad = _frames(data_dir, needed(tm, data_dir, names), since)
    net = NetworkPm25.from_frames(frames)  # each partition read once, for both uses
    ready, failed = [], []
    for name in names:
        try:
            if name in bad:
                raise bad[name]
            bound = bind(tm, data_dir, name, net, manifest[name])
            when = _parse_at(at, bound.timezone) if at else None
            x, origin, last, stale = bound.window_at(frames[name], when, latest)
            ready.append((bound, origin, x, stale, last))
        except AqiError as e:
            failed.append(f"{name}: {e}")
    if not ready:
        return [], failed
    # each window scaled by its station's scaler: the PM2.5 at its origin is window_at's, not the
    # unbound network scaler's reading of x
    pred = tm.predict(np.concatenate([x for _, _, x, _, _ in ready]), np.array([c for *_, c in ready]))
    results = [
        _result(b, origin, pred.row(i), standard, miss_cost) | stale
        for i, (b, origin, _, stale, _) in enumerate(ready)
    ]
    return results, failed


def _frames(data_dir: Path, names: list[str], since):
    """({station: its rows from `since`}, {station: AqiError}): a corrupt partition has no rows,
    so it is a missing neighbour to the others and an error of its own."""
    frames, bad = read_stations(data_dir, names, since)
    return frames | {st: no_rows() for st in bad}, bad


# days of history a network forecast reads at least, as when its inputs held a week of daily
# means: which stations with an outage get a forecast must not depend on the model's inputs
READ_DAYS = 6


def _history_start(tm, end: pd.Timestamp) -> pd.Timestamp:
    """The first hour a network forecast issued at `end` reads (UTC): its window, the hours an
    outage may carry a value over and the model's daily means (at least READ_DAYS) before them."""
    w, days = tm.config.window, max(tm.config.network.days, READ_DAYS)
    return end.tz_convert("UTC") - pd.Timedelta(hours=w.lookback + 24 * (days + 2) + w.stale_limit)


def _result(tm, origin: pd.Timestamp, pred: Prediction, standard, miss_cost) -> dict:
    std = get_standard(standard) if standard else tm.standard
    published = tm.published(pred, std, miss_cost)
    if published is None and miss_cost is not None:
        raise AqiError(
            f"--miss-cost: {tm.station}'s model gives no level probabilities under {std.key} (a "
            "point head, or a level head of another standard) to weigh; drop --miss-cost"
        )
    times = origin + pd.to_timedelta(np.arange(1, pred.point.shape[1] + 1), unit="h")
    lv, idx = level(pred.point[0], std), index_value(pred.point[0], std)  # (H,) each, at once
    local = times.tz_convert(tm.timezone)
    rows = [_row(t, h, pred, published, std, (lv[h], idx[h])) for h, t in enumerate(local)]
    return {
        "station": tm.station,
        "issued_at": origin.tz_convert(tm.timezone).isoformat(),
        "standard": std.key,
        "unit": "µg/m³",
        "model": {
            "path": str(tm.path / MODEL_FILE),
            "trained_range": [tm.info["data"]["first_origin"], str(tm.split.train_end)],
            "sha256": tm.sha256,
            "kind": tm.info.get("kind", "station"),  # its own model, or the network model
            "runtime": "litert" if tm.runner else "keras",  # which file computed it (`exported`)
        },
        "forecasts": rows,
    }


def _row(t: pd.Timestamp, h: int, pred: Prediction, published, std: Standard, point_level) -> dict:
    """Hour h (0-based) of one forecast, `point_level` its point's (level, index). With a
    probabilistic head the published level is the decided one (`Prediction.decided`), with its
    probability; `point_level` is the point's."""
    point = float(pred.point[0, h])
    k = int(point_level[0])
    row = {"target_time": t.isoformat(), "horizon": h + 1, "pm25": round(point, 1)}
    row["aqi"] = int(point_level[1])
    if published is not None:
        row["point_level"], k = k, int(published[0][0, h])
        row["level_probability"] = round(float(published[1][0, h]), 3)
    row |= {"level": k, "level_name": std.names[k], "color": std.colors[k]}
    if pred.quantiles is not None:
        qs = pred.quantile_levels
        values = pred.quantiles[0, h]
        row["quantiles"] = {f"{lv:g}": round(float(v), 1) for lv, v in zip(qs, values, strict=True)}
        row["p_level_at_least"] = exceedance(np.asarray(qs), values, std)
    return row


def exceedance(quantiles: np.ndarray, values: np.ndarray, std: Standard) -> dict[str, float]:
    """P(PM2.5 reaches level k), k from the unhealthy level up."""
    return {
        str(k): round(float(exceedance_probability(quantiles, values, std.edges[k - 1])), 3)
        for k in range(std.unhealthy, std.n_levels)
    }


def _parse_at(at: str, tz: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(at)
    except ValueError:
        t = pd.NaT
    if pd.isna(t):
        raise AqiError(f"--at {at!r}: not a time (use e.g. 2016-12-01T08:00)")
    return t.tz_localize(tz) if t.tzinfo is None else t


def forecast_stations(
    data_dir: Path,
    station: str,
    at: str | None = None,
    standard: str | None = None,
    miss_cost: float | None = None,
    shard: str | None = None,
) -> tuple[list[dict], list[str]]:
    """Forecasts, and for `--station all` the one-line reasons of stations that could not be
    forecast (the others still are: one station's outage must not blank a city's batch job)."""
    if miss_cost is not None and not 0 < miss_cost < float("inf"):
        raise AqiError(f"--miss-cost {miss_cost}: must be a finite number > 0")
    if station != "all":
        return [forecast_station(data_dir, station, at, standard, miss_cost)], []
    names, torn = in_shard(data_dir, shard)
    own = set(trained_stations(data_dir))
    results, failed = network_forecasts(
        data_dir, [n for n in names if n not in own], at, standard, miss_cost
    )
    failed = torn + failed
    mine = [n for n in names if n in own]
    now = store_end(data_dir) if mine else None  # the manifest read once, not once per station
    for name in mine:
        try:
            results.append(forecast_station(data_dir, name, at, standard, miss_cost, now))
        except AqiError as e:
            failed.append(f"{name}: {e}")
    if failed and not results:  # no results and nothing failed: a --shard of none of them
        raise AqiError("no station could be forecast: " + "; ".join(failed))
    return sorted(results, key=lambda r: r["station"]), failed
