"""LightGBM vs scikit-learn for the pooled gradient-boosting baseline, on the same pooled rows.

Usage: compare_gbm.py DATA_DIR THREADS [lightgbm,sklearn]
  DATA_DIR must hold a trained model per station (any: only its windows and split dates are used).
  Fits the pooled baseline with each backend (same features and settings, aqi/gbm.py), scores it on
  every station's test year and prints per-horizon mean MAE and level accuracy, and the fit time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from aqi import metrics
from aqi.gbm import GbmConfig, _station_rows, fit_pooled, origin_features
from aqi.store import read_station, station_timezone, stations
from aqi.trained import load
from aqi.windows import complete_grid

SHOWN = (1, 3, 6, 12, 24)


def main(data_dir: Path, threads: int, backends: list[str]) -> None:
    names = stations(data_dir)
    first = load(data_dir, names[0])
    window, split = first.config.window, first.split
    zones = {s: station_timezone(data_dir, s) for s in names}
    parts = {s: _station_rows(data_dir, s, window, split, zones[s]) for s in names}
    for backend in backends:
        started = time.perf_counter()
        model = fit_pooled(parts, window.horizon, GbmConfig(), threads, lambda *_: None, backend)
        fit_s = time.perf_counter() - started
        mae, acc = [], []
        for st in names:
            tm, df = load(data_dir, st), read_station(data_dir, st)
            test = tm.windows(df).part("test")
            x = origin_features(complete_grid(df), tm.timezone, window.max_gap, test.origin)
            s = metrics.per_horizon(test.y, model.predict(st, x), tm.standard)
            mae.append(s["mae"])
            acc.append(s["level_accuracy"])
        m, a = np.mean(mae, 0), np.mean(acc, 0)
        cells = " ".join(f"{m[h - 1]:.2f}" for h in SHOWN)
        print(f"{backend}: fit {fit_s:.1f} s on {threads} thread(s); MAE {cells} mean {m.mean():.3f}")
        cells = " ".join(f"{a[h - 1]:.3f}" for h in SHOWN)
        print(f"{backend}: level accuracy {cells} mean {a.mean():.4f}", flush=True)


if __name__ == "__main__":
    chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else ["lightgbm", "sklearn"]
    main(Path(sys.argv[1]), int(sys.argv[2]), chosen)
