"""The GBM baseline's fit on a shared node: alone, and beside a second fit on the same cores, with
OpenMP's default wait policy and with OMP_WAIT_POLICY=PASSIVE (what `cpus.limit` sets).

LightGBM's OpenMP threads spin while they wait for work (libgomp's default): two jobs whose
threads share cores then burn each other's time slices (LightGBM issue #6728, a 60x slowdown).

Usage: bench_gbm_shared.py DATA_DIR [HORIZONS]
  DATA_DIR holds a store (`aqi ingest`); the fit pools its stations' windows under the default
  split, HORIZONS boosters (default 1). Prints wall seconds per case and the ratio to alone; a
  fit still running after ten times its time alone is stopped and shown as "> T".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

POLICIES = {"default": None, "passive": "PASSIVE"}


def child(data_dir: Path, horizons: int) -> None:
    """One fit, its wall seconds on stdout (data read before the clock starts)."""
    import pandas as pd

    from aqi.config import WindowConfig
    from aqi.cpus import available
    from aqi.gbm import GbmConfig, _station_rows, fit_pooled
    from aqi.store import load_manifest
    from aqi.windows import Split

    entries = load_manifest(data_dir)["stations"]
    zones = {s: e["timezone"] for s, e in entries.items()}
    window = WindowConfig()
    last = max(pd.Timestamp(e["last_time"]) for e in entries.values())
    split = Split.resolve(window, last, next(iter(zones.values())))
    parts = {s: _station_rows(data_dir, s, window, split, tz) for s, tz in zones.items()}
    start = time.perf_counter()
    fit_pooled(parts, horizons, GbmConfig(), available(), echo=lambda _: None)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run(data_dir: Path, horizons: int, policy: str | None, n: int, cap: float) -> list[float | None]:
    """Wall seconds of `n` fits started together; None for a fit still running after `cap` s."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--child", str(data_dir), str(horizons)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    out, deadline = [], time.monotonic() + cap
    for p in procs:
        try:
            text = p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
            out.append(json.loads(text.strip().splitlines()[-1])["seconds"])
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            out.append(None)
    return out


def cell(seconds: float | None, cap: float) -> str:
    return f"> {cap:.0f}" if seconds is None else f"{seconds:.1f}"


def main() -> None:
    if sys.argv[1] == "--child":
        child(Path(sys.argv[2]), int(sys.argv[3]))
        return
    data_dir, horizons = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print("| OpenMP wait policy | alone, s | two fits together, s each | ratio to alone |")
    print("|---|---:|---:|---:|")
    for name, policy in POLICIES.items():
        alone = run(data_dir, horizons, policy, 1, 600)[0]
        cap = 10 * (alone or 60)  # the spinning case can take hours; ten times alone says enough
        both = run(data_dir, horizons, policy, 2, cap)
        ratio = "> 10" if None in both or alone is None else f"{sum(both) / 2 / alone:.2f}"
        each = ", ".join(cell(b, cap) for b in both)
        print(f"| {name} | {cell(alone, 600)} | {each} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
