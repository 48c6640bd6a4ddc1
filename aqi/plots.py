"""Figures of one station's evaluation, drawn to PNG bytes; the caller decides where they go.

Input: the metrics dict of `evaluate.scores` and the predictions frame of `evaluate.predictions_frame`
(one row per origin and horizon, times UTC, a column per method).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

STYLE = {  # method → (colour, line style)
    "model": ("#d62728", "-"),
    "gbm": ("#1f77b4", "--"),
    "persistence": ("#7f7f7f", ":"),
    "seasonal_naive": ("#2ca02c", "-."),
    "climatology": ("#9467bd", ":"),
}
DPI = 110


def station_figures(station: str, m: dict, frame: pd.DataFrame, methods) -> dict[str, bytes]:
    """{file name: PNG}: MAE and level accuracy by horizon, the level confusion, a fortnight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for key, ylabel, name in [
        ("mae", "MAE (µg/m³)", "mae_vs_horizon.png"),
        ("level_accuracy", "level accuracy", "level_accuracy_vs_horizon.png"),
    ]:
        out[name] = _png(plt, _by_horizon(plt, station, m, methods, key, ylabel))
    out["confusion.png"] = _png(plt, _confusion(plt, station, m))
    if "decision_curve" in m:
        out["decision_curve.png"] = _png(plt, _decision_curve(plt, station, m))
    out["fortnight.png"] = _png(plt, _fortnight(plt, station, frame))
    return out


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _by_horizon(plt, station: str, m: dict, methods, key: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    for method in methods:
        color, ls = STYLE[method]
        lw = 2 if method == "model" else 1.4
        ax.plot(m["horizons"], m["methods"][method][key], ls, color=color, label=method, lw=lw)
    title = f"{station}: {ylabel} by horizon ({m['standard']})"
    ax.set(xlabel="horizon (hours)", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _confusion(plt, station: str, m: dict):
    c = np.asarray(m["confusion"]["model"], float)
    share = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(c.shape):
        color = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=8, color=color)
    ticks = range(len(m["levels"]))
    ax.set_xticks(ticks, [n[:12] for n in m["levels"]], rotation=45, ha="right")
    ax.set_yticks(ticks, [n[:12] for n in m["levels"]])
    title = f"{station}: model levels, all horizons"
    ax.set(xlabel="forecast level", ylabel="observed level", title=title)
    return fig


def _fortnight(plt, station: str, p: pd.DataFrame):
    start = p["origin"].min() + (p["origin"].max() - p["origin"].min()) * 0.75  # a winter fortnight
    end = start + pd.Timedelta(days=14)
    fig, ax = plt.subplots(figsize=(10, 4))
    for hz, alpha in [(1, 1.0), (24, 0.8)]:
        d = p[(p["horizon"] == hz) & (p["target_time"] >= start) & (p["target_time"] < end)]
        if hz == 1:
            ax.plot(d["target_time"], d["y_true"], color="black", lw=1.2, label="observed")
        color = "#d62728" if hz == 1 else "#ff9896"
        ax.plot(
            d["target_time"], d["model"], color=color, alpha=alpha, lw=1, label=f"model, {hz} h ahead"
        )
    ax.set(ylabel="PM2.5 (µg/m³)", title=f"{station}: observed vs forecast, a test fortnight (UTC)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _decision_curve(plt, station: str, m: dict):
    """POD against FAR of the published 'unhealthy' call as the cost of a miss grows."""
    c = m["decision_curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["far"] for r in c], [r["pod"] for r in c], "o-", color=STYLE["model"][0])
    for r in c:
        ax.annotate(
            f"{r['miss_cost']:g}", (r["far"], r["pod"]), textcoords="offset points", xytext=(4, -10)
        )
    name = m["levels"][m["unhealthy_level"]]
    ax.set(xlabel="false alarm ratio", ylabel="probability of detection")
    ax.set_title(f"{station}: calling '{name}' or worse, by miss cost", fontsize=9)
    ax.grid(alpha=0.3)
    return fig
