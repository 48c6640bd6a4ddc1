"""Samples/s of the custom loop vs model.fit on the same model, data and batch size, in one process.

Usage: bench_loop.py DATA_DIR [DEVICE]. Prints one JSON line. The custom loop runs under the strategy
that `--device DEVICE` picks; for reference it is also timed under OneDeviceStrategy, which the
device selection avoids on a single device. Each of ours/fit is timed twice, alternating; best kept.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from aqi.config import Config
from aqi.devices import select_strategy
from aqi.levels import get_standard
from aqi.loop import Loop, dataset, distribute, fit, make_optimizer
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model
from aqi.store import read_station, station_timezone
from aqi.windows import build_windows

STATION, EPOCHS = "Aotizhongxin", 3


def main(data_dir: Path, device: str) -> dict:
    strategy, desc = select_strategy(device)
    cfg = Config().replace(train={"epochs": EPOCHS + 1, "patience": 99, "restore_best": False})
    w = build_windows(read_station(data_dir, STATION), cfg.window, station_timezone(data_dir, STATION))
    tr, bs = w.part("train"), cfg.train.batch_size
    loss = LevelLoss.for_model(get_standard(cfg.loss.standard), cfg)
    steps = -(-len(tr) // bs)
    scaling = w.scaler.pm25()

    def ours(strat) -> float:
        with strat.scope():
            model = build_model(cfg, len(w.features), scaling)
            loop = Loop(model, make_optimizer(cfg.train, steps), loss, strat)
        ds = distribute(strat, dataset(tr.x, tr.y, bs, True, 0))
        fit(loop, ds, [], cfg.train.__class__(**{**cfg.train.__dict__, "epochs": 1}), len(tr))  # trace
        start = time.perf_counter()
        fit(loop, ds, [], cfg.train.__class__(**{**cfg.train.__dict__, "epochs": EPOCHS}), len(tr))
        return len(tr) * EPOCHS / (time.perf_counter() - start)

    def keras_fit() -> float:
        with strategy.scope():
            model = build_model(cfg, len(w.features), scaling)
            model.compile(optimizer=make_optimizer(cfg.train, steps), loss=loss)
        ds = dataset(tr.x, tr.y, bs, True, 0)
        model.fit(ds, epochs=1, verbose=0)  # trace
        start = time.perf_counter()
        model.fit(ds, epochs=EPOCHS, verbose=0)
        return len(tr) * EPOCHS / (time.perf_counter() - start)

    # alternated twice, best of each: a noisy machine hurts both alike
    runs = [
        (name, fn())
        for _ in range(2)
        for name, fn in (("ours", lambda: ours(strategy)), ("fit", keras_fit))
    ]
    rates = {name: max(r for n, r in runs if n == name) for name in ("ours", "fit")}
    if strategy.num_replicas_in_sync == 1:
        dev = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        rates["ours_one_device_strategy"] = ours(tf.distribute.OneDeviceStrategy(dev))
    return {
        "strategy": desc,
        "batch_size": bs,
        "train_windows": len(tr),
        "epochs_timed": EPOCHS,
        **{f"{k}_samples_per_s": round(v) for k, v in rates.items()},
        "ours_vs_fit": round(rates["ours"] / rates["fit"], 3),
        "target": "≥ 1.0",
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "auto")))
