"""Validation ablation of the network model: each variant trained over every station, then scored
against per-station models on the same (origin, horizon) pairs (scripts/compare_network.py).

Usage: ablate_network.py STORE_DIR OWN_DIR OUT_DIR NAME=JSON...
  STORE_DIR is a data folder with the store; OWN_DIR one with the per-station models; each variant
  NAME is `config.network_defaults()` with the JSON fields set (any field of any config section,
  e.g. 'do5={"members": 1, "dropout": 0.5}'), trained into OUT_DIR/NAME/ (sharing the store).
Prints one table row per variant: validation MAE at 1, 3, 6, 12, 24 h and mean, level accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from compare_network import HORIZONS, score_station

from aqi.config import network_defaults
from aqi.job import RunOptions
from aqi.store import stations
from aqi.train_network import train_network


def variant(store: Path, out: Path, fields: dict) -> Path:
    d = out / "data"
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "store").exists():
        (d / "store").symlink_to((store / "store").resolve())
    cfg = network_defaults().with_fields(**fields)
    train_network(d, stations(d), cfg, RunOptions(quiet=True))
    return d


def main(argv: list[str]) -> None:
    store, own, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    for item in argv[3:]:
        name, _, text = item.partition("=")
        d = variant(store, out / name, json.loads(text))
        per = [score_station(d, own, st, "val")["network"] for st in stations(d)]
        mae = np.mean([p["mae"] for p in per], axis=0)
        acc = np.mean([p["level_accuracy"] for p in per], axis=0)
        cells = " | ".join(f"{mae[h - 1]:.2f}" for h in HORIZONS)
        print(f"| {name} | {cells} | {mae.mean():.2f} | {acc.mean():.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
