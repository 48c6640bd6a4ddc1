"""Validation ablation of outage training (`--gap-share`): MAE and level accuracy by hours missing
before the origin (gap_skill.GAPS), model and persistence of the last observation, on the same
(origin, horizon) pairs for every variant, mean over the stations.

Usage: ablate_gaps.py DATA_DIR OUT.json NAME=OPTIONS... [--stations A,B]
  each NAME=OPTIONS trains every station with `aqi train` options (e.g. 'g30=--gap-share 0.3')
  into DATA_DIR/ablate/NAME (sharing DATA_DIR/store), then scores the val and test splits.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from aqi.gap_skill import gap_scores, gap_table
from aqi.store import read_station, stations
from aqi.trained import load


def train(data_dir: Path, name: str, options: str, names: list[str]) -> Path:
    d = data_dir / "ablate" / name
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "store").exists():
        (d / "store").symlink_to((data_dir / "store").resolve())
    for st in names:
        if (d / "models" / st / "CURRENT").exists():
            continue  # trained by an earlier run of this ablation
        cmd = [sys.executable, "-m", "aqi", "--data-dir", str(d), "train", "--station", st, "-q"]
        subprocess.run(cmd + shlex.split(options), check=True)
    return d


def main(argv: list[str]) -> None:
    data_dir, out = Path(argv[0]), Path(argv[1])
    rest = argv[2:]
    names = stations(data_dir)
    if "--stations" in rest:
        i = rest.index("--stations")
        names, rest = rest[i + 1].split(","), rest[:i] + rest[i + 2 :]
    result = {}
    for spec in rest:
        name, _, options = spec.partition("=")
        d = train(data_dir, name, options, names)
        for part in ("val", "test"):
            rows = {}
            for st in names:
                tm = load(d, st)
                rows[st] = {"gaps": gap_scores(read_station(d, st), tm, tm.standard, part)}
            result.setdefault(part, {})[name] = gap_table(rows)
    out.write_text(json.dumps(result, indent=2))
    for part, variants in result.items():
        print(f"\n{part}: MAE µg/m³ / level accuracy, mean over {len(names)} stations")
        print("| gap h | " + " | ".join(f"{v} model" for v in variants) + " | persistence |")
        gaps = next(iter(variants.values()))
        for g in gaps:
            cells = [
                f"{t[g]['model']['mae']:.2f} / {t[g]['model']['level_accuracy']:.3f}"
                for t in variants.values()
            ]
            p = gaps[g]["persistence"]
            print(f"| {g} | " + " | ".join(cells) + f" | {p['mae']:.2f} / {p['level_accuracy']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
