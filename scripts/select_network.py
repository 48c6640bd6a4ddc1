"""Two-fold selection of the network model's settings: each variant trained on two chronological
folds and scored on each fold's validation half-year, so that one volatile winter does not choose.

Usage: select_network.py STORE_DIR OUT_DIR [--folds=summer] NAME=JSON...
  fold "winter": the default split (train <= 2015-08-31, validation 2015-09..2016-02);
  fold "summer": train <= 2015-02-28, validation 2015-03..2015-08 (Beijing's dates). Each variant
  is `config.network_defaults()` with the JSON fields set, trained into OUT_DIR/NAME-FOLD/.
`--folds=` names the folds to run (comma list; both by default): a screening pass on one fold.
Prints per variant and fold the network's validation MAE (µg/m³) at 1, 3, 6, 12, 24 h and mean,
and its published level's accuracy, with persistence on the same pairs; then the two folds' mean.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from ablate_network import variant
from compare_network import HORIZONS, published_level, scores

from aqi.config import SECTIONS
from aqi.levels import level
from aqi.resolve import covered, load, load_network
from aqi.store import read_station

FOLDS = {
    "winter": {},
    "summer": {"train_end": "2015-02-28", "val_end": "2015-08-31", "test_end": "2016-02-29"},
}


def score(data_dir: Path, st: str) -> dict:
    """The network model's and persistence's validation MAE and level accuracy at `st`."""
    tm = load(data_dir, st)
    w = tm.windows(read_station(data_dir, st)).part("val")
    pred, pers, std = tm.predict(w.x, w.last_pm25), w.persistence(), tm.standard
    return {
        "network": scores(w.y, pred.point, published_level(tm, pred), std),
        "persistence": scores(w.y, pers, level(pers, std), std),
    }


def row(label: str, mae: np.ndarray, acc: np.ndarray) -> str:
    cells = " | ".join(f"{mae[h - 1]:.2f}" for h in HORIZONS)
    return f"| {label} | {cells} | {mae.mean():.2f} | {acc.mean():.3f} |"


def variants(items: list[str]) -> dict[str, dict]:
    """{NAME: fields} of NAME=JSON arguments; SystemExit naming a malformed one or an unknown field
    (`with_fields` would ignore a typo and train the defaults under the new name)."""
    known = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            raise SystemExit(
                f"select_network: {item!r}: use NAME=JSON, e.g. 'd5={{\"dropout\": 0.5}}'"
            ) from None
        unknown = sorted(set(fields) - known) if isinstance(fields, dict) else ["(not an object)"]
        if unknown:
            raise SystemExit(f"select_network: {item!r}: not config fields: {unknown}")
        out[name] = fields
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    store, out = Path(argv[0]), Path(argv[1])
    chosen = [a.partition("=")[2] for a in argv[2:] if a.startswith("--folds=")]
    names = chosen[0].split(",") if chosen else list(FOLDS)
    if set(names) - set(FOLDS):
        raise SystemExit(f"select_network: --folds={chosen[0]}: choose among {', '.join(FOLDS)}")
    for name, fields in variants([a for a in argv[2:] if not a.startswith("--folds=")]).items():
        folds = []
        for fold in names:
            dates = FOLDS[fold]
            d = variant(store, out / f"{name}-{fold}", fields | dates)
            per = [score(d, st) for st in covered(load_network(d))]
            for m in ("network", "persistence"):
                mae = np.mean([p[m]["mae"] for p in per], axis=0)
                acc = np.mean([p[m]["level_accuracy"] for p in per], axis=0)
                print(row(f"{name}, {fold}, {m}", mae, acc), flush=True)
                if m == "network":
                    folds.append((mae, acc))
        print(row(f"{name}, mean of folds", *np.mean(folds, axis=0)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
