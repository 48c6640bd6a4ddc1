"""Validation/test ablation of the level decision: level accuracy per horizon of the published level
against the point forecast's level and persistence, on the same (origin, horizon) pairs.

Usage: ablate_levels.py DATA_DIR OUT.json STANDARD NAME=OPTIONS... [--stations A,B]
  each NAME=OPTIONS trains every station with `aqi train` options (e.g. 'alpha0=--alpha 0') into
  its own models folder (DATA_DIR/ablate/NAME, sharing DATA_DIR/store) and scores it.
Prints one table per split; writes every per-horizon figure to OUT.json.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from aqi import metrics
from aqi.levels import get_standard, level
from aqi.store import read_station, stations
from aqi.trained import load

HORIZONS = (1, 3, 6, 12, 24)


def train(data_dir: Path, name: str, options: str, names: list[str], std: str) -> Path:
    d = data_dir / "ablate" / name
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "store").exists():
        (d / "store").symlink_to((data_dir / "store").resolve())
    for st in names:
        cmd = [sys.executable, "-m", "aqi", "--data-dir", str(d), "train", "--station", st, "-q"]
        subprocess.run(cmd + ["--standard", std, *shlex.split(options)], check=True)
    return d


def scores(d: Path, names: list[str], std_key: str) -> dict:
    std, out = get_standard(std_key), {}
    for split in ("val", "test"):
        acc = {"point": [], "decided": [], "published": [], "persistence": []}
        mae = {"point": [], "persistence": []}
        for st in names:
            tm = load(d, st)
            w = tm.windows(read_station(d, st)).part(split)
            pred = tm.predict(w.x, w.last_pm25)
            decided, published = pred.decided(std), tm.published(pred, std)
            per = {
                "point": level(pred.point, std),
                "persistence": level(w.persistence(), std),
                "decided": decided[0] if decided else level(pred.point, std),
                "published": published[0] if published else level(pred.point, std),
            }
            for k, lv in per.items():
                acc[k].append(metrics.per_horizon_levels(w.y, lv, std)["level_accuracy"])
            for k, p in (("point", pred.point), ("persistence", w.persistence())):
                mae[k].append(metrics.per_horizon(w.y, p, std)["mae"])
        out[split] = {
            "level_accuracy": {k: np.mean(v, axis=0).round(4).tolist() for k, v in acc.items()},
            "mae": {k: np.mean(v, axis=0).round(3).tolist() for k, v in mae.items()},
        }
    return out


def main() -> None:
    args = sys.argv[1:]
    names_arg = [a for a in args if a.startswith("--stations=")]
    args = [a for a in args if not a.startswith("--stations=")]
    data_dir, out_path, std, runs = Path(args[0]), Path(args[1]), args[2], args[3:]
    names = names_arg[0].split("=", 1)[1].split(",") if names_arg else stations(data_dir)
    result = {"standard": std, "stations": names, "runs": {}}
    for run in runs:
        name, _, options = run.partition("=")
        d = train(data_dir, f"{name}-{std}", options, names, std)
        result["runs"][name] = {"options": options, **scores(d, names, std)}
        out_path.write_text(json.dumps(result, indent=2))
        for split in ("val", "test"):
            r = result["runs"][name][split]
            for k, v in r["level_accuracy"].items():
                cells = " ".join(f"{v[h - 1]:.3f}" for h in HORIZONS)
                print(f"{name:>10} {split:>4} acc {k:>11}: {cells}  mean {np.mean(v):.4f}", flush=True)
            for k, v in r["mae"].items():
                cells = " ".join(f"{v[h - 1]:.2f}" for h in HORIZONS)
                print(f"{name:>10} {split:>4} MAE {k:>11}: {cells}  mean {np.mean(v):.3f}", flush=True)


if __name__ == "__main__":
    main()
