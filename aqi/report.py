"""Terminal output: rich tables. Imports no TensorFlow."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def stations_table(rows: list[dict]) -> None:
    t = Table(title="Stations in the store")
    for col, just in [
        ("station", "left"),
        ("first (local)", "left"),
        ("last (local)", "left"),
        ("rows", "right"),
        ("PM2.5 missing %", "right"),
        ("all missing %", "right"),
    ]:
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(
            r["station"],
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
