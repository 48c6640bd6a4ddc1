"""How far the published level gains by leaning on persistence: the trade-off behind issue 16's
China validation gap, measured on a trained network model, the same (origin, horizon) pairs for
every rule.

Usage: persistence_tolerance.py DATA_DIR SPLIT [DAYS]
  DATA_DIR holds the store and models/_network; SPLIT is val or test.
Rules, per hour ahead, mean level accuracy over the stations against persistence's:
  - "within d": publish the level of now (persistence) when the model gives it a probability within
    d of the published level's; d = 0 keeps the model's level, d = 1 is persistence itself.
  - "online": at each origin, the d whose published levels scored most hits, pooled over the
    stations, on the last DAYS days (default 30) of forecasts verifiable by then (targets <= the
    origin) of the same split; no history yet: d = 0. Causal, chosen on no held-out data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from compare_network import published_level

from aqi.concentrations import level_probabilities
from aqi.levels import level
from aqi.resolve import covered, load, load_network
from aqi.store import read_station

TOLERANCES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 1.0)  # probability


def station_levels(data_dir: Path, st: str, split: str) -> dict:
    """The split's origins (UTC), true levels (N, H) (-1 = no target), persistence's and the
    model's published levels, per tolerance the published levels (T, N, H), and the model's
    exceedances P(c >= b_i) (N, H, E)."""
    tm = load(data_dir, st)
    w = tm.windows(read_station(data_dir, st)).part(split)
    pred, std = tm.predict(w.x, w.last_pm25), tm.standard
    exceed = pred.exceedance(std)  # (N, H, E)
    probs = level_probabilities(exceed)  # (N, H, levels)
    own, pers = published_level(tm, pred), level(w.persistence(), std)
    gap = probs.max(-1) - np.take_along_axis(probs, pers[..., None], -1)[..., 0]
    rules = np.stack([np.where(gap <= d, pers, own) if d < 1 else pers for d in TOLERANCES])
    truth = np.where(np.isfinite(w.y), level(np.nan_to_num(w.y), std), -1)
    return {
        "origin": w.origin,
        "truth": truth,
        "pers": pers,
        "rules": rules,
        "exceed": exceed,
        "own": own,
    }


def online(per: dict, grid: pd.DatetimeIndex, days: int) -> dict[str, np.ndarray]:
    """{station: (N, H) levels} of the online rule: per origin and hour ahead h, the rule (of
    `rules`, (R, N, H)) with the most hits pooled over the stations on forecasts made at origins
    <= t - h in the last days; ties: the first."""
    n_h = next(iter(per.values()))["truth"].shape[1]
    n_r = next(iter(per.values()))["rules"].shape[0]
    hits = np.zeros((n_h, len(grid), n_r))
    pos = {st: grid.get_indexer(r["origin"]) for st, r in per.items()}
    for st, r in per.items():
        seen = r["truth"] >= 0
        for h in range(n_h):
            ok = seen[:, h]
            np.add.at(hits[h], pos[st][ok], r["truth"][ok, h, None] == r["rules"][:, ok, h].T)
    out = {st: np.empty_like(r["pers"]) for st, r in per.items()}
    for h in range(n_h):
        past = pd.DataFrame(hits[h]).shift(h + 1).rolling(days * 24, min_periods=1).sum()
        choice = np.argmax(past.fillna(0).to_numpy() - 1e-9 * np.arange(n_r), 1)
        for st, r in per.items():
            out[st][:, h] = r["rules"][choice[pos[st]], np.arange(len(pos[st])), h]
    return out


def accuracy(truth: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(H,) share of observed targets whose level is `levels`."""
    seen = truth >= 0
    return np.array(
        [np.mean(levels[seen[:, h], h] == truth[seen[:, h], h]) for h in range(truth.shape[1])]
    )


def line(name: str, acc: np.ndarray, pers: np.ndarray) -> str:
    margin = 100 * (acc - pers)
    return (
        f"{name:12} mean {acc.mean():.4f}  above persistence at {(margin > 0).sum():2d}/24, "
        f"smallest {margin.min():+.1f} points at {margin.argmin() + 1:2d} h, 24 h {margin[-1]:+.1f}"
    )


def arguments(argv: list[str], usage: str) -> tuple[dict, str, int, pd.DatetimeIndex]:
    """DATA_DIR SPLIT [DAYS] → (each covered station's levels, split, days, the hourly grid of
    their origins); `usage` on bad arguments."""
    if len(argv) < 2 or argv[1] not in ("val", "test"):
        raise SystemExit(usage)
    data_dir, split = Path(argv[0]), argv[1]
    days = int(argv[2]) if len(argv) > 2 else 30
    per = {st: station_levels(data_dir, st, split) for st in covered(load_network(data_dir))}
    origins = pd.DatetimeIndex(np.concatenate([r["origin"] for r in per.values()]))
    return per, split, days, pd.date_range(origins.min(), origins.max(), freq="h")


def main(argv: list[str]) -> None:
    per, split, days, grid = arguments(argv, __doc__)
    chosen = online(per, grid, days)
    mean = lambda f: np.mean([f(r, st) for st, r in per.items()], axis=0)  # noqa: E731
    pers = mean(lambda r, _: accuracy(r["truth"], r["pers"]))
    print(f"{split}, mean over {len(per)} stations, level accuracy of the published level")
    print(line("persistence", pers, pers))
    for i, d in enumerate(TOLERANCES):
        print(line(f"within {d}", mean(lambda r, _, i=i: accuracy(r["truth"], r["rules"][i])), pers))
    acc = mean(lambda r, st: accuracy(r["truth"], chosen[st]))
    print(line(f"online {days} d", acc, pers))
    print("online - persistence, 1..24 h:", " ".join(f"{v:+.1f}" for v in 100 * (acc - pers)))


if __name__ == "__main__":
    main(sys.argv[1:])
