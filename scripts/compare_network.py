"""The network model against per-station models, per horizon, on the same (origin, horizon) pairs.

Usage: compare_network.py DATA_DIR OWN_DIR SPLIT [OUT.json] [--stations A,B]
  DATA_DIR holds the store and models/_network (and, if fine-tuned, models/<station>, which are
  scored in the network's place); OWN_DIR a data folder whose models/<station> are the
  per-station models (trained with the same standard). SPLIT is val or test. Each station is scored on
  the origins both models have; the table is the mean over stations of MAE (µg/m³) and of the published
  level's accuracy, with persistence on the same pairs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from aqi import metrics
from aqi.levels import level
from aqi.resolve import covered, load, load_network
from aqi.store import read_station
from aqi.trained import TrainedModel, load_from

HORIZONS = (1, 3, 6, 12, 24)


def published_level(tm: TrainedModel, pred):
    out = tm.published(pred, tm.standard)
    return out[0] if out is not None else level(pred.point, tm.standard)


def on_common_origins(df, a: TrainedModel, b: TrainedModel, split: str):
    """(y, persistence, prediction of a, prediction of b) on the `split` origins both models have."""
    wa, wb = a.windows(df).part(split), b.windows(df).part(split)
    common = wa.origin.intersection(wb.origin)
    ia, ib = wa.origin.get_indexer(common), wb.origin.get_indexer(common)
    pa, pb = a.predict(wa.x[ia], wa.last_pm25[ia]), b.predict(wb.x[ib], wb.last_pm25[ib])
    return wa.y[ia], wa.persistence()[ia], pa, pb


def score_station(data_dir: Path, own_dir: Path, st: str, split: str) -> dict:
    own = load_from(own_dir / "models" / st, st)
    net = load(data_dir, st)  # its model in DATA_DIR (fine-tuned), else the network model
    y, pers, po, pn = on_common_origins(read_station(data_dir, st), own, net, split)
    std = own.standard
    return {
        "own": scores(y, po.point, published_level(own, po), std),
        "network": scores(y, pn.point, published_level(net, pn), std),
        "persistence": scores(y, pers, level(pers, std), std),
    }


def scores(y, point, levels, std) -> dict:
    """Per-horizon MAE of `point` and accuracy of the published `levels` against `y`."""
    return {
        "mae": metrics.per_horizon(y, point, std)["mae"],
        "level_accuracy": metrics.per_horizon_levels(y, levels, std)["level_accuracy"],
    }


def mean_over(per: dict[str, dict]) -> dict:
    """{method: {metric: per-horizon mean over the stations}} of {station: {method: {metric: ...}}}."""
    names = list(per)
    return {
        m: {k: np.mean([per[s][m][k] for s in names], axis=0).tolist() for k in per[names[0]][m]}
        for m in per[names[0]]
    }


def print_table(mean: dict, metrics_: tuple[str, ...], skip: tuple = ()) -> None:
    """One line per (metric, method) at HORIZONS and the mean over all horizons; `skip` (metric,
    method) pairs are left out."""
    print("metric          method        " + "".join(f"{h:>8}h" for h in HORIZONS) + "     mean")
    for k in metrics_:
        for m, v in mean.items():
            if (k, m) not in skip:
                cells = "".join(f"{v[k][h - 1]:9.3f}" for h in HORIZONS)
                print(f"{k:15} {m:12} {cells} {np.mean(v[k]):8.3f}")


def main(argv: list[str]) -> None:
    data_dir, own_dir, split = Path(argv[0]), Path(argv[1]), argv[2]
    out_path = Path(argv[3]) if len(argv) > 3 and not argv[3].startswith("--") else None
    network = load_network(data_dir)
    names = covered(network)
    if "--stations" in argv:
        names = argv[argv.index("--stations") + 1].split(",")
    per = {st: score_station(data_dir, own_dir, st, split) for st in names}
    mean = mean_over(per)
    print(f"{split}, mean over {len(names)} stations, standard {network.standard.key}")
    print_table(mean, ("mae", "level_accuracy"))
    net, own = mean["network"], mean["own"]
    wins = {
        "mae": int(sum(a < b for a, b in zip(net["mae"], own["mae"], strict=True))),
        "level_accuracy": int(
            sum(a > b for a, b in zip(net["level_accuracy"], own["level_accuracy"], strict=True))
        ),
    }
    print(
        f"network better than own at {wins['mae']}/24 horizons (MAE), "
        f"{wins['level_accuracy']}/24 (level accuracy)"
    )
    if out_path:
        out_path.write_text(json.dumps({"split": split, "mean": mean, "stations": per}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
