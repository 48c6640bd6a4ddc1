"""Is the level head calibrated? Per hour ahead, the network model's mean probability that the level
at t+h is the level at the origin t (persistence's call), lower or higher, against how often it was;
the published level's mean probability against its accuracy; and the log loss of the level
probabilities, as the head gives them ("raw") and as published, calibrated by the temperatures
fitted on validation (`level_temperature` in meta.json; a model without them shows raw twice).

Usage: level_calibration.py DATA_DIR SPLIT
  DATA_DIR holds the store and models/_network (`aqi train --station all`); SPLIT is val or test.
  Every (origin, horizon) pair with an observation is pooled over the covered stations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from compare_network import published_level

from aqi.concentrations import level_probabilities, log_loss
from aqi.levels import level
from aqi.resolve import covered, load, load_network
from aqi.store import read_station

HOURS = (1, 3, 6, 12, 16, 19, 24)


def station_counts(data_dir: Path, st: str, split: str) -> np.ndarray:
    """(H, 11) sums over `st`'s pairs: predicted and observed same / lower / higher than the level
    at the origin, the published level's probability (raw, published) and hits, the log loss (raw,
    published), and the number of pairs."""
    tm = load(data_dir, st)
    w = tm.windows(read_station(data_dir, st)).part(split)
    pred, std = tm.predict(w.x, w.last_pm25), tm.standard
    raw, probs = level_probabilities(pred.exceedance(std)), pred.level_probabilities(std)  # (N, H, K)
    seen = ~np.isnan(w.y)
    obs, now = level(np.nan_to_num(w.y), std), level(w.persistence(), std)
    k = np.arange(probs.shape[-1])
    p_same = (probs * (k == now[..., None])).sum(-1)
    p_lower = (probs * (k < now[..., None])).sum(-1)
    pub = published_level(tm, pred)
    pub_p = [np.take_along_axis(p, pub[..., None], -1)[..., 0] for p in (raw, probs)]
    stays = (p_same, obs == now, p_lower, obs < now, 1 - p_same - p_lower, obs > now)
    cols = (*stays, *pub_p, pub == obs, log_loss(raw, obs), log_loss(probs, obs))
    return np.stack([np.where(seen, c, 0).sum(0) for c in cols] + [seen.sum(0)], -1)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in ("val", "test"):
        raise SystemExit(__doc__)
    data_dir, split = Path(argv[0]), argv[1]
    names = covered(load_network(data_dir))
    c = sum(station_counts(data_dir, st, split) for st in names)
    r = c[:, :-1] / c[:, -1:]
    print(f"{split}, {len(names)} stations pooled: predicted / observed share of pairs")
    print(
        "hours ahead | level stays | level falls | level rises | published level: mean probability"
        " raw / published / accuracy | log loss raw / published"
    )
    for h in HOURS:
        a = r[h - 1]
        print(
            f"{h:11} | {a[0]:.3f} / {a[1]:.3f} | {a[2]:.3f} / {a[3]:.3f} | {a[4]:.3f} / {a[5]:.3f}"
            f" | {a[6]:.3f} / {a[7]:.3f} / {a[8]:.3f} | {a[9]:.3f} / {a[10]:.3f}"
        )
    gap = np.abs(r[:, 6:8] - r[:, 8:9]).mean(0)  # |mean probability - accuracy|, raw and published
    print(
        f"mean over {len(r)} hours ahead: |probability - accuracy| {gap[0]:.3f} raw, {gap[1]:.3f}"
        f" published; log loss {r[:, 9].mean():.4f} raw, {r[:, 10].mean():.4f} published"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
