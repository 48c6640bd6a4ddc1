"""How a raw hourly CSV maps onto the canonical columns: the built-in UCI layout, or a user's TOML file.

See `aqi/examples/mapping-example.toml` for a documented example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aqi.config import MEASURES, AqiError
from aqi.tomlfile import read_toml

# Named units and the factor to the canonical unit (µg/m³, hPa), or an offset for kelvin.
UNIT_FACTORS = {
    "ug/m3": 1.0,
    "µg/m3": 1.0,
    "µg/m³": 1.0,
    "mg/m3": 1000.0,
    "mg/m³": 1000.0,
    "hpa": 1.0,
    "kpa": 10.0,
    "pa": 0.01,
    "c": 1.0,
    "m/s": 1.0,
    "km/h": 1 / 3.6,
    "mm": 1.0,
}
UNIT_OFFSETS = {"k": -273.15}  # kelvin → °C
TIME_PARTS = ("year", "month", "day", "hour")


@dataclass(frozen=True)
class Mapping:
    """Where each canonical column comes from in one CSV layout."""

    timezone: str  # IANA name of the local time the file is written in
    time_column: str | None = None  # one column with the timestamp...
    time_format: str | None = None  # ...parsed with this strptime format (None = ISO 8601)
    time_parts: dict[str, str] = field(default_factory=dict)  # ...or year/month/day/hour columns
    station_column: str | None = None  # station from a column...
    station: str | None = None  # ...or one fixed name (also set by --station)
    wide: str | None = None  # canonical variable held by one-column-per-station files
    columns: dict[str, str] = field(default_factory=dict)  # canonical name → source column
    wd_compass: str | None = None  # source column of 16-point compass wind direction text
    units: dict[str, tuple[float, float]] = field(default_factory=dict)  # canonical → (factor, offset)
    missing: tuple[str, ...] = ("NA", "")  # tokens read as missing

    def required(self) -> list[str]:
        cols = [self.time_column] if self.time_column else list(self.time_parts.values())
        if self.station_column:
            cols.append(self.station_column)
        if not self.wide:
            cols += list(self.columns.values())
            cols += [self.wd_compass] if self.wd_compass else []
        return cols


UCI = Mapping(
    timezone="Asia/Shanghai",  # Beijing local time, no DST (UCI does not say; CST is the convention)
    time_parts={p: p for p in TIME_PARTS},
    station_column="station",
    columns={
        "pm25": "PM2.5",
        "pm10": "PM10",
        "so2": "SO2",
        "no2": "NO2",
        "co": "CO",
        "o3": "O3",
        "temp": "TEMP",
        "pres": "PRES",
        "dewp": "DEWP",
        "rain": "RAIN",
        "wspm": "WSPM",
    },
    wd_compass="wd",
    missing=("NA", ""),
)


def load_mapping(path: Path, station: str | None = None) -> Mapping:
    """Parse and validate a TOML mapping file; every problem is an AqiError naming the file.

    `station` names the station of files that have no station column; where the file has one (or is
    wide), ingest uses it as a filter instead.
    """
    doc = read_toml(path, "mapping")
    try:
        return _from_doc(doc, station)
    except (TypeError, ValueError, KeyError) as e:
        raise AqiError(f"{path}: invalid mapping: {e}") from None


KEYS = {  # what a mapping may hold: a typo ([unit], timzone) must not pass silently
    "": {"time", "station", "columns", "units", "missing"},
    "time": {"timezone", "column", "format", "parts"},
    "station": {"column", "name", "wide"},
}


def _check_keys(doc: dict, station: str | None) -> None:
    for table, allowed in KEYS.items():
        got = doc if not table else doc.get(table, {})
        extra = set(got) - allowed if isinstance(got, dict) else set()
        if extra:
            where = f"[{table}]" if table else "top level"
            raise ValueError(
                f"unknown key(s) {sorted(extra)} at {where}; known: {', '.join(sorted(allowed))}"
            )
    s = doc.get("station", {})
    if isinstance(s, dict) and len({"column", "name", "wide"} & set(s)) > 1:
        raise ValueError("[station] takes one of 'column', 'name' or 'wide'")
    if isinstance(s, dict) and s.get("name") and station and station != s["name"]:
        raise ValueError(f"[station] name = {s['name']!r} but --station {station!r}; give one")


def _from_doc(doc: dict, station: str | None) -> Mapping:
    _check_keys(doc, station)
    t = doc.get("time")
    if not isinstance(t, dict) or "timezone" not in t:
        raise ValueError("[time] needs 'timezone' and 'column' or 'parts'")
    _check_timezone(t["timezone"])
    parts = _table(
        t, "parts", "[time] parts", 'parts = { year = "yr", month = "mo", day = "dy", hour = "hr" }'
    )
    if bool(t.get("column")) == bool(parts):
        raise ValueError("[time] needs exactly one of 'column' or 'parts'")
    if parts and set(parts) != set(TIME_PARTS):
        raise ValueError(f"[time] parts must name {', '.join(TIME_PARTS)}")
    s = _table(doc, "station", "[station]", '[station] column = "site"')
    columns = {str(k): str(v) for k, v in _table(doc, "columns", "[columns]", 'pm25 = "PM2.5"').items()}
    wd = columns.pop("wd", None)
    unknown = set(columns) - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown canonical column(s) {sorted(unknown)}; known: {', '.join(MEASURES)}")
    wide = s.get("wide")
    if wide is not None and wide not in MEASURES:
        raise ValueError(f"[station] wide = {wide!r} is not a canonical column")
    fixed = s.get("name") or (None if s.get("column") or wide else station)
    if not (fixed or s.get("column") or wide):
        raise ValueError("no station: set [station] column, name or wide, or pass --station")
    return Mapping(
        timezone=t["timezone"],
        time_column=t.get("column"),
        time_format=t.get("format"),
        time_parts=parts,
        station_column=None if fixed or wide else s.get("column"),
        station=fixed,
        wide=wide,
        columns=columns,
        wd_compass=wd,
        units={k: _unit(k, v) for k, v in _table(doc, "units", "[units]", 'co = "mg/m3"').items()},
        missing=tuple(str(x) for x in _list(doc.get("missing", ["NA", ""]))),
    )


def _table(doc: dict, key: str, name: str, example: str) -> dict:
    """doc[key] when it is a TOML table (default empty), else ValueError naming it and its shape."""
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise ValueError(f"{name} must be a table of key = value pairs (e.g. {example}), not {v!r}")
    return v


def _list(v) -> list:
    if not isinstance(v, list):
        raise ValueError(f'missing must be a list of strings (e.g. missing = ["NA", ""]), not {v!r}')
    return v


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name such as 'Europe/Paris')"
        ) from None


def _unit(col: str, spec: float | str) -> tuple[float, float]:
    if col not in MEASURES:
        raise ValueError(f"[units] {col!r} is not a canonical column")
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        if not 0 < spec < float("inf"):
            raise ValueError(f"[units] {col} = {spec!r}: a factor must be finite and > 0")
        return float(spec), 0.0
    key = str(spec).strip().lower()
    if key in UNIT_FACTORS:
        return UNIT_FACTORS[key], 0.0
    if key in UNIT_OFFSETS:
        return 1.0, UNIT_OFFSETS[key]
    raise ValueError(
        f"[units] {col} = {spec!r}: unknown unit; give a factor or one of "
        f"{', '.join(sorted(UNIT_FACTORS | UNIT_OFFSETS))}"
    )
