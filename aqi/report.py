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
