"""Tables and text: rich tables for the terminal, Markdown for reports. Renders only; imports no
TensorFlow and computes nothing."""

from __future__ import annotations

import numpy as np
from rich import box
from rich.table import Table

from aqi.summary import methods_of
from aqi.term import console


def levels_view(standard: str | None, value: float | None, every: bool, echo) -> None:
    """`aqi levels`: a standard's table (every built-in one with `every`), or one value's level."""
    from aqi.config import AqiError, LossConfig
    from aqi.levels import STANDARDS, get_standard

    if every and (standard is not None or value is not None):
        given = "--standard" if standard is not None else "--value"
        raise AqiError(f"--all: prints every built-in table; drop {given} or drop --all")
    std = None if every else get_standard(standard or LossConfig.standard)
    if value is None:
        for table in STANDARDS.values() if every else [std]:
            standard_table(table)
        return
    if not 0 <= value < float("inf"):
        raise AqiError(f"--value {value}: a concentration must be finite and >= 0 µg/m³")
    echo(level_line(value, std))


def level_line(value: float, std) -> str:
    """`aqi levels --value`: the level and index of one concentration."""
    from aqi.levels import index_value, level

    k = int(level(value, std))
    kind, index = "AQI" if std.segments else "index", int(index_value(value, std))
    return f'{value:g} µg/m³ under {std.key}: level {k}, "{std.names[k]}", {kind} {index}'


def train_summary(meta: dict) -> str:
    """The one line `aqi train` ends with: validation means over horizons, model vs persistence
    (and the published level's accuracy, with a predictive head)."""
    v = meta["validation"]
    mean = {k: {m: float(np.mean(v[k][m])) for m in ("mae", "level_accuracy")} for k in v}
    published = ""
    if "val_published" in meta and meta["config"]["decision"]["miss_cost"] == 1:  # as published
        published = f", published level acc {np.mean(meta['val_published']):.3f}"
    elif "decided_horizons" in meta:
        own, decided = v["model"]["level_accuracy"], meta["val_decided"]
        pick = [
            d if use else o for d, o, use in zip(decided, own, meta["decided_horizons"], strict=True)
        ]
        published = f", published level acc {np.mean(pick):.3f}"
    name, members = meta["station"], f"{len(meta['best_epoch'])} member(s), "
    if meta.get("kind") == "network":
        name = f"network model of {len(meta['data']['stations'])} stations"
    elif meta.get("kind") == "finetuned":  # its members were trained together, as one model
        how = "fine-tuned from" if meta.get("saved", True) else "nothing saved: no epoch beat"
        name, members = f"{name} ({how} the network model)", ""
    return (
        f"{name}: {members}val MAE {mean['model']['mae']:.2f} "
        f"µg/m³ (persistence {mean['persistence']['mae']:.2f}), level acc "
        f"{mean['model']['level_accuracy']:.3f}{published} (persistence "
        f"{mean['persistence']['level_accuracy']:.3f}), {meta['train_seconds']:.0f} s"
    )


def ingest_lines(reports, notes: list[str], most: int = 20) -> list[str]:
    """What `aqi ingest` prints: one line per station (at most `most`, then a total) and the
    readers' notes (sentinels, negatives, units, skipped files), the first `most` of them."""
    lines = [
        f"{r.station}: {r.rows} rows ({r.added} added, {r.corrected} corrected, "
        f"{r.filled} filled{r.note})"
        for r in reports[:most]
    ]
    if len(reports) > most:
        rows = sum(r.rows for r in reports)
        written = sum(r.written for r in reports)
        lines.append(f"… {len(reports)} stations in all, {rows:,} rows, {written} partition(s) written")
    lines += [f"note: {n}" for n in notes[:most]]
    if len(notes) > most:
        lines.append(f"note: … and {len(notes) - most} more notes")
    return lines


def stations_table(rows: list[dict]) -> None:
    t = Table(title="Stations in the store (times local)", box=box.SIMPLE_HEAD)
    cols = ("station", "name", "lat, lon", "first", "last", "rows", "PM2.5 missing %", "all missing %")
    for col in cols:
        t.add_column(col, justify="right" if col in cols[5:] else "left", no_wrap=col != "name")
    for r in rows:
        where = f"{r['latitude']:.4f}, {r['longitude']:.4f}" if r.get("latitude") is not None else ""
        head = (r["station"], (r.get("name") or "")[:24], where)
        if "error" in r:
            t.add_row(*head, "[red]corrupt partition: re-ingest its raw files[/red]")
            continue
        t.add_row(
            *head,
            r["first"][:16].replace("T", " "),
            r["last"][:16].replace("T", " "),
            f"{r['rows']:,}",
            f"{r['missing_pm25_pct']:.2f}",
            f"{r['missing_all_pct']:.2f}",
        )
    console.print(t)


