"""Skill through a feed's outage: the test year scored as if the last g hours before every origin
were missing (g in GAPS), the model beside persistence of the last observation, on the same
(origin, horizon) pairs for every g. `Hourly.windows(gap=)` builds the inputs a live forecast
through such a gap gets (`window_at`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aqi import metrics
from aqi.levels import Standard, level
from aqi.trained import TrainedModel

GAPS = (0, 3, 6, 12, 24)  # hours without data before the origin


def gap_scores(df: pd.DataFrame, tm: TrainedModel, std: Standard, part: str = "test") -> dict:
    """{g: {"model" | "persistence": {"mae": µg/m³, "level_accuracy": share}}} over the observed
    pairs of the `part` split, for each g up to the model's staleness limit, on the same pairs for
    every g (origins whose hour t-g has PM2.5 for every g); the model's level is the published one
    where it has a predictive distribution."""
    gaps = [g for g in GAPS if g <= tm.config.window.stale_limit]
    tests = {g: tm.windows(df, gap=g).part(part) for g in gaps}
    rows = np.logical_and.reduce([np.isfinite(w.last_pm25) for w in tests.values()])
    return {str(g): _scores(tm, std, w, rows) for g, w in tests.items()}


def _scores(tm: TrainedModel, std: Standard, test, rows: np.ndarray) -> dict:
    """Per method: MAE and level accuracy per horizon (`metrics.per_horizon`), and their means."""
    pred = tm.predict(test.x[rows], test.last_pm25[rows])
    published = tm.published(pred, std)
    y, pers = test.y[rows], test.persistence()[rows]
    forecasts = {
        "model": (pred.point, level(pred.point, std) if published is None else published[0]),
        "persistence": (pers, level(pers, std)),
    }
    out = {}
    for name, (p, lv) in forecasts.items():
        by = {"mae": metrics.per_horizon(y, p, std)["mae"]}
        by["level_accuracy"] = metrics.per_horizon_levels(y, lv, std)["level_accuracy"]
        out[name] = {k: round(float(np.mean(v)), 4) for k, v in by.items()} | {"by_horizon": by}
    return out


def gap_table(rows: dict) -> dict[str, dict]:
    """Means over the stations of their `gaps` (`gap_scores`), for the gaps every station has."""
    scored = [r["gaps"] for r in rows.values() if "gaps" in r]
    if not scored or len(scored) < len(rows):
        return {}
    gaps = set.intersection(*(set(s) for s in scored))

    def mean(g: str, name: str, key: str, by: bool = False):
        v = np.mean([s[g][name]["by_horizon"][key] if by else s[g][name][key] for s in scored], 0)
        return np.round(v, 4).tolist()

    return {
        g: {
            name: {k: mean(g, name, k) for k in ("mae", "level_accuracy")}
            | {"by_horizon": {k: mean(g, name, k, True) for k in ("mae", "level_accuracy")}}
            for name in scored[0][g]
        }
        for g in sorted(gaps, key=int)
    }
