"""`aqi forecast`: the next H hours of PM2.5 from a station's model and the last L hours in the store.

The JSON schema (one object per station) is stable for batch jobs:
  {"station", "issued_at" (origin, local ISO 8601), "standard", "unit": "µg/m³",
   "model": {"path", "trained_range": [first origin, end of the train split], "sha256"},
   "forecasts": [{"target_time", "horizon", "pm25", "aqi", "level", "level_name", "color",
                  ("quantiles": {"0.1": …}, "p_level_at_least": {"2": …}) with a quantile head}]}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aqi import artifacts
from aqi.config import AqiError
from aqi.levels import Standard, exceedance_probability, get_standard, index_value, level
from aqi.store import read_station, stations
from aqi.windows import window_at


def forecast_station(
    data_dir: Path, station: str, at: str | None = None, standard: str | None = None
) -> dict:
    model, meta = artifacts.load(data_dir, station)
    cfg, tz = artifacts.config_of(meta), meta["timezone"]
    std = get_standard(standard or meta["standard"])
    when = _parse_at(at, tz) if at else None
    x, origin, _ = window_at(
        read_station(data_dir, station), cfg.window, tz, artifacts.scaler_of(meta), when
    )
    pred = np.asarray(model(x, training=False))[0]  # (H,) or (H, Q) µg/m³
    quantiles = cfg.model.quantiles if pred.ndim == 2 else ()
    times = origin + pd.to_timedelta(np.arange(1, pred.shape[0] + 1), unit="h")
    rows = [_row(t.tz_convert(tz), h + 1, pred[h], quantiles, std) for h, t in enumerate(times)]
    return {
        "station": station,
        "issued_at": origin.tz_convert(tz).isoformat(),
        "standard": std.key,
        "unit": "µg/m³",
        "model": {
            "path": str(artifacts.model_dir(data_dir, station) / "model.keras"),
            "trained_range": [meta["data"]["first_origin"], meta["split"]["train_end"]],
            "sha256": meta.get("model_sha256"),
        },
        "forecasts": rows,
    }


def _row(t: pd.Timestamp, h: int, p: np.ndarray, quantiles, std: Standard) -> dict:
    point = float(p[len(p) // 2]) if quantiles else float(p)
    k = int(level(point, std))
    row = {
        "target_time": t.isoformat(),
        "horizon": h,
        "pm25": round(point, 1),
        "aqi": int(index_value(point, std)),
        "level": k,
        "level_name": std.names[k],
        "color": std.colors[k],
    }
    if quantiles:
        row["quantiles"] = {f"{q:g}": round(float(v), 1) for q, v in zip(quantiles, p, strict=True)}
        row["p_level_at_least"] = exceedance(np.asarray(quantiles), p, std)
    return row


def exceedance(quantiles: np.ndarray, values: np.ndarray, std: Standard) -> dict[str, float]:
    """P(PM2.5 reaches level k), k from the unhealthy level up (levels.exceedance_probability)."""
    return {
        str(k): round(float(exceedance_probability(quantiles, values, std.edges[k - 1])), 3)
        for k in range(std.unhealthy, std.n_levels)
    }


def _parse_at(at: str, tz: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(at)
    except ValueError:
        raise AqiError(f"--at {at!r}: not a time (use e.g. 2016-12-01T08:00)") from None
    return t.tz_localize(tz) if t.tzinfo is None else t


def forecast_stations(
    data_dir: Path, station: str, at: str | None = None, standard: str | None = None
) -> tuple[list[dict], list[str]]:
    """Forecasts, and for `--station all` the one-line reasons of stations that could not be
    forecast (the others still are: one station's outage must not blank a city's batch job)."""
    if station != "all":
        return [forecast_station(data_dir, station, at, standard)], []
    names = artifacts.trained_stations(data_dir)
    if not names:
        known = stations(data_dir)
        raise AqiError(
            f"no trained models in {Path(data_dir) / 'models'}; run `aqi train --station "
            f"{known[0] if known else 'X'}`"
        )
    results, failed = [], []
    for name in names:
        try:
            results.append(forecast_station(data_dir, name, at, standard))
        except AqiError as e:
            failed.append(f"{name}: {e}")
    if not results:
        raise AqiError("no station could be forecast: " + "; ".join(failed))
    return results, failed
