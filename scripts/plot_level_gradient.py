"""The level loss's gradient against the distance to the nearest breakpoint, old and new settings.

Usage: plot_level_gradient.py OUT.png [MODEL_DIR]
  old: the tanh-step level term |S(y) - S(ŷ)| with tau = 2 µg/m³ (and band-relative tau_frac = 0.25):
       its gradient is Σ_i (1 - tanh²((ŷ - b_i)/tau_i)) / (2 tau_i), ~0 a few tau from a breakpoint;
  new: the level head's ordinal log loss Σ_i BCE(1[y ≥ b_i], σ((μ - log1p b_i)/s)) for a target
       one level above, against the location μ = log1p ŷ + δ that the network moves (ŷ itself is
       held by stop-gradient), per µg/m³: Σ_i (σ_i - 1[y ≥ b_i]) / (s (1 + ŷ)), which does not
       vanish on the wrong side of a breakpoint. The spreads s are the median ones a trained level
       model (MODEL_DIR, e.g. data/models/Aotizhongxin) learnt at 1 h and 24 h, else 0.1 and 0.5.
US EPA 2024 breakpoints; ŷ from 0 to 300 µg/m³.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from aqi.levels import STANDARDS, level

STD = STANDARDS["us-epa-2024"]


def tanh_step_gradient(c: np.ndarray, taus: np.ndarray) -> np.ndarray:
    z = (c[:, None] - np.asarray(STD.edges)) / taus
    return ((1 - np.tanh(z) ** 2) / (2 * taus)).sum(1)


def ordinal_gradient(c: np.ndarray, spread: float) -> np.ndarray:
    """|∂ loss / ∂ŷ| with the target one level above ŷ's own."""
    b = np.log1p(np.asarray(STD.edges))
    p = 1 / (1 + np.exp(-(np.log1p(c)[:, None] - b) / spread))
    target_level = np.minimum(level(c, STD) + 1, len(STD.edges))
    reached = (np.arange(len(b)) < target_level[:, None]).astype(float)
    return np.abs(((p - reached) / (spread * (1 + c[:, None]))).sum(1))


def learned_spreads(model_dir: Path) -> tuple[float, float]:
    from aqi.store import read_station
    from aqi.trained import load

    tm = load(model_dir.parents[1], model_dir.name)
    x = tm.windows(read_station(model_dir.parents[1], model_dir.name)).part("val").x
    model = tm.keras_model()
    members = [m for m in model.layers if m.name.startswith("member_")] or [model]
    head = members[0].get_layer("level_head")
    import keras

    raw = np.asarray(keras.Model(members[0].inputs, head.output)(x[:2000], training=False))
    h = tm.config.window.horizon  # level_head columns: shift (H), spread (H), corrections (E·H)
    s = np.log1p(np.exp(raw[:, h : 2 * h] - 1.0)) + 0.02
    return float(np.median(s[:, 0])), float(np.median(s[:, -1]))


def main(out: Path, model_dir: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = np.linspace(0.0, 300.0, 6001)
    edges = np.asarray(STD.edges)
    dist = c - edges[np.abs(c[:, None] - edges).argmin(1)]
    lows = np.r_[0.0, edges[:-1]]
    s1, s24 = learned_spreads(model_dir) if model_dir else (0.1, 0.5)
    curves = [
        ("old: tanh step, tau = 2 µg/m³", tanh_step_gradient(c, np.full(len(edges), 2.0)), ""),
        ("old: tanh step, tau = 0.25 × band", tanh_step_gradient(c, 0.25 * (edges - lows)), ""),
        (f"new: level head, log spread {s1:.2f} (1 h)", ordinal_gradient(c, s1), ""),
        (f"new: level head, log spread {s24:.2f} (24 h)", ordinal_gradient(c, s24), ""),
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, g, _ in curves:  # one dot per ŷ: ŷ at the same distance from different breakpoints
        ax.scatter(np.abs(dist), g, s=1, label=name)
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 10)
    ax.set(xlabel="|ŷ − nearest breakpoint| (µg/m³)", ylabel="|∂ level term / ∂ location| (per µg/m³)")
    ax.set_title("Does the level term reach the prediction? (US EPA 2024 breakpoints)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, markerscale=8)
    fig.savefig(out, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
