"""`aqi ingest`: raw files → validated frames (readers.py) → upserted into the store (store.py).

Every input is parsed and checked before anything is written, so bad input leaves the store
untouched. Re-ingesting the same files rewrites nothing; newer files extend a station or correct its
hours (the corrections are counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aqi.config import AqiError, IngestConfig
from aqi.datadir import check_station, manifest_path, partition_path, store_dir
from aqi.deltas import delta_files, read_deltas, write_delta
from aqi.mapping import load_mapping
from aqi.readers import UnknownLayout, drop_duplicates, read_source
from aqi.sources import Source, collect_sources
from aqi.store import (
    compact,
    has_station,
    load_manifest,
    locked,
    read_station,
    write_manifest,
    write_partition,
)
from aqi.upsert import (
    CORRUPT,
    HourlyPlan,
    differs,
    hourly_plan,
    manifest_entry,
    merge,
    source_spans,
)


@dataclass(frozen=True)
class IngestReport:
    station: str
    rows: int  # rows in the store after the ingest
    added: int  # hours new to the store
    corrected: int  # stored hours where a present value was replaced by another present value
    filled: int  # stored hours where a missing value was filled (and none corrected)
    written: bool  # False when the partition was already identical
    repaired: bool = False  # the stored partition was corrupt and was rebuilt from these files

    @property
    def note(self) -> str:
        return (", unchanged" if not self.written else "") + (
            ", corrupt partition rebuilt from these files" if self.repaired else ""
        )


def ingest(
    paths: list[Path],
    data_dir: Path,
    mapping: Path | None = None,
    station: str | None = None,
    cfg: IngestConfig = IngestConfig(),
    replace: bool = False,
    notes: list[str] | None = None,
) -> list[IngestReport]:
    """Read, validate and upsert `paths` into the store (see `merge` for the rule); what the
    readers did to values (sentinels, negatives, units) is appended to `notes`."""
    if station is not None:
        check_station(station)
    m = load_mapping(mapping, station) if mapping else None
    new, meta, said = _read_all(collect_sources(paths, cfg), m, station, cfg, paths[0])
    notes = [] if notes is None else notes
    notes += said
    with locked(data_dir):
        manifest = load_manifest(data_dir)  # repaired from the partitions if a writer was killed
        on_disk = manifest_path(data_dir).read_bytes() if manifest_path(data_dir).exists() else b""
        spans, plan = source_spans(new), _hourly(new, data_dir, manifest, cfg, replace)
        if plan is not None:
            reports = _append(data_dir, plan, spans, manifest, meta)
        else:
            plans = [(st, _plan(data_dir, st, g, replace, cfg)) for st, g in new.groupby("station")]
            folded, said = compact(data_dir, manifest)  # partitions are rewritten only without deltas
            on_disk = manifest_path(data_dir).read_bytes() if folded else on_disk
            notes += said
            reports = [_upsert(data_dir, st, p, spans[st], manifest, meta[st]) for st, p in plans]
        text = json.dumps(manifest, indent=2).encode()
        if text != on_disk:
            write_manifest(data_dir, manifest)
    return reports


def _hourly(new, data_dir: Path, manifest: dict, cfg: IngestConfig, replace: bool):
    """The ingest as one delta file (an hourly feed's few new hours), or None (rewrite partitions)."""
    if replace or len(delta_files(data_dir)) >= cfg.max_deltas:
        return None
    entries = manifest["stations"]
    unknown = [st for st in new["station"].unique() if "last_time" not in entries.get(st, {})]
    if any(partition_path(data_dir, st).exists() for st in unknown):  # a partition without its span
        return None
    return hourly_plan(new, entries, read_deltas(data_dir), cfg)


def _append(data_dir: Path, plan: HourlyPlan, spans: dict, manifest: dict, meta: dict):
    """Write `plan`'s rows as the next delta file (with the entries, for a roll-forward)."""
    reports, entries, changed = [], {}, set(plan.rows["station"])
    for st, (added, corrected, filled, span) in plan.counts.items():
        entries[st] = manifest_entry(manifest["stations"].get(st), st, meta[st], spans[st], span)
        reports.append(IngestReport(st, span[2], added, corrected, filled, st in changed))
    if changed:
        write_delta(data_dir, plan.rows, entries)
    manifest["stations"].update(entries)
    return reports


def _read_all(sources: list[Source], m, station, cfg: IngestConfig, first: Path):
    """(every source's rows, checked for clashes; {station: metadata, the last source's}; notes)."""
    frames, meta, notes = [], {}, []
    for s in sources:
        try:
            df, info, said = read_source(s, m, station, cfg)
        except UnknownLayout:
            if not s.listed or len(sources) == 1:
                raise
            notes.append(f"{s.name}: skipped, not a data file in a layout aqi knows")
            continue
        frames.append(df)
        for st, v in info.items():  # the last file's metadata wins; every name is kept
            names = meta.get(st, {}).get("names", set()) | ({v["name"]} if v.get("name") else set())
            meta[st] = {**meta.get(st, {}), **v, "names": names}
        notes += said
    new = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if new.empty:
        raise AqiError(f"{first}: no rows" + (f" for station {station}" if station else ""))
    new = new.sort_values(["station", "time"], kind="stable")
    new = drop_duplicates(
        new, lambda a, b: f"{a['_src']} (line {a['_line']}) and {b['_src']} (line {b['_line']})"
    )
    new["_sha"] = new["_src"].map({s.name: s.sha256 for s in sources})
    return new, meta, notes


def _existing(data_dir: Path, station: str) -> pd.DataFrame | None:
    """The station's stored rows; None when it has none, `CORRUPT` when its partition is unreadable
    (the new files rebuild it)."""
    if not has_station(data_dir, station):
        return None
    try:
        return read_station(data_dir, station)
    except AqiError:
        return CORRUPT


def _plan(data_dir, station, new, replace, cfg) -> tuple:
    """(stored rows, merged rows, added, corrected, filled): `merge` of `new` into the station,
    made for every station before anything is written, so one refused file writes nothing."""
    old = _existing(data_dir, station)
    return old, *merge(old, new, replace, cfg, station)


def _upsert(data_dir, station, plan, spans, manifest, info) -> IngestReport:
    """Rewrite the station's partition with the merged rows of `plan` if they changed it."""
    old, merged, added, corrected, filled = plan
    repaired = old is CORRUPT
    written = old is None or repaired or differs(old, merged)
    span = (merged["time"].min(), merged["time"].max(), len(merged))
    entry = manifest_entry(manifest["stations"].get(station), station, info, spans, span)
    manifest["stations"][station] = entry
    if written:
        write_partition(data_dir, station, merged, entry)
    return IngestReport(station, len(merged), added, corrected, filled, written, repaired)


def compact_store(data_dir: Path) -> tuple[int, list[str]]:
    """`aqi compact`: fold the hourly delta layer into the partitions; (stations folded, notes)."""
    if not store_dir(data_dir).is_dir():
        raise AqiError(f"no store in {Path(data_dir)}; run `aqi ingest PATH` first (or --data-dir)")
    with locked(data_dir):
        return compact(data_dir, load_manifest(data_dir))
