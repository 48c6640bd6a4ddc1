"""The cross-station summary of evaluations: one row per station, kept across runs, and the means
over stations per horizon that the evaluation table and `aqi evaluate --format json` show.

summary.json maps station → row; evaluating some stations replaces their rows and keeps the others,
so `aqi evaluate --station X` never erases the rest of the network's figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHOWN = (1, 3, 6, 12, 24)  # hours ahead in the tables; "mean" is over every horizon
BASELINES = ("gbm", "persistence", "seasonal_naive", "climatology")
NOT_METHODS = {"checks", "probabilistic", "published", "gaps"}


def methods_of(row: dict) -> list[str]:
    """The model, then any other models named with `--model`, then the baselines."""
    others = [k for k in row if k not in NOT_METHODS | set(BASELINES) | {"model"}]
    return ["model", *others, *(b for b in BASELINES if b in row)]


def summary_row(m: dict) -> dict:
    """One station's row: per method the per-horizon and mean MAE and level accuracy, the daily
    level accuracy, the checks the README claims, and the probabilistic scores when present."""
    row = {
        method: {
            "mae": round(float(np.mean(v["mae"])), 2),
            "level_accuracy": round(float(np.mean(v["level_accuracy"])), 4),
            "daily_level_accuracy": m["daily_level_accuracy"][method],
            "by_horizon": {"mae": v["mae"], "level_accuracy": v["level_accuracy"]},
        }
        for method, v in m["methods"].items()
    }
    if "decided" in m:
        acc, prob = m["decided"]["level_accuracy"], m["decided"].get("mean_probability")
        row["published"] = {
            "level_accuracy": round(float(np.mean(acc)), 4),
            **({"mean_probability": round(float(np.mean(prob)), 4)} if prob else {}),
            "by_horizon": {"level_accuracy": acc},
        }
    mod, pers = m["methods"]["model"], m["methods"]["persistence"]
    row["checks"] = {
        "mae_below_persistence_h>=2": bool(np.all(np.array(mod["mae"][1:]) < pers["mae"][1:])),
        "mae_below_seasonal_and_climatology": all(
            bool(np.all(np.array(mod["mae"]) < m["methods"][b]["mae"]))
            for b in ("seasonal_naive", "climatology")
        ),
        "level_accuracy_by_horizon_minus_persistence": (
            np.array(mod["level_accuracy"]) - pers["level_accuracy"]
        ).round(4).tolist(),
    }  # fmt: skip
    if "probabilistic" in m:
        row["probabilistic"] = _probabilistic_row(m["probabilistic"])
    if "gaps" in m:
        row["gaps"] = m["gaps"]
    return row


def _probabilistic_row(p: dict) -> dict:
    mod, clim = p["model"], p["climatology"]
    return {
        "interval": mod["interval"],
        "coverage": round(float(np.mean(mod["coverage"])), 4),
        "width": round(float(np.mean(mod["width"])), 2),
        "brier": round(float(np.mean(mod["brier"])), 4),
        "climatology_brier": round(float(np.mean(clim["brier"])), 4),
        "brier_below_climatology_every_horizon": bool(np.all(np.array(mod["brier"]) < clim["brier"])),
    }


def merged(path: Path, rows: dict) -> dict:
    """The summary at `path` with `rows` replacing those stations' rows (sorted by station)."""
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        old = {}  # a corrupt summary is rebuilt from this run's rows
    both = (old if isinstance(old, dict) else {}) | rows
    return dict(sorted(both.items()))


def by_horizon(rows: dict) -> dict:
    """Means over stations per shown horizon and over all horizons: {"horizons": [1, 3, …, "mean"],
    "mae": {method: [...]}, "level_accuracy": {method: [...]}, "skill": [...], "winner": {...}}."""
    horizon = min(len(r["model"]["by_horizon"]["mae"]) for r in rows.values())
    shown = [h for h in SHOWN if h <= horizon]
    out: dict = {"stations": list(rows), "horizons": [*shown, "mean"], "mae": {}, "level_accuracy": {}}
    first = methods_of(next(iter(rows.values())))
    levels = ["published", *(m for m in first if m not in ("seasonal_naive", "climatology"))]
    for key, methods in (("mae", first), ("level_accuracy", levels)):
        for m in methods:
            per = [
                r[m]["by_horizon"][key][:horizon] for r in rows.values() if "by_horizon" in r.get(m, {})
            ]
            if len(per) == len(rows):  # a method is shown only when every station has it
                mean = np.mean(per, axis=0)
                out[key][m] = [round(float(mean[h - 1]), 4) for h in shown]
                out[key][m].append(round(float(mean.mean()), 4))
    mae = out["mae"]
    if {"model", "persistence"} <= set(mae):
        pairs = zip(mae["model"], mae["persistence"], strict=True)
        out["skill_vs_persistence"] = [round(1 - a / b, 4) for a, b in pairs]
    out["winner"] = {
        "mae": [min(mae, key=lambda m: mae[m][i]) for i in range(len(out["horizons"]))],
        "level_accuracy": [
            max(out["level_accuracy"], key=lambda m: out["level_accuracy"][m][i])
            for i in range(len(out["horizons"]))
        ],
    }
    return out
