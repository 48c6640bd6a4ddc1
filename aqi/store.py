"""The canonical parquet store: `store/station=<id>/data.parquet` (hive-partitioned) + `_manifest.json`.

This module only reads and writes the store; `ingest.py` decides what to write. Writes are atomic
(temp file, re-read, `os.replace`) under a lock file, so two writers never interleave and a kill at
any moment leaves every partition either wholly old or wholly new, and the manifest readable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from aqi.config import MEASURES, AqiError
from aqi.datadir import (
    STATION_RE,
    atomic_write_bytes,
    exclusive,
    manifest_path,
    partition_path,
    store_dir,
)
from aqi.deltas import EMPTY, apply, delta_entries, delta_files, mark, read_deltas, remove_deltas
from aqi.deltas import ROWS as SCHEMA  # a partition: one station's rows, `time` + MEASURES

ENTRY_KEY = b"aqi.manifest_entry"  # partition metadata: its station's manifest entry, to rebuild from


def load_manifest(data_dir: Path) -> dict:
    """The manifest, repaired from the partitions and delta files where they disagree: a station
    whose partition or delta file is newer than the manifest (a writer killed between the two) or
    missing from it (or a corrupt manifest) gets the entry that file carries; a station with neither
    a partition nor delta rows is dropped."""
    p = manifest_path(data_dir)
    doc = _read_manifest(p)
    stamp = p.stat().st_mtime_ns if doc else -1
    entries = dict(doc["stations"]) if doc else {}
    parts = {
        d.name.removeprefix("station="): d / "data.parquet"
        for d in store_dir(data_dir).glob("station=*")
        if (d / "data.parquet").is_file() and STATION_RE.fullmatch(d.name.removeprefix("station="))
    }
    for st, f in parts.items():  # >=: a kill within the manifest write's clock tick
        if st not in entries or f.stat().st_mtime_ns >= stamp:
            entries[st] = partition_entry(f) or entries.get(st) or _bare_entry(st)
    for f in delta_files(data_dir):
        if (mark(f) or ("", -1))[1] >= stamp:  # a delta a compaction just removed: nothing to add
            entries |= delta_entries(f)
    known = set(parts) | read_deltas(data_dir).stations
    return {"version": 1, "stations": {st: entries.get(st) or _bare_entry(st) for st in sorted(known)}}


def _read_manifest(p: Path) -> dict | None:
    """The manifest as written, or None when it is absent or not a manifest (corrupt, `{}`)."""
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError):  # absent, unreadable, not JSON or not UTF-8
        return None
    ok = isinstance(doc, dict) and isinstance(doc.get("stations"), dict)
    return doc if ok and all(isinstance(e, dict) for e in doc["stations"].values()) else None


def _bare_entry(station: str) -> dict:
    return {"display_name": station, "timezone": "UTC", "sources": []}


def partition_entry(path: Path) -> dict | None:
    """The manifest entry a partition was written with (schema metadata), None if unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
        entry = json.loads(meta[ENTRY_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return entry if isinstance(entry, dict) and "timezone" in entry else None


def write_manifest(data_dir: Path, manifest: dict) -> None:
    atomic_write_bytes(manifest_path(data_dir), json.dumps(manifest, indent=2).encode())


@contextmanager
def locked(data_dir: Path) -> Iterator[Path]:
    """Hold the store's write lock (fails at once if another writer has it); yields the store folder."""
    root = store_dir(data_dir)
    with exclusive(root, ".ingest.lock", f"{root}: another ingest is writing to this store"):
        for stale in root.glob("**/.*.tmp"):  # left by a killed writer; never visible to readers
            stale.unlink(missing_ok=True)
        yield root


# rows (hours) per parquet row group, a year: a forecast's read of the last days decodes one or two
# groups, not a station's whole history (1,000 four-year stations: 1.5 vs 2.9 ms a file; full
# reads +30 %)
ROW_GROUP = 24 * 366


def write_partition(data_dir: Path, station: str, df: pd.DataFrame, entry: dict | None = None) -> None:
    """Replace one station's partition with `df` (`time` + MEASURES) and its manifest `entry`
    (kept in the file's metadata), re-read before it goes live."""
    path = partition_path(data_dir, station)
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    if entry is not None:
        table = table.replace_schema_metadata(
            table.schema.metadata | {ENTRY_KEY: json.dumps(entry).encode()}
        )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP)
    data = sink.getvalue().to_pybytes()
    if pq.read_table(pa.BufferReader(data)).num_rows != len(df):
        raise AqiError(f"{path}: written partition failed to read back")
    atomic_write_bytes(path, data)


def has_station(data_dir: Path, station: str) -> bool:
    return partition_path(data_dir, station).exists() or station in read_deltas(data_dir).where


def read_partition(path: Path, since: pd.Timestamp | None = None, columns=None) -> pd.DataFrame:
    """A partition's rows (`columns` only, when given), only those at or after `since` (UTC) when
    given; AqiError naming the file and the repair when it cannot be read."""
    filters = [("time", ">=", since.to_pydatetime())] if since is not None else None
    try:
        return pq.read_table(path, columns=columns, schema=SCHEMA, filters=filters).to_pandas()
    except (OSError, pa.ArrowException) as e:
        station = path.parent.name.removeprefix("station=")
        raise AqiError(
            f"{path}: corrupt partition ({str(e).splitlines()[0][:80]}); re-ingest station "
            f"{station}'s raw files (`aqi ingest FILE`) to rebuild it"
        ) from None


def stations(data_dir: Path) -> list[str]:
    return sorted(load_manifest(data_dir)["stations"])


def read_station(data_dir: Path, station: str, since=None, columns=None) -> pd.DataFrame:
    """One station's rows: `time` (UTC) and the measures (`columns` only, when given), sorted by
    time (from `since`, UTC): its partition with its delta rows applied. The deltas are read
    first: a compaction between the two reads leaves a partition they were folded into, over
    which applying them again changes nothing."""
    path, delta = partition_path(data_dir, station), read_deltas(data_dir).rows(station)
    if not path.exists() and delta is None:
        known = ", ".join(stations(data_dir)) or "none; run `aqi ingest` first"
        raise AqiError(f"unknown station {station!r} in {store_dir(data_dir)} (known: {known})")
    base = read_partition(path, since, columns) if path.exists() else None  # `columns` only:
    df = _with_deltas(base, delta, since, columns)
    # no selection when it is one already (under copy-on-write a selection shares its parent's blocks)
    return df if columns is None or list(df.columns) == list(columns) else df[list(columns)]


def _with_deltas(base, delta: pd.DataFrame | None, since, columns=None) -> pd.DataFrame:
    """`base` (the partition's rows from `since`; None: no partition) with `delta` applied."""
    if delta is not None and since is not None:
        delta = delta[delta["time"] >= since]
    if delta is not None and columns is not None:
        delta = delta[list(columns)]
    return apply(base, delta)


def read_stations(data_dir: Path, names: list[str], since=None, columns=None) -> tuple[dict, dict]:
    """({station: its rows, as `read_station`}, {station: AqiError}) for many stations, their
    partitions read in one multi-threaded pass (a forecast of 1,000 stations: 1,000 files), the
    `columns` only when given (with `time`). A corrupt partition fails only its own station."""
    paths = {st: partition_path(data_dir, st) for st in names}
    deltas = read_deltas(data_dir)  # before the partitions (see `read_station`)
    files = [str(p) for p in paths.values() if p.exists()]
    cols = list(columns) if columns is not None else SCHEMA.names
    try:
        table = ds.Scanner.from_dataset(
            ds.dataset(files, schema=SCHEMA, format="parquet"),
            columns=[*cols, "__filename"],  # the file each row came from
            filter=(ds.field("time") >= since.to_pydatetime()) if since is not None else None,
        ).to_table()
    except (OSError, pa.ArrowException):  # a corrupt partition: each station on its own
        return _one_by_one(data_dir, names, since, columns)
    rows = _split(table)
    frames, bad = {}, {}
    for st, p in paths.items():
        if not p.exists() and deltas.rows(st) is None:
            bad[st] = AqiError(f"unknown station {st!r} in {store_dir(data_dir)}")
            continue
        base = rows[str(p)] if str(p) in rows else EMPTY[cols].copy() if p.exists() else None
        frames[st] = _with_deltas(base, deltas.rows(st), since, columns)
    return frames, bad


def _split(table: pa.Table) -> dict[str, pd.DataFrame]:
    """{file: its rows} of a scan with `__filename`: one conversion to pandas, then positional
    slices (a groupby of 1,000 stations costs ~2 ms each, 1,000 conversions ~0.6 ms each)."""
    table = table.sort_by([("__filename", "ascending"), ("time", "ascending")])
    names = table.column("__filename").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if len(names) else []
    ends = np.r_[starts[1:], len(names)] if len(names) else []
    body = table.drop_columns(["__filename"]).to_pandas()
    return {names[a]: body.iloc[a:b].reset_index(drop=True) for a, b in zip(starts, ends, strict=True)}


def _one_by_one(data_dir: Path, names: list[str], since, columns=None) -> tuple[dict, dict]:
    frames, bad = {}, {}
    for st in names:
        try:
            frames[st] = read_station(data_dir, st, since, columns)
        except AqiError as e:
            bad[st] = e
    return frames, bad


def fingerprint(data_dir: Path, station: str) -> str:
    """A digest of everything a station's rows are read from: its partition and the delta layer."""
    h = hashlib.sha256()
    path = partition_path(data_dir, station)
    h.update(path.read_bytes() if path.exists() else b"")
    h.update(repr([mark(f) for f in delta_files(data_dir)]).encode())
    return h.hexdigest()


def stamp(data_dir: Path, names: list[str]) -> tuple:
    """Cheap change marks of what the stations' rows are read from, for caches."""
    paths = [partition_path(data_dir, st) for st in names] + delta_files(data_dir)
    return tuple(mark(p) for p in paths)


def compact(data_dir: Path, manifest: dict) -> tuple[int, list[str]]:
    """Fold the delta layer into the partitions (under the store's lock), remove it, and write
    `manifest` (as repaired by `load_manifest`); (partitions rewritten, notes). A kill part-way
    leaves the deltas in place, and applying them again over a folded partition changes nothing."""
    files = delta_files(data_dir)
    if not files:
        return 0, []
    deltas, notes = read_deltas(data_dir), []
    for st in sorted(deltas.stations):
        try:
            rows = read_station(data_dir, st)
        except AqiError:  # a corrupt partition: its delta rows are all that can be read of it
            rows = apply(None, deltas.rows(st))
            notes.append(
                f"station {st}: corrupt partition replaced by its hourly rows; re-ingest "
                "its raw files to restore the older hours"
            )
        write_partition(data_dir, st, rows, manifest["stations"][st])
    remove_deltas(data_dir, files)
    write_manifest(data_dir, manifest)
    return len(deltas.stations), notes


def station_timezone(data_dir: Path, station: str) -> str:
    return load_manifest(data_dir)["stations"].get(station, {}).get("timezone", "UTC")


def summary(data_dir: Path) -> list[dict]:
    """Per station: name, latitude, longitude, source (None where the source has none), first/last
    local time, rows, missing % of PM2.5 and of all measures over the complete hourly grid between
    first and last hour; a corrupt partition's row has `error`."""
    out = []
    for st, meta in sorted(load_manifest(data_dir)["stations"].items()):
        info = {k: meta.get(k) for k in ("name", "latitude", "longitude", "source")}
        try:
            out.append(_summary_row(read_station(data_dir, st), st, meta["timezone"]) | info)
        except AqiError as e:
            out.append({"station": st, "timezone": meta["timezone"], "error": str(e)} | info)
    return out


def _summary_row(df: pd.DataFrame, st: str, tz: str) -> dict:
    hours = int((df["time"].max() - df["time"].min()) / pd.Timedelta(hours=1)) + 1
    present = df[list(MEASURES)].notna().sum()
    return {
        "station": st,
        "timezone": tz,
        "rows": len(df),
        "first": df["time"].min().tz_convert(tz).isoformat(),
        "last": df["time"].max().tz_convert(tz).isoformat(),
        "missing_pm25_pct": round(100 * (1 - present["pm25"] / hours), 2),
        "missing_all_pct": round(100 * (1 - present.sum() / (hours * len(MEASURES))), 2),
    }
