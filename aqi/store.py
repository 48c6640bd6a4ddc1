"""The canonical parquet store: `store/station=<id>/data.parquet` (hive-partitioned) + `_manifest.json`.

Writes are atomic (temp file, re-read, `os.replace`), under a lock file so two ingests never interleave.
A kill at any moment leaves every partition either wholly old or wholly new, and the manifest readable.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from aqi.config import MEASURES, AqiError, IngestConfig
from aqi.ingest import collect_sources, drop_duplicates, read_source
from aqi.mapping import UCI, load_mapping

SCHEMA = pa.schema([("time", pa.timestamp("us", tz="UTC"))] + [(c, pa.float32()) for c in MEASURES])
MANIFEST = "_manifest.json"  # leading '_' keeps it out of pyarrow's dataset discovery


def store_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "store"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target, fsync, then rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_manifest(data_dir: Path) -> dict:
    p = store_dir(data_dir) / MANIFEST
    if not p.exists():
        return {"version": 1, "stations": {}}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise AqiError(f"{p}: corrupt manifest: {e}") from None


@contextmanager
def locked(data_dir: Path) -> Iterator[Path]:
    root = store_dir(data_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise AqiError(f"--data-dir {data_dir}: not writable ({e.strerror})") from None
    lock = FileLock(root / ".ingest.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise AqiError(
            f"{root}: another ingest is writing to this store (lock {lock.lock_file}); "
            "wait for it to finish"
        ) from None
    try:
        for stale in root.glob("**/.*.tmp"):  # left by a killed ingest; never visible to readers
            stale.unlink(missing_ok=True)
        yield root
    finally:
        lock.release()


@dataclass(frozen=True)
class IngestReport:
    station: str
    rows: int  # rows in the store after the ingest
    added: int  # hours new to the store
    corrected: int  # hours whose values the new sources changed
    written: bool  # False when the partition was already identical


def ingest(
    paths: list[Path],
    data_dir: Path,
    mapping: Path | None = None,
    station: str | None = None,
    cfg: IngestConfig = IngestConfig(),
) -> list[IngestReport]:
    """Read, validate and upsert `paths` into the store. All inputs are parsed and checked before
    anything is written, so bad input leaves the store untouched."""
    m = load_mapping(mapping, station) if mapping else None
    sources = collect_sources(paths)
    frames = [read_source(s, m, station, cfg) for s in sources]
    new = pd.concat(frames, ignore_index=True).sort_values(["station", "time"], kind="stable")
    if new.empty:
        raise AqiError(f"{paths[0]}: no rows" + (f" for station {station}" if station else ""))
    new = drop_duplicates(
        new, lambda a, b: f"{a['_src']} (line {a['_line']}) and {b['_src']} (line {b['_line']})"
    )
    tz = (m or UCI).timezone
    with locked(data_dir) as root:
        manifest = load_manifest(data_dir)
        reports = [_upsert(root, st, g, manifest, tz, sources) for st, g in new.groupby("station")]
        if any(r.written for r in reports) or not (root / MANIFEST).exists():
            atomic_write_bytes(root / MANIFEST, json.dumps(manifest, indent=2).encode())
    return reports


def _upsert(
    root: Path, station: str, new: pd.DataFrame, manifest: dict, tz: str, sources: list
) -> IngestReport:
    path = root / f"station={station}" / "data.parquet"
    fresh = new[["time", *MEASURES]].reset_index(drop=True)
    merged, added, changed = fresh, len(fresh), 0
    if path.exists():
        old = read_partition(path)
        merged = pd.concat([old[~old["time"].isin(fresh["time"])], fresh]).sort_values("time")
        merged = merged.reset_index(drop=True)
        added, changed = len(merged) - len(old), _changed_rows(old, fresh)
    written = bool(added or changed) or not path.exists()
    if written:
        _write_partition(path, merged)
    manifest["stations"][station] = _manifest_entry(manifest, station, tz, new, sources, merged)
    return IngestReport(station, len(merged), added, changed, written)


def _changed_rows(old: pd.DataFrame, fresh: pd.DataFrame) -> int:
    """Hours present in both whose values differ (NaN equals NaN)."""
    common = old.merge(fresh, on="time", suffixes=("_o", "_n"))
    if common.empty:
        return 0
    o = common[[f"{c}_o" for c in MEASURES]].to_numpy()
    n = common[[f"{c}_n" for c in MEASURES]].to_numpy()
    return int((~((o == n) | (np.isnan(o) & np.isnan(n)))).any(axis=1).sum())


def _manifest_entry(
    manifest: dict, station: str, tz: str, new: pd.DataFrame, sources: list, merged: pd.DataFrame
) -> dict:
    entry = manifest["stations"].get(station, {"display_name": station, "timezone": tz, "sources": []})
    spans = new.groupby("_src")["time"].agg(["min", "max", "size"])
    sha = {s.name: s.sha256 for s in sources}
    kept = [s for s in entry["sources"] if s["name"] not in spans.index]
    kept += [
        {
            "name": name,
            "sha256": sha[name],
            "rows": int(r["size"]),
            "first": r["min"].isoformat(),
            "last": r["max"].isoformat(),
        }
        for name, r in spans.iterrows()
    ]
    entry["sources"] = sorted(kept, key=lambda s: s["name"])
    entry.update(
        first_time=merged["time"].min().isoformat(),
        last_time=merged["time"].max().isoformat(),
        rows=len(merged),
    )
    return entry


def _write_partition(path: Path, df: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    if pq.read_table(pa.BufferReader(data)).num_rows != len(df):  # re-read before it goes live
        raise AqiError(f"{path}: written partition failed to read back")
    atomic_write_bytes(path, data)


def read_partition(path: Path) -> pd.DataFrame:
    return pq.read_table(path, schema=SCHEMA).to_pandas()


def stations(data_dir: Path) -> list[str]:
    return sorted(load_manifest(data_dir)["stations"])


def read_station(data_dir: Path, station: str) -> pd.DataFrame:
    """One station's rows: `time` (UTC) and the measures, sorted by time."""
    path = store_dir(data_dir) / f"station={station}" / "data.parquet"
    if not path.exists():
        known = ", ".join(stations(data_dir)) or "none; run `aqi ingest` first"
        raise AqiError(f"unknown station {station!r} in {store_dir(data_dir)} (known: {known})")
    return read_partition(path)


def station_timezone(data_dir: Path, station: str) -> str:
    return load_manifest(data_dir)["stations"].get(station, {}).get("timezone", "UTC")


def summary(data_dir: Path) -> list[dict]:
    """Per station: first/last local time, rows, missing % of PM2.5 and of all measures over the
    complete hourly grid between first and last hour."""
    out = []
    for st, meta in sorted(load_manifest(data_dir)["stations"].items()):
        df = read_station(data_dir, st)
        hours = int((df["time"].max() - df["time"].min()) / pd.Timedelta(hours=1)) + 1
        present = df[list(MEASURES)].notna().sum()
        out.append(
            {
                "station": st,
                "timezone": meta["timezone"],
                "rows": len(df),
                "first": df["time"].min().tz_convert(meta["timezone"]).isoformat(),
                "last": df["time"].max().tz_convert(meta["timezone"]).isoformat(),
                "missing_pm25_pct": round(100 * (1 - present["pm25"] / hours), 2),
                "missing_all_pct": round(100 * (1 - present.sum() / (hours * len(MEASURES))), 2),
            }
        )
    return out
