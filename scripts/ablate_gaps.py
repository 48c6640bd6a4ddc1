"""Validation ablation of outage training (`--gap-share`): MAE and level accuracy per horizon, US
EPA 2024 and China HJ 633 levels, by hours missing before the origin (gap_skill.GAPS), model and
persistence of the last observation, on the same (origin, horizon) pairs for every variant and
method, mean over the stations.

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
from aqi.levels import get_standard
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


SHOWN = (1, 3, 6, 12, 24)  # hours ahead printed
STANDARDS = ("us-epa-2024", "china-hj633-2012")  # levels scored (the models' loss: US EPA 2024)


def main(argv: list[str]) -> None:
    data_dir, out = Path(argv[0]), Path(argv[1])
    rest = argv[2:]
    names = stations(data_dir)
    if "--stations" in rest:
        i = rest.index("--stations")
        names, rest = rest[i + 1].split(","), rest[:i] + rest[i + 2 :]
    result: dict = {}
    for spec in rest:
        name, _, options = spec.partition("=")
        d = train(data_dir, name, options, names)
        models = {st: load(d, st) for st in names}
        frames = {st: read_station(d, st) for st in names}
        for std_key, part in ((k, p) for k in STANDARDS for p in ("val", "test")):
            std = get_standard(std_key)
            rows = {st: {"gaps": gap_scores(frames[st], tm, std, part)} for st, tm in models.items()}
            result.setdefault(std_key, {}).setdefault(part, {})[name] = gap_table(rows)
    out.write_text(json.dumps(result, indent=2))
    for std_key, parts in result.items():
        for part, variants in parts.items():
            show(std_key, part, variants, len(names))


def show(std_key: str, part: str, variants: dict, n: int) -> None:
    """Per gap and variant: MAE / level accuracy at the SHOWN horizons and the mean over 1..H."""
    print(f"\n{std_key}, {part}: MAE µg/m³ / level accuracy, mean over {n} stations")
    print("| gap h | method | " + " | ".join(f"{h} h" for h in SHOWN) + " | mean |")
    first = next(iter(variants.values()))
    for g in first:
        methods = [(v, t[g]["model"]) for v, t in variants.items()] + [
            ("persistence", first[g]["persistence"])
        ]
        for label, m in methods:
            by = m["by_horizon"]
            cells = [f"{by['mae'][h - 1]:.2f} / {by['level_accuracy'][h - 1]:.3f}" for h in SHOWN]
            mean = f"{m['mae']:.2f} / {m['level_accuracy']:.3f}"
            print(f"| {g} | {label} | " + " | ".join(cells) + f" | {mean} |")


if __name__ == "__main__":
    main(sys.argv[1:])
