"""Raw hourly CSV (files, folders, zip archives) → validated canonical frames. Writes nothing.

A canonical frame has `station` (str), `time` (UTC), the float32 columns of `config.MEASURES`, and
`_src`/`_line` (source name, 1-based line in it) so that later checks can name the offending row.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from aqi.config import MEASURES, PHYSICAL_BOUNDS, AqiError, IngestConfig
from aqi.datadir import STATION_RE, check_station
from aqi.feeds import detect, read_feed, to_hourly
from aqi.mapping import UCI, Mapping
from aqi.sources import Source

# 16-point compass → degrees; calm ('C', 'CV') has no direction and stays missing.
_POINTS = "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split()
COMPASS = {d: i * 22.5 for i, d in enumerate(_POINTS)}


def read_source(
    src: Source,
    mapping: Mapping | None,
    station: str | None = None,
    cfg: IngestConfig = IngestConfig(),
) -> tuple[pd.DataFrame, dict, list[str]]:
    """One source → (canonical frame, validated; {station: metadata}; notes). With no `mapping`
    an agency feed is recognised by its header (`feeds.detect`), else the UCI layout is expected."""
    kind = None if mapping else detect(src.data[:4096])
    if kind:
        feed = read_feed(kind, src.data, src.name)
        df = to_hourly(feed, src.name)
        if station:
            df = df[df["station"] == station]
        # one implausible value of 1,428 sites must not refuse the hour: set missing and counted
        out = {c: int(((df[c] < lo) | (df[c] > hi)).sum()) for c, (lo, hi) in PHYSICAL_BOUNDS.items()}
        if any(out.values()):
            said = ", ".join(f"{n} {c}" for c, n in out.items() if n)
            feed.notes.append(f"{src.name}: values outside physical bounds set missing: {said}")
        missing = dataclasses.replace(cfg, invalid="missing")
        return validate(df, src.name, missing), feed.stations, feed.notes
    m = mapping or UCI
    df, notes = _mapped(src, mapping, station)
    meta = {st: {"timezone": m.timezone, "source": "uci" if m is UCI else "mapping"}
            for st in df["station"].unique()}  # fmt: skip
    return validate(df, src.name, cfg), meta, notes


def _mapped(src: Source, mapping: Mapping | None, station: str | None):
    table = _read_table(src, mapping or UCI)
    m = mapping or _detect(src, table)
    missing = [c for c in m.required() if c not in table.column_names]
    if missing:
        raise AqiError(f"{src.name}: missing required column(s) {', '.join(missing)}")
    unused = [c for c in table.column_names if c not in m.required() and c != "No"]
    said = [f"{src.name}: column(s) not read: {', '.join(unused)}"] if unused and not m.wide else []
    return _to_canonical(src, table.to_pandas(), m, station), said


def _read_table(src: Source, m: Mapping) -> pa.Table:
    if not src.data.strip():
        raise AqiError(f"{src.name}: file is empty")
    if b"\x00" in src.data[:8192]:
        raise AqiError(f"{src.name}: not a CSV file (binary content)")
    numeric = {c: pa.float64() for c in m.columns.values()}
    text = [c for c in (m.station_column, m.wd_compass, m.time_column) if c]
    opts = pacsv.ConvertOptions(
        column_types=numeric | {c: pa.string() for c in text},
        null_values=list(m.missing),
        strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(pa.BufferReader(src.data), convert_options=opts)
    except pa.ArrowInvalid as e:
        raise AqiError(_locate_bad_number(src, m) or f"{src.name}: cannot parse CSV: {e}") from None
    if table.num_rows == 0:
        raise AqiError(f"{src.name}: file is empty (header only)")
    return table


def _locate_bad_number(src: Source, m: Mapping) -> str | None:
    """Slow path, run only after a failed fast read: name the first unparseable number's row/column."""
    try:
        raw = pd.read_csv(io.BytesIO(src.data), dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - the caller reports the original parse error instead
        return None
    for col in (c for c in m.columns.values() if c in raw.columns):
        vals = raw[col].str.strip()
        bad = pd.to_numeric(vals.where(~vals.isin(m.missing)), errors="coerce").isna() & ~vals.isin(
            m.missing
        )
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            return (
                f"{src.name}: line {i + 2}, column {col}: cannot parse {raw[col].iloc[i]!r} as a number"
            )
    return None


class UnknownLayout(AqiError):
    """A CSV in no layout aqi knows: neither an agency feed nor the UCI layout."""


def _detect(src: Source, table: pa.Table) -> Mapping:
    if not set(UCI.required()) <= set(table.column_names):
        raise UnknownLayout(
            f"{src.name}: not in the UCI Beijing layout (missing "
            f"{', '.join(sorted(set(UCI.required()) - set(table.column_names)))}); "
            "describe it with --mapping FILE.toml"
        )
    return UCI


def _to_canonical(src: Source, raw: pd.DataFrame, m: Mapping, station: str | None) -> pd.DataFrame:
    raw = raw.reset_index(names="_line")
    raw["_line"] += 2  # header is line 1
    if m.wide:
        keep = set(m.required()) | {"_line"}
        raw = raw.melt(id_vars=sorted(keep & set(raw.columns)), var_name="station", value_name=m.wide)
        raw[m.wide] = _wide_numbers(src, raw[m.wide], m)
        cols = {m.wide: m.wide}
    else:
        raw["station"] = raw[m.station_column] if m.station_column else (m.station or station)
        cols = m.columns
    if station and (m.station_column or m.wide):
        raw = raw[raw["station"] == station]
    out = pd.DataFrame({"station": raw["station"].astype(str), "time": _times(src, raw, m)})
    for canon in MEASURES:
        factor, offset = m.units.get(canon, (1.0, 0.0))
        values = raw[cols[canon]].to_numpy(np.float64) * factor + offset if canon in cols else np.nan
        out[canon] = np.asarray(values, np.float32) if canon in cols else np.float32(np.nan)
    if m.wd_compass:
        out["wd_deg"] = raw[m.wd_compass].map(COMPASS).astype(np.float32).to_numpy()
    out["_src"], out["_line"] = src.name, raw["_line"].to_numpy()
    return out.reset_index(drop=True)


def _wide_numbers(src: Source, s: pd.Series, m: Mapping) -> pd.Series:
    vals = s.astype(str).str.strip()
    num = pd.to_numeric(vals.where(~vals.isin(m.missing) & s.notna()), errors="coerce")
    bad = num.isna() & s.notna() & ~vals.isin(m.missing)
    if bad.any():
        raise AqiError(f"{src.name}: cannot parse {s[bad].iloc[0]!r} as a number")
    return num


def _times(src: Source, raw: pd.DataFrame, m: Mapping) -> pd.Series:
    try:
        if m.time_column:
            local = pd.to_datetime(raw[m.time_column], format=m.time_format or "ISO8601")
        else:
            parts = raw[[m.time_parts[p] for p in ("year", "month", "day", "hour")]].set_axis(
                ["year", "month", "day", "hour"], axis=1
            )
            _hours_of_a_day(src, parts["hour"], raw["_line"])
            local = pd.to_datetime(parts)
    except (ValueError, TypeError) as e:
        raise AqiError(f"{src.name}: cannot parse timestamps: {e}") from None
    if local.isna().any():
        line = raw["_line"].to_numpy()[int(np.argmax(local.isna().to_numpy()))]
        raise AqiError(f"{src.name}: line {line}: missing timestamp")
    if local.dt.tz is None:
        local = local.dt.tz_localize(m.timezone, ambiguous="NaT", nonexistent="NaT")
        if local.isna().any():
            line = raw["_line"].to_numpy()[int(np.argmax(local.isna().to_numpy()))]
            raise AqiError(
                f"{src.name}: line {line}: local time ambiguous or skipped by DST "
                f"in {m.timezone}; give UTC offsets in the timestamps"
            )
    return local.dt.tz_convert("UTC").dt.as_unit("us")


def _hours_of_a_day(src: Source, hour: pd.Series, lines: pd.Series) -> None:
    """pandas rolls hour 24 over into the next day (99 into 4 days on), where it would replace a
    real hour: an hour outside 0..23 is a malformed row."""
    h = pd.to_numeric(hour, errors="coerce")
    bad = h.notna() & ~h.between(0, 23)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise AqiError(f"{src.name}: line {lines.iloc[i]}: hour {hour.iloc[i]} is not in 0..23")


def validate(df: pd.DataFrame, name: str, cfg: IngestConfig = IngestConfig()) -> pd.DataFrame:
    """Checks shared by every layout; returns the frame sorted by (station, time), exact duplicates
    dropped. Out-of-bounds values are rejected or set missing per `cfg.invalid`."""
    names = df["station"].fillna("").astype(str)  # an empty field reads as missing
    bad_station = ~names.str.fullmatch(STATION_RE)
    if bad_station.any():
        i = int(np.argmax(bad_station.to_numpy()))
        check_station(names.iloc[i], f"{name}: line {df['_line'].iloc[i]}")
    t = df["time"]
    off_hour = (t.dt.minute != 0) | (t.dt.second != 0) | (t.dt.microsecond != 0)
    if off_hour.any():
        row = df[off_hour].iloc[0]
        raise AqiError(
            f"{name}: line {row['_line']}: timestamp {row['time']} is not on the hour "
            "(hourly data expected)"
        )
    df = _check_bounds(df, name, cfg)
    df = df.sort_values(["station", "time", "_line"], kind="stable")
    return drop_duplicates(df, lambda a, b: f"{name}: lines {a['_line']} and {b['_line']}")


def _check_bounds(df: pd.DataFrame, name: str, cfg: IngestConfig) -> pd.DataFrame:
    for col, (lo, hi) in PHYSICAL_BOUNDS.items():
        v = df[col].to_numpy()
        bad = (v < lo) | (v > hi)  # NaN compares False: missing stays missing
        if not bad.any():
            continue
        if cfg.invalid == "missing":
            df.loc[bad, col] = np.float32(np.nan)
            continue
        i = int(np.argmax(bad))
        what = "negative concentration" if v[i] < 0 and lo == 0 else "value outside physical bounds"
        raise AqiError(
            f"{name}: line {df['_line'].iat[i]}, column {col}: {what} {v[i]:g} "
            f"(allowed {lo:g}..{hi:g}; --invalid missing sets such values missing)"
        )
    return df


def drop_duplicates(df: pd.DataFrame, where) -> pd.DataFrame:
    """Drop exact (station, time) duplicates of a sorted frame; different values for the same hour
    raise AqiError with `where(first_row, second_row)`."""
    dup = df.duplicated(["station", "time"], keep=False)
    if not dup.any():
        return df.reset_index(drop=True)
    d = df[dup]
    same = d.duplicated(["station", "time", *MEASURES], keep=False)  # NaN == NaN in duplicated
    if not same.all():
        clash = d[~same].iloc[0]
        other = d[(d["station"] == clash["station"]) & (d["time"] == clash["time"])]
        a, b = other.iloc[0], other.iloc[1]
        raise AqiError(
            f"{where(a, b)}: station {clash['station']} has two different values for "
            f"{clash['time']:%Y-%m-%d %H:%M} UTC"
        )
    return df.drop_duplicates(["station", "time"], keep="last").reset_index(drop=True)