def standard_table(std) -> None:
    """Print a standard's levels, coloured by level."""
    t = Table(title=f"{std.key}: {std.title}" + ("" if std.verified else "  [unverified]"))
    for col in ("level", "name", "PM2.5 µg/m³", "index"):
        t.add_column(col)
    lows = (0.0, *std.edges)
    for k, name in enumerate(std.names):
        lo_op, hi_op = ("<", "≤") if std.upper_closed else ("≤", "<")
        if k == len(std.edges):
            rng = f"c {'>' if std.upper_closed else '≥'} {lows[k]:g}"
        else:
            rng = f"{lows[k]:g} {lo_op if k else '≤'} c {hi_op} {std.edges[k]:g}"
        segs = [s for s in std.segments if lows[k] <= s[0] < (std.edges + (1e9,))[k]]
        idx = f"{segs[0][2]:g}–{segs[-1][3]:g}" if segs else str(k + 1)
        t.add_row(str(k), f"[on {std.colors[k]}] [/] {name}", rng, idx)
    console.print(t)


LABEL = {
    "model": "model",
    "published": "published",
    "gbm": "GBM",
    "persistence": "persist.",
    "seasonal_naive": "seasonal",
    "climatology": "climat.",
}


def evaluation_table(summary: dict) -> None:
    """Per station: mean MAE and level accuracy over horizons, model vs baselines; best in bold."""
    t = Table(title="Test-split evaluation per station (means over horizons; MAE µg/m³)")
    maes = methods_of(next(iter(summary.values())))
    accs = [m for m in ("published", *maes) if m not in ("seasonal_naive", "climatology")]
    accs = accs if any("published" in r for r in summary.values()) else accs[1:]
    t.add_column("station", min_width=max(len(st) for st in summary))
    for m in maes:
        t.add_column(f"MAE\n{LABEL.get(m, m)}", justify="right")
    for m in accs:
        t.add_column(f"level acc\n{LABEL.get(m, m)}", justify="right")
    for st, r in summary.items():
        cells = _best([r[m]["mae"] for m in maes], min, ".2f")
        cells += _best([r[m]["level_accuracy"] if m in r else None for m in accs], max, ".3f")
        t.add_row(st, *cells)
    console.print(t)


def horizon_table(h: dict) -> None:
    """Means over the stations per horizon: MAE and level accuracy of every method, the model's
    skill vs persistence; the winner of each horizon in bold."""
    n = len(h["stations"])
    t = Table(title=f"Test-split evaluation by hours ahead (mean over {n} station(s); MAE µg/m³)")
    t.add_column("hours ahead")
    for key, title in (("mae", "MAE"), ("level_accuracy", "level acc")):
        for m in h[key]:
            t.add_column(f"{title}\n{LABEL.get(m, m)}", justify="right")
    t.add_column("model skill\nvs persist.", justify="right")
    for i, hz in enumerate(h["horizons"]):
        cells = _best([v[i] for v in h["mae"].values()], min, ".2f")
        cells += _best([v[i] for v in h["level_accuracy"].values()], max, ".3f")
        skill = h.get("skill_vs_persistence")
        t.add_row(str(hz), *cells, f"{skill[i]:+.1%}" if skill else "–")
    console.print(t)


def _best(values: list, pick, fmt: str) -> list[str]:
    """Formatted cells, the best (min or max) in bold; None shows as '–'."""
    real = [v for v in values if v is not None]
    top = pick(real) if real else None
    return ["–" if v is None else f"[bold]{v:{fmt}}[/]" if v == top else f"{v:{fmt}}" for v in values]


def summary_markdown(summary: dict) -> str:
    """summary.md: one row per station and the mean row, means over horizons."""
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
        body = " | ".join(f"{bold}{v:{f}}{bold}" for v, f in zip(vals, fmt, strict=True))
        return f"| {name} | {body} |"

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


def gaps_table(table: dict) -> None:
    """`gap_skill.gap_table`: MAE and level accuracy by hours missing before the origin."""
    if not table:
        return
    t = Table(title="Through an outage: hours without data before the origin (test split, mean)")
    for col in ("gap h", "model MAE", "persistence MAE", "model level acc", "persistence level acc"):
        t.add_column(col, justify="right")
    for g, v in table.items():
        m, p = v["model"], v["persistence"]
        t.add_row(g, f"{m['mae']:.2f}", f"{p['mae']:.2f}", f"{m['level_accuracy']:.3f}",
                  f"{p['level_accuracy']:.3f}")  # fmt: skip
    console.print(t)
