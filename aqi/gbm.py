"""The gradient-boosting baseline as a practitioner sets it up, fitted once per network and cached.

Pooled over every station in the store: per forecast origin, PM2.5 now and over the last 24 hours,
rolling means and maxima of PM2.5 over 3-72 h, the weather, the other pollutants and the calendar at
the origin, and the station as a category; one LightGBM model per horizon with the L1 objective
(it is scored on MAE) and early stopping on the validation split. Inputs are read at or before the
origin only, with the same past-only gap filling as the network's windows.

The models are cached in models/_gbm/<key>/, the key a hash of what they depend on (every
station's stored partition, the window config, the split dates, these settings, the LightGBM
version): evaluating another station, or the same one again, reuses them; any change refits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import AqiError, GbmConfig, WindowConfig
from aqi.datadir import atomic_write_bytes, models_dir
from aqi.store import fingerprint, load_manifest, read_station
from aqi.windows import Split, Windows, build_windows, complete_grid, feature_frame

LAGS = 24  # hours of PM2.5 lags (t, t-1, ..., t-23)
ROLLING = (3, 6, 12, 24, 48, 72)  # hours: windows of the rolling PM2.5 mean and maximum


def origin_features(
    grid: pd.DataFrame, tz: str, max_gap: int, origins: pd.DatetimeIndex
) -> pd.DataFrame:
    """(N, ~60) features at each origin (UTC times on the station's complete hourly grid)."""
    f = feature_frame(grid, tz, max_gap)
    pm = f["pm25"]
    cols = {f"pm25_lag{k}": pm.shift(k) for k in range(LAGS)}
    for n in ROLLING:
        roll = pm.rolling(n, min_periods=1)
        cols[f"pm25_mean{n}"], cols[f"pm25_max{n}"] = roll.mean(), roll.max()
    table = pd.concat([pd.DataFrame(cols), f.drop(columns=["pm25", "log_pm25"])], axis=1)
    return table.reindex(origins).astype(np.float32).reset_index(drop=True)


def _station_rows(data_dir: Path, station: str, window: WindowConfig, split: Split, tz: str):
    """(features, targets, split labels) of one station's windows under the model's split dates."""
    df = read_station(data_dir, station)
    w = build_windows(df, window, tz, dates=split)
    x = origin_features(complete_grid(df), tz, window.max_gap, w.origin)
    return x, w.y, w.split


def cache_key(
    data_dir: Path, stations: list[str], window: WindowConfig, split: Split, cfg: GbmConfig
) -> str:
    import lightgbm

    parts = {
        "data": {s: fingerprint(data_dir, s) for s in stations},
        "lightgbm": lightgbm.__version__,
        "window": asdict(window),
        "split": split.to_dict(),
        "gbm": asdict(cfg),
        "features": [LAGS, list(ROLLING)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class PooledGbm:
    """One LightGBM booster per horizon over the pooled stations; `predict` takes one station."""

    def __init__(self, models: list, stations: list[str], columns: list[str]):
        self.models, self.stations, self.columns = models, stations, columns

    def predict(self, station: str, x: pd.DataFrame) -> np.ndarray:
        """(N, H) µg/m³, non-negative."""
        if station not in self.stations:
            raise AqiError(f"station {station!r}: not among the stations the GBM baseline pooled")
        x = x.assign(station=pd.Categorical([station] * len(x), categories=self.stations))
        x = x[self.columns]
        return np.maximum(np.stack([m.predict(x) for m in self.models], axis=1), 0).astype(np.float32)


def fit_pooled(
    parts: dict[str, tuple], horizon: int, cfg: GbmConfig, threads: int, echo=print, backend="lightgbm"
) -> PooledGbm:
    """One model per horizon on the pooled train rows, early-stopped on the validation rows.
    `backend` 'sklearn' fits HistGradientBoostingRegressor on the same rows (for the comparison
    in the README); the cache holds LightGBM's."""
    names = sorted(parts)
    cats = pd.CategoricalDtype(names)
    frames = [p[0].assign(station=pd.Series([s] * len(p[0]), dtype=cats)) for s, p in parts.items()]
    x = pd.concat(frames, ignore_index=True)
    y = np.concatenate([p[1] for p in parts.values()])
    split = np.concatenate([p[2] for p in parts.values()])
    fit = _lightgbm if backend == "lightgbm" else _sklearn
    models = []
    for h in range(horizon):
        tr, va = (split == "train") & np.isfinite(y[:, h]), (split == "val") & np.isfinite(y[:, h])
        models.append(fit(x[tr], y[tr, h], x[va], y[va, h], cfg, threads))
        echo(f"GBM baseline: horizon {h + 1}/{horizon} fitted")
    return PooledGbm(models, names, list(x.columns))


def _lightgbm(x, y, x_val, y_val, cfg: GbmConfig, threads: int):
    import lightgbm as lgb

    params = {
        "objective": "l1",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "max_bin": cfg.max_bin,
        "num_threads": threads,
        "seed": 0,
        "deterministic": True,
        "verbosity": -1,
    }
    train = lgb.Dataset(x, y)
    stop = lgb.early_stopping(cfg.early_stopping, verbose=False)
    val = lgb.Dataset(x_val, y_val, reference=train)
    return lgb.train(params, train, cfg.max_rounds, valid_sets=[val], callbacks=[stop])


def _sklearn(x, y, x_val, y_val, cfg: GbmConfig, threads: int):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    m = HistGradientBoostingRegressor(
        loss="absolute_error",
        learning_rate=cfg.learning_rate,
        max_iter=cfg.max_rounds,
        max_leaf_nodes=cfg.num_leaves,
        min_samples_leaf=cfg.min_data_in_leaf,
        max_features=cfg.feature_fraction,
        max_bins=min(cfg.max_bin, 255),
        categorical_features="from_dtype",
        early_stopping=True,
        n_iter_no_change=cfg.early_stopping,
        random_state=0,
    )
    with threadpool_limits(threads):
        return m.fit(x, y, X_val=x_val, y_val=y_val)


def pooled_gbm(
    data_dir: Path,
    window: WindowConfig,
    split: Split,
    threads: int,
    cfg: GbmConfig = GbmConfig(),
    echo=print,
) -> PooledGbm:
    """The cached pooled baseline for these windows and split dates, fitted on first use."""
    zones = {st: e["timezone"] for st, e in load_manifest(data_dir)["stations"].items()}
    names = sorted(zones)
    d = models_dir(data_dir) / "_gbm" / cache_key(data_dir, names, window, split, cfg)
    meta = d / "meta.json"
    cached = _cached(d)
    if cached:
        return cached
    echo(f"GBM baseline: fitting on {len(names)} station(s) (cached in {d})")
    parts = {}
    for s in names:
        try:
            parts[s] = _station_rows(data_dir, s, window, split, zones[s])
        except AqiError as e:  # a corrupt or short station must not blank the others' baseline
            echo(f"GBM baseline: {s} left out: {e}")
    model = fit_pooled(parts, window.horizon, cfg, threads, echo=echo)
    for h, b in enumerate(model.models):
        atomic_write_bytes(
            d / f"h{h + 1}.txt", b.model_to_string(num_iteration=b.best_iteration).encode()
        )
    info = {"horizon": window.horizon, "stations": model.stations, "columns": model.columns}
    atomic_write_bytes(meta, json.dumps(info).encode())  # last: a torn cache is refitted
    return model


def _cached(d: Path) -> PooledGbm | None:
    """The baseline cached in `d`, None when absent or damaged (it is then refitted)."""
    import lightgbm as lgb

    try:
        m = json.loads((d / "meta.json").read_text())
        boosters = [lgb.Booster(model_file=str(d / f"h{h + 1}.txt")) for h in range(m["horizon"])]
        return PooledGbm(boosters, m["stations"], m["columns"])
    except (OSError, ValueError, KeyError, TypeError, lgb.basic.LightGBMError):
        return None


def predict_station(
    model: PooledGbm, station: str, w: Windows, grid: pd.DataFrame, tz: str, max_gap: int
):
    """(N, H) forecasts for the windows `w` of `station`."""
    return model.predict(station, origin_features(grid, tz, max_gap, w.origin))
