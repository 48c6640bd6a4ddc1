"""Online recalibration of the published level, in the manner of the running corrections that
operational air-quality forecasts apply (updatable model output statistics): measured on a
trained network model, every rule on the same (origin, horizon) pairs; issue 16's China
validation gap is what it is aimed at.

Usage: online_levels.py DATA_DIR SPLIT [DAYS]
  DATA_DIR holds the store and models/_network; SPLIT is val or test.
Rules, each causal (it sees only forecasts verifiable by the origin, targets <= the origin, of the
last DAYS days, default 30, pooled over the stations; with no history yet, the model's level):
  - "shift": per hour ahead, every cumulative level logit logit P(c >= b_i) moved by one amount
    a_h, chosen per origin among SHIFTS by hits;
  - "mos": per hour ahead, refitted once a day, a multinomial logistic regression of the true
    level on the model's level log-probabilities and the level of now (score_k = a log p_k +
    b [k = level now] + c_k): it learns how far to trust the model against persistence.
Prints, per rule, mean level accuracy over the stations against persistence's and the model's.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from persistence_tolerance import accuracy, arguments, line, online
from scipy.optimize import minimize

from aqi.concentrations import level_probabilities

SHIFTS = (0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1.0, -1.0, 1.5, -1.5)  # logits; ties: first
EPS = 1e-4  # probabilities are clipped into [EPS, 1 - EPS] before a logarithm
HOUR = pd.Timedelta(hours=1).value  # ns
MIN_ROWS = 500  # verified forecasts a fit needs; fewer: the model's level


def shifted(exceed: np.ndarray, a: float) -> np.ndarray:
    """(N, H) most probable levels once every logit P(c >= b_i) of (N, H, E) is moved by a."""
    p = np.clip(exceed, EPS, 1 - EPS)
    moved = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + a)))
    return level_probabilities(moved).argmax(-1)


def fit_mos(logp: np.ndarray, now: np.ndarray, truth: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """(a, b, c_0..c_K-1) of score_k = a logp_k + b now_k + c_k maximising the likelihood of
    `truth` (N,), logp and now (N, K); a small L2 on c keeps unseen levels finite."""
    n, k = logp.shape
    y = np.eye(k)[truth]

    def loss(w):
        z = w[0] * logp + w[1] * now + w[2:]
        z = z - z.max(1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        g = (np.exp(lp) - y) / n
        grad = np.concatenate([[(g * logp).sum(), (g * now).sum()], g.sum(0) + 1e-3 * w[2:]])
        return -(y * lp).sum() / n + 5e-4 * (w[2:] ** 2).sum(), grad

    return minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 100}).x


def mos(per: dict, days: int) -> dict[str, np.ndarray]:
    """{station: (N, H) levels} of the "mos" rule, refitted at every midnight (UTC) of the split."""
    origin = np.concatenate([r["origin"].as_unit("ns").asi8 for r in per.values()])
    k = next(iter(per.values()))["exceed"].shape[-1] + 1
    probs = np.concatenate([level_probabilities(r["exceed"]) for r in per.values()])  # (M, H, K)
    logp = np.log(np.clip(probs, EPS, 1))
    now = np.eye(k)[np.concatenate([r["pers"] for r in per.values()])]  # (M, H, K)
    truth = np.concatenate([r["truth"] for r in per.values()])
    out = np.concatenate([r["own"] for r in per.values()])
    day, w = 24 * HOUR, {h: np.r_[1.0, 0.0, np.zeros(k)] for h in range(truth.shape[1])}
    for d in range(pd.Timestamp(origin.min()).floor("D").value + day, origin.max() + day, day):
        today = (origin >= d) & (origin < d + day)
        for h in w:
            seen = (origin + (h + 1) * HOUR <= d) & (origin >= d - days * day) & (truth[:, h] >= 0)
            if seen.sum() >= MIN_ROWS and today.any():
                w[h] = fit_mos(logp[seen, h], now[seen, h], truth[seen, h], w[h])
                score = w[h][0] * logp[today, h] + w[h][1] * now[today, h] + w[h][2:]
                out[today, h] = score.argmax(-1)
    ends = np.cumsum([len(r["origin"]) for r in per.values()])
    return dict(zip(per, np.split(out, ends[:-1]), strict=True))


def main(argv: list[str]) -> None:
    per, split, days, grid = arguments(argv, __doc__)
    for r in per.values():
        r["rules"] = np.stack([shifted(r["exceed"], a) for a in SHIFTS])
    rules = {
        f"shift {days} d": online(per, grid, days),
        f"mos {days} d": mos(per, days),
    }
    mean = lambda f: np.mean([f(r, st) for st, r in per.items()], axis=0)  # noqa: E731
    pers = mean(lambda r, _: accuracy(r["truth"], r["pers"]))
    own = mean(lambda r, _: accuracy(r["truth"], r["own"]))
    print(f"{split}, mean over {len(per)} stations, level accuracy of the published level")
    print(line("persistence", pers, pers))
    print(line("published", own, pers))
    for name, chosen in rules.items():
        acc = mean(lambda r, st, c=chosen: accuracy(r["truth"], c[st]))
        print(line(name, acc, pers))
        print(f"  - persistence, 1..24 h: {' '.join(f'{v:+.1f}' for v in 100 * (acc - pers))}")
        print(f"  - published,   1..24 h: {' '.join(f'{v:+.1f}' for v in 100 * (acc - own))}")


if __name__ == "__main__":
    main(sys.argv[1:])
