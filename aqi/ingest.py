"""`aqi ingest`: raw files → validated frames (readers.py) → upserted into the store (store.py).

Every input is parsed and checked before anything is written, so bad input leaves the store
untouched. Re-ingesting the same files rewrites nothing; newer files extend a station or correct its
hours (the corrections are counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import MEASURES, AqiError, IngestConfig
from aqi.datadir import manifest_path
from aqi.mapping import UCI, load_mapping
from aqi.readers import Source, collect_sources, drop_duplicates, read_source
from aqi.store import (
    has_station,
    load_manifest,
    locked,
    read_station,
    write_manifest,
    write_partition,
)


@dataclass(frozen=True)
class IngestReport:
    station: str
    rows: int  # rows in the store after the ingest
    added: int  # hours new to the store
    corrected: int  # hours whose values the new sources changed
    written: bool  # False when the partition was already identical

    @property
    def note(self) -> str:
        return "" if self.written else ", unchanged"


def ingest(
    paths: list[Path],
    data_dir: Path,
    mapping: Path | None = None,
    station: str | None = None,
    cfg: IngestConfig = IngestConfig(),
) -> list[IngestReport]:
    """Read, validate and upsert `paths` into the store."""
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
    with locked(data_dir):
        manifest = load_manifest(data_dir)
        reports = [_upsert(data_dir, st, g, manifest, tz, sources) for st, g in new.groupby("station")]
        if any(r.written for r in reports) or not manifest_path(data_dir).exists():
            write_manifest(data_dir, manifest)
    return reports


def _upsert(
    data_dir: Path, station: str, new: pd.DataFrame, manifest: dict, tz: str, sources: list[Source]
) -> IngestReport:
    fresh = new[["time", *MEASURES]].reset_index(drop=True)
    merged, added, changed = fresh, len(fresh), 0
    existed = has_station(data_dir, station)
    if existed:
        old = read_station(data_dir, station)
        merged = pd.concat([old[~old["time"].isin(fresh["time"])], fresh]).sort_values("time")
        merged = merged.reset_index(drop=True)
        added, changed = len(merged) - len(old), _changed_rows(old, fresh)
    written = bool(added or changed) or not existed
    if written:
        write_partition(data_dir, station, merged)
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
