"""Evaluation report: runs `evaluate` per station, then writes plots and the cross-station summary.

Under reports/evaluate/: <station>/{metrics.json, predictions.parquet, mae_vs_horizon.png,
level_accuracy_vs_horizon.png, confusion.png, fortnight.png}, summary.md and summary.json.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.evaluate import METHODS, evaluate_station, report_dir
from aqi.store import atomic_write_bytes

STYLE = {
    "model": ("#d62728", "-"),
    "gbm": ("#1f77b4", "--"),
    "persistence": ("#7f7f7f", ":"),
    "seasonal_naive": ("#2ca02c", "-."),
    "climatology": ("#9467bd", ":"),
}


def evaluation_report(
    data_dir: Path, names: list[str], standard: str | None = None, echo: Callable[[str], None] = print
) -> dict:
    summary = {}
    for i, st in enumerate(names, 1):
        echo(f"[{i}/{len(names)}] evaluating {st} (model and 4 baselines on the test year)")
        m = evaluate_station(data_dir, st, standard)
        _station_plots(data_dir, st, m)
        summary[st] = _summary_row(m)
    root = report_dir(data_dir)
    atomic_write_bytes(root / "summary.json", json.dumps(summary, indent=2).encode())
    atomic_write_bytes(root / "summary.md", summary_markdown(summary).encode())
    return summary


def _summary_row(m: dict) -> dict:
    row = {}
    for method, v in m["methods"].items():
        row[method] = {
            "mae": round(float(np.mean(v["mae"])), 2),
            "level_accuracy": round(float(np.mean(v["level_accuracy"])), 4),
            "daily_level_accuracy": m["daily_level_accuracy"][method],
        }
    mod, pers = m["methods"]["model"], m["methods"]["persistence"]
    row["checks"] = {
        "mae_below_persistence_h>=2": bool(np.all(np.array(mod["mae"][1:]) < pers["mae"][1:])),
        "mae_below_seasonal_and_climatology": bool(
            all(
                np.all(np.array(mod["mae"]) < m["methods"][b]["mae"])
                for b in ("seasonal_naive", "climatology")
            )
        ),
        "level_accuracy_by_horizon_minus_persistence": (
            np.array(mod["level_accuracy"]) - pers["level_accuracy"]
        )
        .round(4)
        .tolist(),
    }
    if "probabilistic" in m:
        p, c = m["probabilistic"]["model"], m["probabilistic"]["climatology"]
        row["probabilistic"] = {
            "interval": p["interval"],
            "coverage": round(float(np.mean(p["coverage"])), 4),
            "width": round(float(np.mean(p["width"])), 2),
            "brier": round(float(np.mean(p["brier"])), 4),
            "climatology_brier": round(float(np.mean(c["brier"])), 4),
            "brier_below_climatology_every_horizon": bool(np.all(np.array(p["brier"]) < c["brier"])),
        }
    return row


def summary_markdown(summary: dict) -> str:
    head = (
        "| station | model MAE | GBM MAE | persistence MAE | model level acc | GBM level acc | "
        "persistence level acc | model daily acc | GBM daily acc |\n|---|" + "---:|" * 8 + "\n"
    )
    keys = ("model", "gbm", "persistence")

    def cells(r: dict) -> list[float]:
        return (
            [r[k]["mae"] for k in keys]
            + [r[k]["level_accuracy"] for k in keys]
            + [r[k]["daily_level_accuracy"] or np.nan for k in ("model", "gbm")]
        )

    def line(name: str, vals: list[float], bold: str = "") -> str:
        fmt = [".2f"] * 3 + [".3f"] * 5
        return (
            f"| {name} | "
            + " | ".join(f"{bold}{v:{f}}{bold}" for v, f in zip(vals, fmt, strict=True))
            + " |"
        )

    per_station = {st: cells(r) for st, r in summary.items()}
    rows = [line(st, v) for st, v in per_station.items()]
    table = np.array(list(per_station.values()), float)
    ok = np.isfinite(table)  # daily accuracy is missing when H < 24: NaN, not a warning
    mean = np.where(ok.any(0), np.where(ok, table, 0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)
    rows.append(line("**mean**", list(mean), "**"))
    note = (
        "\nMAE in µg/m³ and level accuracy averaged over horizons 1–24 h on the test split; "
        "daily = next-day daily-mean level from 23:00 origins.\n"
    )
    return "# Evaluation summary\n\n" + head + "\n".join(rows) + "\n" + note


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _station_plots(data_dir: Path, station: str, m: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, h = report_dir(data_dir, station), m["horizons"]
    for key, ylabel, name in [
        ("mae", "MAE (µg/m³)", "mae_vs_horizon.png"),
        ("level_accuracy", "level accuracy", "level_accuracy_vs_horizon.png"),
    ]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for method in METHODS:
            color, ls = STYLE[method]
            ax.plot(
                h,
                m["methods"][method][key],
                ls,
                color=color,
                label=method,
                lw=2 if method == "model" else 1.4,
            )
        ax.set(
            xlabel="horizon (hours)",
            ylabel=ylabel,
            title=f"{station}: {ylabel} by horizon ({m['standard']})",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, out / name)
        plt.close(fig)
    _confusion_plot(plt, out, station, m)
    _fortnight_plot(plt, out, station)


def _confusion_plot(plt, out: Path, station: str, m: dict) -> None:
    c = np.asarray(m["confusion"]["model"], float)
    share = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(c.shape):
        ax.text(
            j,
            i,
            f"{int(c[i, j])}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if share[i, j] > 0.5 else "black",
        )
    ticks = range(len(m["levels"]))
    ax.set_xticks(ticks, [n[:12] for n in m["levels"]], rotation=45, ha="right")
    ax.set_yticks(ticks, [n[:12] for n in m["levels"]])
    ax.set(
        xlabel="forecast level", ylabel="observed level", title=f"{station}: model levels, all horizons"
    )
    _save(fig, out / "confusion.png")
    plt.close(fig)


def _fortnight_plot(plt, out: Path, station: str) -> None:
    p = pd.read_parquet(out / "predictions.parquet")
    start = p["origin"].min() + (p["origin"].max() - p["origin"].min()) * 0.75  # a winter fortnight
    fig, ax = plt.subplots(figsize=(10, 4))
    for hz, alpha in [(1, 1.0), (24, 0.8)]:
        d = p[
            (p["horizon"] == hz)
            & (p["target_time"] >= start)
            & (p["target_time"] < start + pd.Timedelta(days=14))
        ]
        if hz == 1:
            ax.plot(d["target_time"], d["y_true"], color="black", lw=1.2, label="observed")
        ax.plot(
            d["target_time"],
            d["model"],
            color="#d62728" if hz == 1 else "#ff9896",
            alpha=alpha,
            lw=1,
            label=f"model, {hz} h ahead",
        )
    ax.set(ylabel="PM2.5 (µg/m³)", title=f"{station}: observed vs forecast, a test fortnight (UTC)")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, out / "fortnight.png")
    plt.close(fig)
