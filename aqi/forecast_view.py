"""What `aqi forecast` shows: hourly tables (one per station, or one overview row each for many),
and the csv and json texts of forecast.py's stable schema."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from aqi.config import AqiError
from aqi.datadir import check_output, write_output
from aqi.term import console


def forecast_table(result: dict) -> None:
    """One station's forecast as a rich table, each row coloured by its level."""
    t = Table(
        title=f"{result['station']}: PM2.5 forecast issued {result['issued_at']} ({result['standard']})"
    )
    has_q = "quantiles" in result["forecasts"][0]
    has_p = "level_probability" in result["forecasts"][0]
    cols = ["time (local)", "h", "PM2.5 µg/m³"] + (["p10–p90"] if has_q else []) + ["AQI", "level"]
    cols += ["P(level)"] if has_p else []
    first = result["forecasts"][0]
    unhealthy = next(iter(first["p_level_at_least"])) if has_q else ""
    cols += [f"P(level ≥ {unhealthy})"] if has_q else []
    for c in cols:
        t.add_column(c, justify="left" if c in ("time (local)", "level") else "right")
    for r in result["forecasts"]:
        q = list(r.get("quantiles", {}).values())
        cells = [r["target_time"][:16].replace("T", " "), str(r["horizon"]), f"{r['pm25']:.1f}"]
        cells += [f"{q[0]:.0f}–{q[-1]:.0f}"] if has_q else []
        cells += [str(r["aqi"]), f"[on {r['color']}]  [/] {r['level']} {r['level_name']}"]
        cells += [f"{r['level_probability']:.0%}"] if has_p else []
        cells += [f"{r['p_level_at_least'][unhealthy]:.0%}"] if has_q else []
        t.add_row(*cells)
    console.print(t)


OVERVIEW_AFTER = 20  # stations: more hourly tables than a terminal shows usefully; one row each


def forecast_overview(results: list[dict]) -> None:
    """Many stations' forecasts as one table: per station the next hour's level, the worst level
    of the next H hours (its first hour) and the peak point forecast. `aqi forecast --station all`
    of 1,000 stations took 28-30 s with 1,000 hourly tables, 12.5-12.8 s with this one."""
    standards = ", ".join(sorted({r["standard"] for r in results}))  # models may differ
    t = Table(title=f"PM2.5 forecasts of {len(results)} stations ({standards})")
    for c in (
        "station",
        "issued (local)",
        "model",
        "next hour",
        "worst level",
        "at (local)",
        "peak µg/m³ (point)",
    ):
        t.add_column(c, justify="right" if c.startswith("peak") else "left")
    for r in results:
        rows, first = r["forecasts"], r["forecasts"][0]
        worst = max(rows, key=lambda x: (x["level"], -x["horizon"]))
        t.add_row(
            r["station"], r["issued_at"][:16].replace("T", " "), r["model"]["kind"],
            f"[on {first['color']}]  [/] {first['level_name']}",
            f"[on {worst['color']}]  [/] {worst['level_name']}",
            worst["target_time"][5:16].replace("T", " "),
            f"{max(x['pm25'] for x in rows):.1f}",
        )  # fmt: skip
    console.print(t)
    console.print("hourly values: --format json or --format csv")


def forecast_text(results: list[dict], fmt: str) -> str:
    """Forecasts as 'csv' or 'json' (the stable schema of forecast.py), for files and pipes."""
    import json

    if fmt == "csv":
        return forecast_csv(results)
    if len(results) == 1:
        return json.dumps(results, indent=2, ensure_ascii=False)
    # one station a line: json's C encoder (indent= falls back to pure Python, ~1 ms a station)
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in results) + "\n]"


def forecast_csv(results: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    qs = list(results[0]["forecasts"][0].get("quantiles", {})) if results else []
    w.writerow(
        ["station", "issued_at", "target_time", "horizon", "pm25", "aqi", "level", "level_name", "color"]
        + [f"q{q}" for q in qs]
    )
    for res in results:
        for r in res["forecasts"]:
            w.writerow(
                [
                    res["station"],
                    res["issued_at"],
                    r["target_time"],
                    r["horizon"],
                    r["pm25"],
                    r["aqi"],
                    r["level"],
                    r["level_name"],
                    r["color"],
                ]
                + [r["quantiles"][q] for q in qs]
            )
    return buf.getvalue()


def output_format(fmt: str | None, output: Path | None) -> tuple[str, Path | None]:
    """(--format, --output) of `aqi forecast`, checked before any forecast is made: the format as
    given, else the file's suffix (.csv, .json), else a table, for the terminal only; '-' = stdout."""
    if output is not None and str(output) == "-":
        output = None
    suffix = Path(output).suffix.lower().lstrip(".") if output is not None else ""
    known = suffix if suffix in ("csv", "json") else None
    fmt = (known or "table") if fmt is None else fmt.lower()
    if fmt not in ("table", "csv", "json"):
        raise AqiError(f"--format {fmt!r}: use table, csv or json")
    if output is None:
        return fmt, None
    if fmt == "table":
        raise AqiError(f"--output {output}: a table is for the terminal; add --format csv or json")
    if known and known != fmt:
        raise AqiError(f"--output {output}: a .{known} name for --format {fmt}; make them agree")
    check_output(output, "--output")
    return fmt, output


def forecast_output(results: list[dict], fmt: str, output: Path | None, echo) -> None:
    """`aqi forecast`'s output: tables, or csv/json text on the terminal or in `output`."""
    if fmt == "table":
        if not results:
            echo("no forecasts: none of the trained stations is in this --shard")
        if len(results) > OVERVIEW_AFTER:
            forecast_overview(results)
            return
        for r in results:
            forecast_table(r)
        return
    text = forecast_text(results, fmt)
    if output is None:
        echo(text)
        return
    write_output(output, text, "--output")
    echo(f"wrote {output}")
