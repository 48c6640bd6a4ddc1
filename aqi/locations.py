"""`aqi stations --locations FILE`: station coordinates from a CSV, for feeds that carry none.

The UCI Beijing files and AirNow's hourly files have no coordinates, so a network model picks its
neighbours by correlation there; agencies publish their sites' coordinates in a separate list. The
file has a header with `station`, `latitude`, `longitude` (degrees, WGS 84) and any other columns;
every row naming a stored station sets its coordinates in the manifest, under the store's lock, in
one atomic write (an ingest keeps them: a feed without coordinates never erases them). Rows of
stations not in the store are counted, not refused: a network's site list is longer than a store.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aqi.config import AqiError
from aqi.store import load_manifest, locked, write_manifest

COLUMNS = ("station", "latitude", "longitude")
BOUNDS = {"latitude": 90.0, "longitude": 180.0}  # degrees either side of 0


def read_locations(path: Path) -> pd.DataFrame:
    """The file's (station, latitude, longitude) rows, checked; AqiError naming the file."""
    try:
        df = pd.read_csv(path, dtype={"station": str}, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise AqiError(f"{path}: not a readable CSV ({type(e).__name__})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AqiError(f"{path}: no column {', '.join(missing)} (the header needs {', '.join(COLUMNS)})")
    df = df[list(COLUMNS)].dropna(subset=["station"])
    for col, bound in BOUNDS.items():
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df.loc[~values.between(-bound, bound), "station"]
        if len(bad):
            where = f"{col} of {bad.iloc[0]!r}"
            raise AqiError(f"{path}: {where} is not a number in [-{bound:g}, {bound:g}]")
        df[col] = values.astype(float)
    twice = df.groupby("station")[["latitude", "longitude"]].nunique().max(axis=1) > 1
    if twice.any():
        raise AqiError(f"{path}: station {twice[twice].index[0]!r} has two different locations")
    return df.drop_duplicates("station")


def set_locations(data_dir: Path, path: Path) -> tuple[int, int]:
    """(stations given coordinates, rows of stations not in the store)."""
    rows = read_locations(path)
    with locked(data_dir):
        manifest = load_manifest(data_dir)
        entries = manifest["stations"]
        if not entries:
            raise AqiError(f"no stations in {Path(data_dir) / 'store'}; run `aqi ingest PATH` first")
        known = rows[rows["station"].isin(entries)]
        for st, lat, lon in known.itertuples(index=False):
            entries[st] = entries[st] | {"latitude": lat, "longitude": lon}
        if len(known):
            write_manifest(data_dir, manifest)
    return len(known), len(rows) - len(known)
