"""The store's append-only hourly layer: `store/_delta/<seq>.parquet`, one file per small ingest.

An hourly feed (one AirNow file an hour, ~2,000 sites) brings one new hour to every station.
Rewriting every station's partition for it costs ~12 ms a station; appending the hour's rows as one
file costs one write. Readers see a station as its partition with the delta files' rows applied in
sequence order, a present value winning over an earlier one and a missing value never erasing one
(the upsert rule of `ingest.merge`). Compaction (`aqi compact`) folds them into the partitions.

Applying the deltas again over a partition they were already folded into changes nothing, so a
compaction killed before it removed them leaves the store as it was. Each delta file carries, in
its metadata, the manifest entries of its stations after the ingest that wrote it, so a manifest
left behind by a killed writer is rolled forward from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aqi.config import MEASURES, AqiError
from aqi.datadir import atomic_write_bytes, store_dir

DELTA_DIR = "_delta"  # leading '_' keeps it out of pyarrow's dataset discovery
ENTRIES_KEY = b"aqi.manifest_entries"  # delta metadata: {station: manifest entry} after its ingest
ROWS = pa.schema([("time", pa.timestamp("us", tz="UTC"))] + [(c, pa.float32()) for c in MEASURES])
SCHEMA = ROWS.insert(0, pa.field("station", pa.string()))  # a delta file: rows of many stations


EMPTY = ROWS.empty_table().to_pandas()  # a station's rows (time, MEASURES): none


def delta_dir(data_dir: Path) -> Path:
    return store_dir(data_dir) / DELTA_DIR


def delta_files(data_dir: Path) -> list[Path]:
    """The delta files, oldest first (the names are zero-padded sequence numbers)."""
    d = delta_dir(data_dir)
    return sorted(d.glob("[0-9]*.parquet")) if d.is_dir() else []


def write_delta(data_dir: Path, rows: pd.DataFrame, entries: dict[str, dict]) -> Path:
    """Append `rows` (station, time, MEASURES) as the next delta file, with `entries`."""
    files = delta_files(data_dir)
    seq = int(files[-1].stem) + 1 if files else 1
    path = delta_dir(data_dir) / f"{seq:08d}.parquet"
    table = pa.Table.from_pandas(rows, schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata({ENTRIES_KEY: json.dumps(entries).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def delta_entries(path: Path) -> dict[str, dict]:
    """The manifest entries a delta file was written with; {} if unreadable."""
    try:
        entries = json.loads((pq.read_schema(path).metadata or {})[ENTRIES_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return {}
    return entries if isinstance(entries, dict) else {}


@dataclass(frozen=True)
class Deltas:
    """Every delta row, in sequence order, and where each station's rows are."""

    frame: pd.DataFrame  # (station, time, MEASURES), oldest file first
    where: dict[str, np.ndarray]  # station -> positions of its rows in `frame`, in order

    @property
    def stations(self) -> set[str]:
        return set(self.where)

    def rows(self, station: str) -> pd.DataFrame | None:
        """The station's delta rows (time, MEASURES), None when it has none."""
        at = self.where.get(station)
        return None if at is None else self.frame.iloc[at].drop(columns="station")


def read_deltas(data_dir: Path) -> Deltas:
    """The delta layer, read once while its files are unchanged (a run over 1,000 stations
    reads it once, not 1,000 times). A file a concurrent compaction removes is listed again: it
    was folded into the partitions before it went."""
    for _ in range(5):
        files = delta_files(data_dir)
        key = (str(Path(data_dir).resolve()), tuple(mark(f) for f in files))
        if None in key[1]:
            continue
        try:
            if _CACHE.get("key") != key:
                _CACHE.update(key=key, deltas=_read(files))
            return _CACHE["deltas"]
        except FileNotFoundError:
            continue
    raise AqiError(f"{delta_dir(data_dir)}: changing while read (a compaction?); rerun")


def mark(path: Path) -> tuple | None:
    """A file's change mark (name, mtime, ctime, size, inode), None when it is gone (absent, or a
    delta a compaction just removed): for caches keyed on what rows are read from."""
    try:
        x = path.stat()
    except FileNotFoundError:
        return None
    return (path.name, x.st_mtime_ns, x.st_ctime_ns, x.st_size, x.st_ino)


_CACHE: dict = {}


def _read(files: list[Path]) -> Deltas:
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, schema=SCHEMA))
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as e:
            raise AqiError(
                f"{f}: corrupt delta file ({str(e).splitlines()[0][:80]}); remove it and re-ingest "
                "the hourly files it held (then `aqi stations` shows each station's last hour)"
            ) from None
    df = pa.concat_tables(tables).to_pandas() if tables else SCHEMA.empty_table().to_pandas()
    return Deltas(df, df.groupby("station", sort=False).indices if len(df) else {})


def apply(base: pd.DataFrame | None, delta: pd.DataFrame | None) -> pd.DataFrame:
    """`base` (time, MEASURES; sorted) with `delta`'s rows applied in order: per hour and measure
    the last present value wins; a missing value never erases one."""
    if delta is None or not len(delta):
        return base if base is not None else EMPTY.copy()
    parts = [delta] if base is None else [base, delta]
    df = pd.concat(parts, ignore_index=True)
    if not df["time"].duplicated().any():
        return df.sort_values("time", kind="stable").reset_index(drop=True)
    cols = [c for c in df.columns if c != "time"]  # MEASURES, or those a reader asked for
    out = df.groupby("time", sort=True)[cols].last()  # last() skips NaN
    return out.reset_index().astype(dict.fromkeys(cols, np.float32))


def remove_deltas(data_dir: Path, files: list[Path]) -> None:
    for f in files:
        f.unlink(missing_ok=True)
