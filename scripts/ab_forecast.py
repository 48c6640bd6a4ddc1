"""A/B of `aqi forecast` between two releases' trees on the same store and models, back to back.

Usage: ab_forecast.py PREV_TREE NEW_TREE REAL_DATA_DIR WORK_DIR [REPS]
  WORK_DIR/net: a store of 1,000 stations (988 simulated from REAL_DATA_DIR's 12 by
  `bench_network.synthetic_store`) and a network model trained 50 steps by NEW_TREE;
  WORK_DIR/one: REAL_DATA_DIR's store with Aotizhongxin's own model (defaults) trained by NEW_TREE.
  Both are made once and reused. Then, REPS times (default 3), alternating PREV and NEW, each run
  from /tmp with PYTHONPATH set to that tree (the repository root would import its own `aqi/`):
  `forecast --station all` on the 1,000 stations, `import tensorflow`, `forecast --station
  Aotizhongxin`. Prints wall seconds and how far the two releases' forecasts differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_network import CHILD, synthetic_store

PY = sys.executable
AT = ["--format", "json", "--at", "2017-02-26T12:00"]


def run(tree: str, args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    env = os.environ | {"PYTHONPATH": tree}
    started = time.perf_counter()
    proc = subprocess.run([PY, *args], capture_output=True, text=True, cwd="/tmp", env=env)
    return round(time.perf_counter() - started, 2), proc


def setup(new: str, real: Path, work: Path) -> tuple[Path, Path]:
    net, one = work / "net", work / "one"
    if not (net / "store").exists():
        synthetic_store(real, net, 1000)
    if not (net / "models" / "_network").exists():
        print("network:", run(new, ["-c", CHILD, str(net), "50"])[1].stdout.strip(), flush=True)
    if not (one / "models" / "Aotizhongxin").exists():
        one.mkdir(parents=True, exist_ok=True)
        if not (one / "store").exists():
            (one / "store").symlink_to((real / "store").resolve())
        train = ["-m", "aqi", "--data-dir", str(one), "train", "--station", "Aotizhongxin", "-q"]
        print("station:", run(new, train)[1].stdout.strip(), flush=True)
    return net, one


def hours(proc: subprocess.CompletedProcess) -> tuple[np.ndarray, np.ndarray]:
    rows = [f for r in json.loads(proc.stdout) for f in r["forecasts"]]
    return np.array([f["pm25"] for f in rows]), np.array([f["level"] for f in rows])


def main(argv: list[str]) -> None:
    prev, new, real, work = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    reps = int(argv[4]) if len(argv) > 4 else 3
    net, one = setup(new, real, work)
    every = ["-m", "aqi", "--data-dir", str(net), "forecast", "--station", "all", *AT]
    single = ["-m", "aqi", "--data-dir", str(one), "forecast", "--station", "Aotizhongxin", *AT]
    last = {}
    for rep in range(reps):
        wall, _ = run(new, ["-c", "import tensorflow"])
        print(f"run {rep}: import tensorflow {wall} s", flush=True)
        for name, tree in (("prev", prev), ("new", new)):
            for what, args in (("all", every), ("one", single)):
                wall, proc = run(tree, args)
                failed = proc.stderr.count("error: ")
                print(f"run {rep}: {name} forecast {what} {wall} s, rc {proc.returncode}, "
                      f"{failed} refused", flush=True)  # fmt: skip
                last[name, what] = hours(proc)
    for what in ("all", "one"):
        (pa, la), (pb, lb) = last["prev", what], last["new", what]
        print(f"{what}: {len(pa)} hours, max |PM2.5 prev - new| {np.abs(pa - pb).max():.2f} µg/m³, "
              f"levels differ at {int((la != lb).sum())}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
