"""`make bench`: speed and memory figures, each ratio measured within one run of this script.

Rows (written to DATA_DIR/reports/bench.json and printed):
  ingest          all 12 Beijing CSVs → a fresh store: wall time, peak RSS (target ≤ 3 s, ≤ 1 GiB)
  ingest_hourly   an hourly job on AirNow: a store of 24 hourly files of every site (~2,200), then
                  `aqi ingest` of the next 3 hours one process each, and one again (idempotent),
                  then `aqi compact`: wall seconds per file, process start included (target
                  ≤ 2 s), and of the compaction; skipped when
                  ../shared/data/airnow-hourlydata is absent
  loop_vs_fit     samples/s of our loop vs model.fit, same model/data/batch, strategy of --device auto
  train_station   `aqi train --station Aotizhongxin` with defaults: wall, peak RSS (≤ 60 s, ≤ 2 GiB)
  train_per_station_all  `aqi train --station all --per-station` wall time (≤ 10 min); skipped
                  with --quick
  train_network   `aqi train --station all`: the network model of all 12, wall, peak RSS, and its
                  ratio to the per-station row (≤ 1, ≤ 2 GiB); skipped with --quick
  workers         samples/s of `aqi train` on 1 vs 2 local workers (MultiWorkerMirroredStrategy on
                  127.0.0.1, scripts/launch_workers.py): on one 2-core host this is the overhead
  network_scale   scripts/bench_network.py: windows/s and peak RSS of network training for 12,
                  200 and 1,000 stations (the larger ones simulated from the 12); skipped with --quick
  forecast        `aqi forecast` one station / all, vs `import tensorflow` (≤ TF import + 1 s; ≤ 10 s)
  lbfgs           validation loss of Adam alone vs Adam + L-BFGS-B fine-tuning at equal wall time
  evaluate        `aqi evaluate --station all` (every trained station) cold (no cached GBM
                  baseline) and cached (targets for the 12 Beijing stations: ≤ 5 min, ≤ 2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aqi.datadir import bench_path

ROOT = Path(__file__).resolve().parents[1]
AQI = [sys.executable, "-m", "aqi"]
STATION = "Aotizhongxin"


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds and peak RSS (MiB) of one child process, from wait4's rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def raw_source() -> str:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "raw_source.sh"), "aqi"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def bench_ingest(data_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        row = run_measured([*AQI, "--data-dir", tmp, "ingest", raw_source(), "-q"])
    row["targets"] = "≤ 3 s, ≤ 1024 MiB"
    # the bench's own store, reused by the rows below
    subprocess.run([*AQI, "--data-dir", str(data_dir), "ingest", raw_source(), "-q"], check=True)
    return row


AIRNOW = ROOT.parent / "shared" / "data" / "airnow-hourlydata"


def bench_ingest_hourly() -> dict:
    files = sorted(AIRNOW.glob("HourlyData_*.dat.gz"))
    if len(files) < 28:
        return {"skipped": f"{AIRNOW} not present"}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*AQI, "--data-dir", tmp, "ingest", *map(str, files[:24]), "-q"], check=True)
        hours = [run_measured([*AQI, "--data-dir", tmp, "ingest", str(f), "-q"]) for f in files[24:27]]
        again = run_measured([*AQI, "--data-dir", tmp, "ingest", str(files[26]), "-q"])
        sites = len(json.loads((Path(tmp) / "store" / "_manifest.json").read_text())["stations"])
        folded = run_measured([*AQI, "--data-dir", tmp, "compact"])
    return {
        "sites": sites,
        "seconds_per_hourly_file": [h["wall_s"] for h in hours],
        "peak_rss_mib": max(h["peak_rss_mib"] for h in hours),
        "idempotent_reingest_s": again["wall_s"],
        "compact_s": folded["wall_s"],  # folding the 3 hourly delta files into every partition
        "targets": "≤ 2 s per hourly file, process start included (compaction apart, a quiet-hour job)",
    }


def bench_train(data_dir: Path, quick: bool) -> dict:
    out = {
        "train_station": run_measured(
            [*AQI, "--data-dir", str(data_dir), "train", "--station", STATION, "-q"]
        )
        | {"targets": "≤ 60 s, ≤ 2048 MiB"}
    }
    if not quick:
        out["train_per_station_all"] = run_measured(
            [*AQI, "--data-dir", str(data_dir), "train", "--station", "all", "--per-station", "-q"]
        ) | {"targets": "≤ 600 s"}
        network = run_measured([*AQI, "--data-dir", str(data_dir), "train", "--station", "all", "-q"])
        ratio = network["wall_s"] / out["train_per_station_all"]["wall_s"]
        out["train_network"] = network | {
            "vs_per_station_all": round(ratio, 2),
            "targets": "≤ the per-station row, ≤ 2048 MiB",
        }
    return out


def bench_forecast(data_dir: Path) -> dict:
    at = ["--at", "2017-02-26T12:00"]  # an hour every Beijing station can be forecast from
    tf_import = min(
        run_measured([sys.executable, "-c", "import tensorflow"])["wall_s"] for _ in range(2)
    )
    one = min(
        run_measured([*AQI, "--data-dir", str(data_dir), "forecast", "--station", STATION, *at])[
            "wall_s"
        ]
        for _ in range(2)
    )
    every = run_measured(
        [*AQI, "--data-dir", str(data_dir), "forecast", "--station", "all", "--format", "json", *at]
    )["wall_s"]
    return {
        "tf_import_s": tf_import,
        "one_station_s": one,
        "all_stations_s": every,
        "one_minus_tf_import_s": round(one - tf_import, 2),
        "targets": "one ≤ TF import + 1 s; all ≤ 10 s",
    }


def bench_evaluate(data_dir: Path) -> dict:
    import shutil

    models = data_dir / "models"
    trained = (
        sorted(p.name for p in models.glob("*") if (p / "CURRENT").exists()) if models.exists() else []
    )
    if not trained:
        return {"skipped": "no trained models: run the train row without --quick first"}
    shutil.rmtree(models / "_gbm", ignore_errors=True)
    cmd = [*AQI, "--data-dir", str(data_dir), "evaluate", "--station", "all", "-q"]
    cold, cached = run_measured(cmd), run_measured(cmd)
    return {
        "stations": len(trained),
        "cold_s": cold["wall_s"],
        "cached_s": cached["wall_s"],
        "peak_rss_mib": max(cold["peak_rss_mib"], cached["peak_rss_mib"]),
        "targets": "12 stations: cold ≤ 300 s, cached ≤ 120 s",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--quick", action="store_true", help="skip the 12-station training row")
    ap.add_argument("--device", default="auto", help="device for the loop_vs_fit row")
    ap.add_argument("--only", default="", help="comma-separated rows to run")
    args = ap.parse_args()
    bench_dir = args.data_dir / "bench"
    only = set(filter(None, args.only.split(",")))
    out = bench_path(args.data_dir)
    rows = [
        ("ingest", lambda: {"ingest": bench_ingest(bench_dir)}),
        ("ingest_hourly", lambda: {"ingest_hourly": bench_ingest_hourly()}),
        ("loop_vs_fit", lambda: {"loop_vs_fit": script_row("bench_loop.py", bench_dir, args.device)}),
        ("train", lambda: bench_train(bench_dir, args.quick)),
        ("forecast", lambda: {"forecast": bench_forecast(bench_dir)}),
        ("lbfgs", lambda: {"lbfgs": script_row("bench_lbfgs.py", bench_dir)}),
        ("evaluate", lambda: {"evaluate": bench_evaluate(bench_dir)}),
        ("network_scale", lambda: {} if args.quick else {"network_scale": network_scale(bench_dir)}),
        ("workers", lambda: {"workers": bench_workers(bench_dir)}),
    ]
    for name, run in rows:
        if not only or name in only:
            report(out, run())  # written row by row: a later failure keeps the earlier figures


def bench_workers(data_dir: Path) -> dict:
    """samples/s of one station's training on 1 and 2 local workers (scripts/launch_workers.py)."""
    out = {}
    for n in (1, 2):
        cmd = [sys.executable, str(ROOT / "scripts" / "launch_workers.py"), str(n), "--"]
        cmd += ["--data-dir", str(data_dir), "train", "--station", STATION, "-q"]
        subprocess.run(cmd + ["--members", "1", "--epochs", "2", "--patience", "5"], check=True)
        live = (data_dir / "models" / STATION / "CURRENT").read_text().strip()
        meta = json.loads((data_dir / "models" / STATION / "versions" / live / "meta.json").read_text())
        out[f"{n}_workers_samples_per_s"] = meta["samples_per_s"]
    ratio = out["2_workers_samples_per_s"] / out["1_workers_samples_per_s"]
    return out | {"ratio": round(ratio, 2), "targets": "report (one host: overhead, not speed-up)"}


def network_scale(data_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scale.json"
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "bench_network.py"), str(data_dir), str(out)],
            check=True,
        )
        rows = json.loads(out.read_text())["rows"]
    return {f"{r['stations']}_stations": r for r in rows} | {
        "targets": "peak RSS bounded as stations grow (≤ 2048 MiB)"
    }


def script_row(script: str, *args) -> dict:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(path: Path, rows: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from aqi.datadir import atomic_write_bytes

    old = json.loads(path.read_text()) if path.exists() else {}
    merged = (
        old
        | rows
        | {
            "_machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        }
    )
    atomic_write_bytes(path, json.dumps(merged, indent=2).encode())
    t = Table(title=f"aqi bench ({path})")
    t.add_column("row")
    t.add_column("figures")
    for name, row in rows.items():
        t.add_row(name, ", ".join(f"{k}={v}" for k, v in row.items()))
    Console().print(t)


if __name__ == "__main__":
    main()
