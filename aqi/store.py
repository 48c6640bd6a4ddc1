"""The canonical parquet store: `store/station=<id>/data.parquet` (hive-partitioned) + `_manifest.json`.

This module only reads and writes the store; `ingest.py` decides what to write. Writes are atomic
(temp file, re-read, `os.replace`) under a lock file, so two writers never interleave and a kill at
any moment leaves every partition either wholly old or wholly new, and the manifest readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aqi.config import MEASURES, AqiError
from aqi.datadir import atomic_write_bytes, exclusive, manifest_path, partition_path, store_dir

SCHEMA = pa.schema([("time", pa.timestamp("us", tz="UTC"))] + [(c, pa.float32()) for c in MEASURES])


def load_manifest(data_dir: Path) -> dict:
    p = manifest_path(data_dir)
    if not p.exists():
        return {"version": 1, "stations": {}}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise AqiError(f"{p}: corrupt manifest: {e}") from None


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


def write_partition(data_dir: Path, station: str, df: pd.DataFrame) -> None:
    """Replace one station's partition with `df` (`time` + MEASURES), re-read before it goes live."""
    path = partition_path(data_dir, station)
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    if pq.read_table(pa.BufferReader(data)).num_rows != len(df):
        raise AqiError(f"{path}: written partition failed to read back")
    atomic_write_bytes(path, data)


def has_station(data_dir: Path, station: str) -> bool:
    return partition_path(data_dir, station).exists()


def read_partition(path: Path, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """A partition's rows, only those at or after `since` (UTC) when given."""
    filters = [("time", ">=", since.to_pydatetime())] if since is not None else None
    return pq.read_table(path, schema=SCHEMA, filters=filters).to_pandas()


def stations(data_dir: Path) -> list[str]:
    return sorted(load_manifest(data_dir)["stations"])


def read_station(data_dir: Path, station: str, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """One station's rows: `time` (UTC) and the measures, sorted by time (from `since`, UTC)."""
    path = partition_path(data_dir, station)
    if not path.exists():
        known = ", ".join(stations(data_dir)) or "none; run `aqi ingest` first"
        raise AqiError(f"unknown station {station!r} in {store_dir(data_dir)} (known: {known})")
    return read_partition(path, since)


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
