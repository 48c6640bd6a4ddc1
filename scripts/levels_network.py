"""Issue 16's figures for the network model: its published level against the level of its own point
forecast, the level of an alpha = 0 (pure MAE) network model's point forecast and persistence, per
horizon, on the same (origin, horizon) pairs; with both models' MAE.

Usage: levels_network.py DATA_DIR ALPHA0_DIR SPLIT [OUT.json]
  DATA_DIR and ALPHA0_DIR are data folders holding models/_network, trained with the same standard
  and split dates (`aqi train --station all [--alpha 0]`). SPLIT is val or test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from compare_network import mean_over, on_common_origins, print_table, published_level

from aqi import metrics
from aqi.levels import level
from aqi.resolve import covered, load, load_network
from aqi.store import read_station


def score_station(data_dir: Path, a0_dir: Path, st: str, split: str) -> dict:
    net, a0 = load(data_dir, st), load(a0_dir, st)
    y, pers, pn, pa = on_common_origins(read_station(data_dir, st), net, a0, split)
    std = net.standard
    rows = {
        "published": (pn.point, published_level(net, pn)),
        "point_level": (pn.point, level(pn.point, std)),
        "alpha0": (pa.point, level(pa.point, std)),
        "persistence": (pers, level(pers, std)),
    }
    return {
        k: {
            "mae": metrics.per_horizon(y, p, std)["mae"],
            "level_accuracy": metrics.per_horizon_levels(y, lv, std)["level_accuracy"],
        }
        for k, (p, lv) in rows.items()
    }


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[2] not in ("val", "test"):
        raise SystemExit(__doc__)
    data_dir, a0_dir, split = Path(argv[0]), Path(argv[1]), argv[2]
    network = load_network(data_dir)
    names = covered(network)
    per = {st: score_station(data_dir, a0_dir, st, split) for st in names}
    mean = mean_over(per)
    print(f"{split}, mean over {len(names)} stations, standard {network.standard.key}")
    # the point forecast's MAE is the published row's
    print_table(mean, ("level_accuracy", "mae"), skip=(("mae", "point_level"),))
    print(verdict(mean))
    if len(argv) > 3:
        Path(argv[3]).write_text(json.dumps({"split": split, "mean": mean, "stations": per}, indent=1))


def verdict(mean: dict) -> str:
    """Issue 16's tests in one line: published level vs persistence and vs alpha 0; MAE vs alpha 0."""
    pub = np.array(mean["published"]["level_accuracy"])
    pers = np.array(mean["persistence"]["level_accuracy"])
    a0 = np.array(mean["alpha0"]["level_accuracy"])
    margin = 100 * (pub - pers)
    mae = np.mean(mean["published"]["mae"]) / np.mean(mean["alpha0"]["mae"]) - 1
    return (
        f"published above persistence at {int((margin > 0).sum())}/24 horizons (smallest margin "
        f"{margin.min():+.1f} points at {int(margin.argmin()) + 1} h); vs alpha 0 "
        f"{100 * (pub.mean() - a0.mean()):+.1f} points mean; 24 h vs persistence "
        f"{margin[-1]:+.1f} points; MAE vs alpha 0 {100 * mae:+.1f} %"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
