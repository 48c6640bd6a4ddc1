"""`aqi ingest`: raw files → validated frames (readers.py) → upserted into the store (store.py).

Every input is parsed and checked before anything is written, so bad input leaves the store
untouched. Re-ingesting the same files rewrites nothing; newer files extend a station or correct its
hours (the corrections are counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import MEASURES, AqiError, IngestConfig
from aqi.datadir import check_station, manifest_path
from aqi.mapping import load_mapping
from aqi.readers import UnknownLayout, drop_duplicates, read_source
from aqi.sources import Source, collect_sources
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
    if notes is not None:
        notes += said
    with locked(data_dir):
        manifest = load_manifest(data_dir)  # repaired from the partitions if a writer was killed
        on_disk = manifest_path(data_dir).read_bytes() if manifest_path(data_dir).exists() else b""
        groups = [(st, g, _existing(data_dir, st)) for st, g in new.groupby("station")]
        plans = [(st, g, old, merge(old, g, replace, cfg, st)) for st, g, old in groups]
        spans = source_spans(new)
        reports = [
            _write(data_dir, st, spans.loc[st], old, plan, manifest, meta[st])
            for st, _, old, plan in plans
        ]
        text = json.dumps(manifest, indent=2).encode()
        if text != on_disk:
            write_manifest(data_dir, manifest)
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


CORRUPT = pd.DataFrame()  # sentinel of `_existing`: a partition that cannot be read


def merge(old, new: pd.DataFrame, replace: bool, cfg: IngestConfig, station: str):
    """(merged rows, added, corrected, filled). The upsert rule: new hours are added; on a stored
    hour a present new value replaces the stored one and a missing new value never erases it
    (`replace`: the new rows win whole, missing values included). A file that would correct more
    than `cfg.replace_share` of the stored hours is refused without `replace`."""
    fresh = new[["time", *MEASURES]].astype({c: np.float32 for c in MEASURES})
    if old is None or old is CORRUPT:
        return fresh.reset_index(drop=True), len(fresh), 0, 0
    o, n = old.set_index("time"), fresh.set_index("time")
    both = n.index.intersection(o.index)
    ov, nv = o.loc[both, list(MEASURES)].to_numpy(), n.loc[both, list(MEASURES)].to_numpy()
    fixed = (~np.isnan(ov) & ~np.isnan(nv) & (ov != nv)).any(axis=1)
    corrected = int(fixed.sum())
    filled = int(((np.isnan(ov) & ~np.isnan(nv)).any(axis=1) & ~fixed).sum())
    if corrected > cfg.replace_share * len(o) and not replace:
        raise AqiError(
            f"{new['_src'].iloc[0]}: would change {corrected} of station {station}'s {len(o)} stored "
            "hours; is it another station's file? If it corrects the whole station, rerun with --replace"
        )
    if both.empty:  # only new hours (an hourly feed's usual ingest): no values to weigh
        merged = pd.concat([o, n])
    else:
        merged = pd.concat([o.drop(both), n]) if replace else n.combine_first(o)
    merged = merged.sort_index().reset_index().astype({c: np.float32 for c in MEASURES})
    return merged, len(merged) - len(o), corrected, filled


def _write(data_dir, station, spans, old, plan, manifest, info: dict) -> IngestReport:
    merged, added, corrected, filled = plan
    repaired = old is CORRUPT
    written = old is None or repaired or _differs(old, merged)
    entry = _manifest_entry(manifest["stations"].get(station), station, info, spans, merged)
    manifest["stations"][station] = entry
    if written:
        write_partition(data_dir, station, merged, entry)
    return IngestReport(station, len(merged), added, corrected, filled, written, repaired)


def _differs(old: pd.DataFrame, merged: pd.DataFrame) -> bool:
    """Whether `merged` differs from `old` at all (NaN equals NaN)."""
    if len(old) != len(merged) or not old["time"].equals(merged["time"]):
        return True
    a, b = old[list(MEASURES)].to_numpy(), merged[list(MEASURES)].to_numpy()
    return not ((a == b) | (np.isnan(a) & np.isnan(b))).all()


STATION_FIELDS = ("name", "latitude", "longitude", "source")  # from the feed, the latest wins
MAX_SOURCES = 4  # source files listed per station: an hourly feed brings 8,760 a year


def source_spans(new: pd.DataFrame) -> pd.DataFrame:
    """Per (station, source file): sha256, rows, first and last hour (ISO), in one pass."""
    g = new.groupby(["station", "_src"]).agg(
        sha256=("_sha", "first"), rows=("time", "size"), first=("time", "min"), last=("time", "max")
    )
    g["rows"] = g["rows"].astype(int)
    g["first"], g["last"] = g["first"].map(pd.Timestamp.isoformat), g["last"].map(pd.Timestamp.isoformat)
    return g


def _manifest_entry(
    entry: dict | None, station: str, info: dict, spans: pd.DataFrame, merged: pd.DataFrame
) -> dict:
    """The station's manifest entry after this ingest: its metadata (a station keeps the time zone
    it was first stored with; a renamed location keeps its id, its names are listed), the latest
    MAX_SOURCES files it came from (`spans`: this ingest's, by file name), their count, its span."""
    entry = entry or {"display_name": station, "timezone": info["timezone"], "sources": []}
    names = {*entry.get("names", []), *([entry["name"]] if entry.get("name") else []), *info["names"]}
    if len(names) > 1:  # one location, keyed by its id, under several names over time
        entry["names"] = sorted(names)
    entry |= {k: info[k] for k in STATION_FIELDS if info.get(k) is not None}
    kept = [s for s in entry["sources"] if s["name"] not in spans.index]
    fresh = [{"name": n, **r} for n, r in spans.to_dict("index").items()]
    known = {s["name"] for s in entry["sources"]}
    entry["source_files"] = entry.get("source_files", len(known)) + len(set(spans.index) - known)
    recent = sorted(kept + fresh, key=lambda s: (s["last"], s["name"]))[-MAX_SOURCES:]
    entry["sources"] = sorted(recent, key=lambda s: s["name"])
    entry.update(
        first_time=merged["time"].min().isoformat(),
        last_time=merged["time"].max().isoformat(),
        rows=len(merged),
    )
    return entry
