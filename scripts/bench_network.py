"""Network-model scale bench: windows/s and peak RSS of training for 12, 200 and 1,000 stations.

Usage: bench_network.py STORE_DATA_DIR OUT.json [N ...] [--steps K]
  STORE_DATA_DIR holds the 12 real Beijing stations. For each N a fresh data folder gets a store of N
  stations: the 12 real ones and N - 12 synthetic ones, each a real station shifted in time (up to
  +-72 h), scaled (log-normal, sd 0.3) and noised (log-normal per hour, sd 0.15): a SIMULATION of
  scale, not data. A child process then prepares the stream (every station's hourly inputs written,
  one station in memory at a time) and runs K training steps of the network model at default
  settings through the custom loop, reporting prepare seconds, training windows/s and its peak RSS;
  the model (K steps trained: a speed figure, not a skill one) is saved and `aqi forecast --station
  all` timed with it, process start included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import MEASURES, POLLUTANTS
from aqi.store import load_manifest, read_station, stations, write_manifest, write_partition

CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
from aqi.config import network_defaults
from aqi.devices import select_strategy
from aqi.levels import get_standard
from aqi.loop import Loop, make_optimizer
from aqi.losses import LevelLoss
from aqi.model import build_model
from aqi.network import NetworkPm25
from aqi.store import stations
from aqi.train_network import prepare
from aqi.trained import NETWORK, TrainedModel
d, steps = Path(sys.argv[1]), int(sys.argv[2])
names = stations(d)
t0 = time.perf_counter()
with tempfile.TemporaryDirectory(dir=d) as work:
    cfg, data = prepare(d, names, network_defaults(), NetworkPm25.read(d, names), Path(work))
    t1 = time.perf_counter()
    strategy, _ = select_strategy("cpu")
    std = get_standard(cfg.loss.standard)
    with strategy.scope():
        model = build_model(cfg, len(data.features), data.scaler.pm25())
        loop = Loop(model, make_optimizer(cfg.train, steps), LevelLoss.for_model(std, cfg), strategy)
    ds = iter(data.train_ds(cfg.train.batch_size, 0))
    loop.train_step(next(ds))  # trace
    t2 = time.perf_counter()
    for _ in range(steps):
        loop.train_step(next(ds))
    t3 = time.perf_counter()
    info = data.describe() | {"kind": "network", "trained_steps": steps}
    TrainedModel(NETWORK, model, cfg, data.scaler, data.dates, data.timezone, std, info).save(d)
print(json.dumps({
    "stations": len(names), "train_windows": data.n_train, "prepare_s": round(t1 - t0, 1),
    "windows_per_s": round(steps * cfg.train.batch_size / (t3 - t2)),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
}))
"""


def synthetic_store(real: Path, out: Path, n: int, seed: int = 0) -> None:
    """A store of n stations in `out`: the real ones, then shifted, scaled, noised copies."""
    rng = np.random.default_rng(seed)
    names, manifest = stations(real), load_manifest(real)
    new = {"version": 1, "stations": {}}
    for i in range(n):
        base = names[i % len(names)]
        df = read_station(real, base)
        name = base if i < len(names) else f"Sim{i:04d}"
        if i >= len(names):
            shift = int(rng.integers(-72, 73))
            df[list(MEASURES)] = df[list(MEASURES)].shift(shift)
            factor = rng.lognormal(0, 0.3) * rng.lognormal(0, 0.15, len(df))
            for c in POLLUTANTS:
                df[c] = (df[c] * factor).clip(upper=1999).astype(np.float32)
        write_partition(out, name, df)
        new["stations"][name] = manifest["stations"][base] | {"display_name": name}
    write_manifest(out, new)


def forecast_all(data_dir: Path) -> dict:
    """`aqi forecast --station all` with the network model just saved: one batched call."""
    at = ["--at", "2017-02-26T12:00"]
    cmd = [sys.executable, "-m", "aqi", "--data-dir", str(data_dir), "forecast", "--station", "all"]
    started = time.perf_counter()
    proc = subprocess.run([*cmd, "--format", "json", *at], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 2) or not proc.stdout.strip():  # 2: some stations refused
        raise SystemExit(f"bench_network: forecast failed: {proc.stderr[-800:]}")
    refused = proc.stderr.count("error: ")  # input gaps at that hour (simulated shifts move them)
    return {
        "forecast_all_s": round(wall, 2),
        "forecasts": len(json.loads(proc.stdout)),
        "refused": refused,
    }


def main(argv: list[str]) -> None:
    real, out_path = Path(argv[0]), Path(argv[1])
    rest, steps = argv[2:], 200
    if "--steps" in rest:
        i = rest.index("--steps")
        steps, rest = int(rest[i + 1]), rest[:i] + rest[i + 2 :]
    sizes = [int(a) for a in rest] or [12, 200, 1000]
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            synthetic_store(real, Path(tmp), n)
            made = time.perf_counter() - started
            child = subprocess.run(
                [sys.executable, "-c", CHILD, tmp, str(steps)],
                capture_output=True, text=True, env=os.environ,
            )  # fmt: skip
            if child.returncode:
                raise SystemExit(f"bench_network: {n} stations failed: {child.stderr[-800:]}")
            row = json.loads(child.stdout.strip().splitlines()[-1]) | {"store_s": round(made, 1)}
            row |= forecast_all(Path(tmp))
        row["simulated"] = max(0, n - 12)
        rows.append(row)
        print(json.dumps(row))
    out_path.write_text(json.dumps({"when": pd.Timestamp.now().isoformat(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
