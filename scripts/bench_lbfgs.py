"""Validation loss of Adam alone vs Adam + L-BFGS-B fine-tuning at equal wall time, one station.

Usage: bench_lbfgs.py DATA_DIR. Prints one JSON line. (a) Adam for the default epochs (early stopping
as in `aqi train`, one network); (b) Adam for half those epochs, then L-BFGS-B (full batch, up to
`lbfgs_max_samples` train windows) until (b) has used the wall time of (a).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from aqi.config import Config
from aqi.devices import select_strategy
from aqi.lbfgs import lbfgs_fit
from aqi.levels import get_standard
from aqi.loop import Loop, dataset, fit, make_optimizer
from aqi.losses import LevelLoss, tf
from aqi.model import build_model
from aqi.store import read_station, station_timezone
from aqi.trained import predict
from aqi.windows import build_windows

STATION = "Aotizhongxin"


def main(data_dir: Path) -> dict:
    strategy, desc = select_strategy("auto")
    cfg = Config()
    w = build_windows(read_station(data_dir, STATION), cfg.window, station_timezone(data_dir, STATION))
    tr, va = w.part("train"), w.part("val")
    loss = LevelLoss.for_model(get_standard(cfg.loss.standard), cfg)

    def val_loss(model) -> float:
        return float(np.mean(loss.call(va.y, predict(model, va.x))))

    def adam(epochs: int):
        t = cfg.train.__class__(**{**cfg.train.__dict__, "epochs": epochs})
        tf.keras.utils.set_random_seed(cfg.train.seed)
        model = build_model(cfg, len(w.features), w.scaler.pm25())
        loop = Loop(model, make_optimizer(t, -(-len(tr) // t.batch_size)), loss, strategy)
        start = time.perf_counter()
        fit(
            loop,
            dataset(tr.x, tr.y, t.batch_size, True, t.seed),
            dataset(va.x, va.y, 4096, False, 0),
            t,
            len(tr),
        )
        return model, time.perf_counter() - start

    model_a, wall_a = adam(cfg.train.epochs)
    model_b, wall_b1 = adam(cfg.train.epochs // 2)
    half = val_loss(model_b)
    pick = np.random.default_rng(0).permutation(len(tr))[: cfg.train.lbfgs_max_samples]
    res = lbfgs_fit(model_b, loss, tr.x[pick], tr.y[pick], 10_000, max_seconds=max(wall_a - wall_b1, 1))
    return {
        "station": STATION,
        "device": desc,
        "adam_epochs": cfg.train.epochs,
        "adam_wall_s": round(wall_a, 1),
        "adam_val_loss": round(val_loss(model_a), 4),
        "adam_half_epochs": cfg.train.epochs // 2,
        "adam_half_val_loss": round(half, 4),
        "lbfgs_iterations": res.iterations,
        "lbfgs_samples": len(pick),
        "adam_plus_lbfgs_wall_s": round(wall_b1 + res.seconds, 1),
        "adam_plus_lbfgs_val_loss": round(val_loss(model_b), 4),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
