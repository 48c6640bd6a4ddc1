"""Raw hourly CSV (files, folders, zip archives) → validated canonical frames. Writes nothing.

A canonical frame has `station` (str), `time` (UTC), the float32 columns of `config.MEASURES`, and
`_src`/`_line` (source name, 1-based line in it) so that later checks can name the offending row.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from aqi.config import MEASURES, PHYSICAL_BOUNDS, AqiError, IngestConfig
from aqi.datadir import STATION_RE, check_station
from aqi.mapping import UCI, Mapping

# 16-point compass → degrees; calm ('C', 'CV') has no direction and stays missing.
_POINTS = "N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split()
COMPASS = {d: i * 22.5 for i, d in enumerate(_POINTS)}


@dataclass(frozen=True)
class Source:
    name: str  # shown in messages: a path, or 'archive.zip!member.csv'
    data: bytes
    sha256: str


def collect_sources(paths: list[Path], cfg: IngestConfig = IngestConfig()) -> list[Source]:
    """Every CSV named by `paths`: files, folders (non-recursive, sorted) and zips (nested zips
    too), each checked against `cfg`'s size limits before it is read or inflated."""
    out: list[Source] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".csv", ".zip"))
            if not files:
                raise AqiError(f"{p}: folder holds no .csv or .zip file")
            out += collect_sources(files, cfg)
        elif not p.exists():
            raise AqiError(f"{p}: file not found")
        elif not p.is_file():  # a FIFO or a device would block or never end
            raise AqiError(f"{p}: not a regular file; give a CSV file, a folder or a zip archive")
        else:
            _check_size(str(p), p.stat().st_size, cfg)
            out += _expand(str(p), _read(p), cfg)
    return out


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise AqiError(f"{p}: cannot read ({e.strerror})") from None


def _check_size(name: str, size: int, cfg: IngestConfig) -> None:
    if size > cfg.max_bytes:
        raise AqiError(
            f"{name}: {size / 2**20:.0f} MiB (after decompression), over the limit of "
            f"{cfg.max_bytes / 2**20:.0f} MiB for one source; split the file"
        )


def _check_lines(name: str, data: bytes, cfg: IngestConfig) -> None:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    longest = int(np.diff(ends, prepend=-1, append=len(data)).max(initial=0)) - 1
    if longest > cfg.max_line:
        raise AqiError(
            f"{name}: a line of {longest} bytes (limit {cfg.max_line}); not an hourly CSV "
            "(one record per line)"
        )


def _expand(name: str, data: bytes, cfg: IngestConfig, depth: int = 0) -> list[Source]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        _check_lines(name, data, cfg)
        return [Source(name, data, hashlib.sha256(data).hexdigest())]
    if depth >= 2:
        raise AqiError(f"{name}: zip nested deeper than 2 archives; unpack it first")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = sorted((m for m in z.infolist() if _wanted(m.filename)), key=lambda m: m.filename)
            for m in members:  # sizes the archive declares; zipfile never inflates past them
                _check_size(f"{name}!{m.filename}", m.file_size, cfg)
                if m.file_size > cfg.max_ratio * max(m.compress_size, 1 << 10):
                    raise AqiError(
                        f"{name}!{m.filename}: inflates {m.file_size // max(m.compress_size, 1)}x "
                        f"(limit {cfg.max_ratio}x): not a CSV archive (a zip bomb?)"
                    )
            found = [
                s for m in members for s in _expand(f"{name}!{m.filename}", z.read(m), cfg, depth + 1)
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise AqiError(f"{name}: corrupt zip archive ({e}); fetch it again") from None
    if not found:
        raise AqiError(f"{name}: zip archive holds no CSV file")
    return found


def _wanted(member: str) -> bool:
    return member.lower().endswith((".csv", ".zip")) and not member.startswith("__MACOSX")


def read_source(
    src: Source,
    mapping: Mapping | None,
    station: str | None = None,
    cfg: IngestConfig = IngestConfig(),
) -> pd.DataFrame:
    """One source → canonical frame, validated. `mapping` None means the built-in UCI layout."""
    table = _read_table(src, mapping or UCI)
    m = mapping or _detect(src, table)
    missing = [c for c in m.required() if c not in table.column_names]
    if missing:
        raise AqiError(f"{src.name}: missing required column(s) {', '.join(missing)}")
    df = _to_canonical(src, table.to_pandas(), m, station)
    return validate(df, src.name, cfg)


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


def _detect(src: Source, table: pa.Table) -> Mapping:
    if not set(UCI.required()) <= set(table.column_names):
        raise AqiError(
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
            local = pd.to_datetime(
                raw[[m.time_parts[p] for p in ("year", "month", "day", "hour")]].set_axis(
                    ["year", "month", "day", "hour"], axis=1
                )
            )
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


def validate(df: pd.DataFrame, name: str, cfg: IngestConfig = IngestConfig()) -> pd.DataFrame:
    """Checks shared by every layout; returns the frame sorted by (station, time), exact duplicates
    dropped. Out-of-bounds values are rejected or set missing per `cfg.invalid`."""
    bad_station = ~df["station"].str.fullmatch(STATION_RE)
    if bad_station.any():
        row = df[bad_station].iloc[0]
        check_station(row["station"], f"{name}: line {row['_line']}")
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
