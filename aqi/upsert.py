"""The upsert rule: how an ingest's rows change the stored ones, for one station (`merge`, which
rewrites its partition) or, vectorised, for a small ingest over many stations (`hourly_plan`, whose
changes go to one delta file). Also each station's manifest entry after the ingest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aqi.config import MEASURES, AqiError, IngestConfig
from aqi.deltas import Deltas

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


def differs(old: pd.DataFrame, merged: pd.DataFrame) -> bool:
    """Whether `merged` differs from `old` at all (NaN equals NaN)."""
    if len(old) != len(merged) or not old["time"].equals(merged["time"]):
        return True
    a, b = old[list(MEASURES)].to_numpy(), merged[list(MEASURES)].to_numpy()
    return not ((a == b) | (np.isnan(a) & np.isnan(b))).all()


STATION_FIELDS = ("name", "latitude", "longitude", "source")  # from the feed, the latest wins
MAX_SOURCES = 4  # source files listed per station: an hourly feed brings 8,760 a year


def source_spans(new: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """{station: {source file: sha256, rows, first and last hour (ISO)}}, in one pass."""
    g = new.groupby(["station", "_src"]).agg(
        sha256=("_sha", "first"), rows=("time", "size"), first=("time", "min"), last=("time", "max")
    )
    iso = [_iso_utc(g[c]).tolist() for c in ("first", "last")]
    out: dict[str, dict[str, dict]] = {}
    cols = (g.index, g["sha256"].tolist(), g["rows"].tolist(), *iso)
    for (st, name), sha, rows, first, last in zip(*cols, strict=True):
        out.setdefault(st, {})[name] = {"sha256": sha, "rows": int(rows), "first": first, "last": last}
    return out


def _iso_utc(t: pd.Series) -> pd.Series:
    """`Timestamp.isoformat` in UTC, vectorised (an AirNow hour brings ~2,200 station-files)."""
    return t.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def manifest_entry(entry: dict | None, station: str, info: dict, spans: dict, span: tuple) -> dict:
    """The station's manifest entry after this ingest: its metadata (a station keeps the time zone
    it was first stored with; a renamed location keeps its id, its names are listed), the latest
    MAX_SOURCES files it came from (`spans`: this ingest's, by file name), their count, and `span`
    (first hour, last hour, rows) of its stored rows."""
    entry = dict(entry or {"display_name": station, "timezone": info["timezone"], "sources": []})
    names = {*entry.get("names", []), *([entry["name"]] if entry.get("name") else []), *info["names"]}
    if len(names) > 1:  # one location, keyed by its id, under several names over time
        entry["names"] = sorted(names)
    entry |= {k: info[k] for k in STATION_FIELDS if info.get(k) is not None}
    kept = [s for s in entry["sources"] if s["name"] not in spans]
    fresh = [{"name": n, **r} for n, r in spans.items()]
    known = {s["name"] for s in entry["sources"]}
    entry["source_files"] = entry.get("source_files", len(known)) + len(set(spans) - known)
    recent = sorted(kept + fresh, key=lambda s: (s["last"], s["name"]))[-MAX_SOURCES:]
    entry["sources"] = sorted(recent, key=lambda s: s["name"])
    first, last, rows = span
    entry.update(first_time=first.isoformat(), last_time=last.isoformat(), rows=int(rows))
    return entry


@dataclass(frozen=True)
class HourlyPlan:
    """What a small ingest changes, as one delta file: the rows that add or change an hour, and per
    station (added, corrected, filled, (first, last, rows) after the ingest)."""

    rows: pd.DataFrame  # (station, time, MEASURES): the new rows that change anything
    counts: dict[str, tuple[int, int, int, tuple]]


def hourly_plan(new: pd.DataFrame, stored: dict, deltas: Deltas, cfg: IngestConfig):
    """The ingest of `new` as a delta, or None when it is not a small ingest of recent hours: a
    station brings more than `cfg.hourly_rows` rows, or an hour at or before its last stored hour
    that the delta layer does not hold (that hour is in its partition: `merge` must weigh it)."""
    if new.groupby("station").size().max() > cfg.hourly_rows:
        return None
    last = pd.Series({st: e["last_time"] for st, e in stored.items() if "last_time" in e}, dtype=object)
    last = pd.to_datetime(new["station"].map(last), utc=True)
    key = pd.MultiIndex.from_arrays([new["station"], new["time"]])
    held = deltas.frame.groupby(["station", "time"], sort=False)[list(MEASURES)].last()
    in_delta = key.isin(held.index)
    if not ((new["time"] > last) | last.isna() | in_delta).all():
        return None
    ov = held.reindex(key).to_numpy(np.float32)
    nv = new[list(MEASURES)].to_numpy(np.float32)
    fixed = (~np.isnan(ov) & ~np.isnan(nv) & (ov != nv)).any(axis=1)
    filled = (np.isnan(ov) & ~np.isnan(nv)).any(axis=1) & ~fixed & in_delta
    added = ~in_delta
    flags = pd.DataFrame(
        {
            "station": new["station"],
            "time": new["time"],
            "added": added,
            "corrected": fixed,
            "filled": filled,
        }
    )
    counts = _counts(flags, stored, cfg, new)
    rows = new.loc[added | fixed | filled, ["station", "time", *MEASURES]]
    return HourlyPlan(rows.astype({c: np.float32 for c in MEASURES}), counts)


def _counts(flags: pd.DataFrame, stored: dict, cfg: IngestConfig, new: pd.DataFrame) -> dict:
    """Per station (added, corrected, filled, span after the ingest); AqiError like `merge` when a
    file would correct more than `cfg.replace_share` of a station's stored hours."""
    g = flags.groupby("station").agg(
        added=("added", "sum"),
        corrected=("corrected", "sum"),
        filled=("filled", "sum"),
        first=("time", "min"),
        last=("time", "max"),
    )
    out = {}
    for r in g.itertuples():
        e = stored.get(r.Index, {})
        rows = e.get("rows", 0)
        if r.corrected > cfg.replace_share * rows:
            raise AqiError(
                f"{new.loc[new['station'] == r.Index, '_src'].iloc[0]}: would change {r.corrected} "
                f"of station {r.Index}'s {rows} stored hours; is it another station's file? If it "
                "corrects the whole station, rerun with --replace"
            )
        first = min(r.first, pd.Timestamp(e["first_time"])) if "first_time" in e else r.first
        last = max(r.last, pd.Timestamp(e["last_time"])) if "last_time" in e else r.last
        out[r.Index] = (
            int(r.added),
            int(r.corrected),
            int(r.filled),
            (first, last, rows + int(r.added)),
        )
    return out
