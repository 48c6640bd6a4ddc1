"""Issue 16's last cell: the published level with and without the per-hour "stay" margins
(`prediction.fit_stay`, chosen on validation at training), against persistence, on the same
(origin, horizon) pairs; and, since the margins were chosen on the validation half-year, a
cross-fitted validation score: margins fitted on the origins of odd ISO weeks score the even ones,
and the other way round, pooled over the stations as training fits them.

Usage: stay_margins.py DATA_DIR
  DATA_DIR holds the store and models/_network, trained with the stay margins (the default).
Prints, per split, the mean over stations of level accuracy at 1, 3, 6, 12, 24 h and over 1-24 h,
the hours ahead where each row is above persistence, and the margins.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from compare_network import HORIZONS

from aqi import metrics
from aqi.levels import level
from aqi.prediction import Prediction, fit_stay, publish
from aqi.resolve import covered, load, load_network
from aqi.store import read_station


def station_rows(data_dir: Path, st: str, split: str) -> dict:
    tm = load(data_dir, st)
    w = tm.windows(read_station(data_dir, st)).part(split)
    pred, std = tm.predict(w.x, w.last_pm25), tm.standard
    return {
        "pred": pred,
        "y": w.y,
        "week": np.asarray(w.origin.isocalendar().week) % 2,
        "rule": tm.info["decided_horizons"],
        "rows": {
            "published (with stay)": tm.published(pred, std)[0],
            "without stay": publish(pred, std, 1.0, tm.info["decided_horizons"])[0],
            "persistence": level(w.persistence(), std),
        },
    }


def accuracy(y: np.ndarray, levels: np.ndarray, std, rows=None) -> np.ndarray:
    """(H,) level accuracy (`metrics.per_horizon_levels`) on the origins of `rows` (default all)."""
    y = y if rows is None else np.where(rows[:, None], y, np.nan)  # a NaN target is not scored
    return np.asarray(metrics.per_horizon_levels(y, levels, std)["level_accuracy"])


def pooled(per: dict, half: int) -> tuple[Prediction, np.ndarray]:
    """The stations' forecasts and targets on origins of week parity `half`, stacked."""
    parts = [(r["pred"], r["y"], r["week"] == half) for r in per.values()]
    cat = {
        k: np.concatenate([getattr(p, k)[m] for p, _, m in parts]) for k in ("point", "exceed", "origin")
    }
    first = parts[0][0]
    stacked = Prediction(**cat, edges=first.edges, temperature=first.temperature)
    return stacked, np.concatenate([y[m] for _, y, m in parts])


def cross_fitted(per: dict, std) -> np.ndarray:
    """(H,) mean over stations of the accuracy of levels published with margins fitted on the
    other week parity."""
    rule = next(iter(per.values()))["rule"]
    acc = np.zeros((len(per), 2, len(rule)))
    for half in (0, 1):
        pred, y = pooled(per, 1 - half)
        margins = fit_stay(pred, std, y, rule)
        for i, r in enumerate(per.values()):
            levels = publish(r["pred"], std, 1.0, rule, margins)[0]
            acc[i, half] = accuracy(r["y"], levels, std, r["week"] == half)
    return acc.mean((0, 1))


def show(label: str, acc: np.ndarray, pers: np.ndarray) -> None:
    cells = "".join(f"{acc[h - 1]:8.3f}" for h in HORIZONS)
    if acc is pers:
        return print(f"{label:28}{cells}{acc.mean():9.4f}")
    above = int((acc > pers).sum())
    worst = np.argmin(acc - pers)
    print(
        f"{label:28}{cells}{acc.mean():9.4f}  above persistence {above}/{len(acc)} "
        f"(worst {100 * (acc - pers)[worst]:+.2f} points at {worst + 1} h)"
    )


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    data_dir = Path(argv[0])
    network = load_network(data_dir)
    std = network.standard
    print(f"standard {std.key}; stay margins per hour ahead: {network.info['stay_margin']}")
    for split in ("val", "test"):
        per = {st: station_rows(data_dir, st, split) for st in covered(network)}
        mean = {
            k: np.mean([accuracy(r["y"], r["rows"][k], std) for r in per.values()], 0)
            for k in next(iter(per.values()))["rows"]
        }
        if split == "val":
            mean["cross-fitted (odd/even weeks)"] = cross_fitted(per, std)
        print(
            f"{split}: level accuracy, mean of {len(per)} stations"
            + "".join(f"{h:>7}h" for h in HORIZONS)
            + "   1-24 h"
        )
        for k, acc in mean.items():
            show(k, acc, mean["persistence"])
        print(
            "  per hour ahead, published minus persistence, points: "
            + " ".join(f"{v:+.1f}" for v in 100 * (mean["published (with stay)"] - mean["persistence"]))
        )


if __name__ == "__main__":
    main(sys.argv[1:])
