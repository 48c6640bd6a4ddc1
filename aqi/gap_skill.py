"""Skill through a feed's outage: the test year scored as if the last g hours before every origin
were missing (g in GAPS), the model beside persistence of the last observation, on the same
(origin, horizon) pairs for every g. `Hourly.windows(gap=)` builds the inputs a live forecast
through such a gap gets (`window_at`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aqi.levels import Standard, level
from aqi.trained import TrainedModel

GAPS = (0, 3, 6, 12, 24)  # hours without data before the origin


def gap_scores(df: pd.DataFrame, tm: TrainedModel, std: Standard, part: str = "test") -> dict:
    """{g: {"model" | "persistence": {"mae": µg/m³, "level_accuracy": share}}} over every observed
    pair of the `part` split, for each g up to the model's staleness limit; the model's level is
    the published one where it has a predictive distribution."""
    out = {}
    for g in (g for g in GAPS if g <= tm.config.window.stale_limit):
        test = tm.windows(df, gap=g).part(part)
        pred = tm.predict(test.x)
        published = tm.published(pred, std)
        ok, observed = np.isfinite(test.y), level(test.y, std)
        pers = test.persistence()
        forecasts = {
            "model": (pred.point, level(pred.point, std) if published is None else published[0]),
            "persistence": (pers, level(pers, std)),
        }
        out[str(g)] = {
            name: {
                "mae": round(float(np.abs(test.y - p)[ok].mean()), 3),
                "level_accuracy": round(float((observed == lv)[ok].mean()), 4),
            }
            for name, (p, lv) in forecasts.items()
        }
    return out


def gap_table(rows: dict) -> dict[str, dict]:
    """Means over the stations of their `gaps` (`gap_scores`), for the gaps every station has."""
    scored = [r["gaps"] for r in rows.values() if "gaps" in r]
    if not scored or len(scored) < len(rows):
        return {}
    gaps = set.intersection(*(set(s) for s in scored))
    return {
        g: {
            name: {k: round(float(np.mean([s[g][name][k] for s in scored])), 4) for k in v}
            for name, v in scored[0][g].items()
        }
        for g in sorted(gaps, key=int)
    }
