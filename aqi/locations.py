"""`aqi stations --locations FILE`: station coordinates from a CSV, for feeds that carry none.

The UCI Beijing files and AirNow's hourly files have no coordinates; agencies publish their sites'
coordinates in a separate list. The file has a header with `station`, `latitude`, `longitude`
(degrees, WGS 84; any case, any other columns); every row naming a stored station sets its
coordinates in the manifest, under the store's lock, in one atomic write. An ingest keeps them (a
feed without coordinates never erases them) and writes them into the station's partition too; a
manifest rebuilt from partitions after damage has them only for stations ingested since. Rows of
stations not in the store are counted, not refused: a network's site list is longer than a store.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aqi.config import AqiError
from aqi.datadir import store_dir
from aqi.store import load_manifest, locked, stations, write_manifest

COLUMNS = ("station", "latitude", "longitude")
BOUNDS = {"latitude": 90.0, "longitude": 180.0}  # degrees either side of 0


def read_locations(path: Path) -> pd.DataFrame:
    """The file's (station, latitude, longitude) rows, checked; AqiError naming the file."""
    try:  # station ids stay text: AQSIDs keep their leading zeros, a station named NA stays NA
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise AqiError(f"{path}: not a readable CSV ({type(e).__name__})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AqiError(f"{path}: no column {', '.join(missing)} (the header needs {', '.join(COLUMNS)})")
    df = df[list(COLUMNS)].apply(lambda c: c.str.strip())
    df = df[df["station"] != ""]
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
    """(stations given coordinates, rows of stations not in the store); AqiError when no row names
    a stored station (the wrong file or the wrong id column), nothing written."""
    rows = read_locations(path)
    if not stations(data_dir):
        raise AqiError(f"no stations in {store_dir(data_dir)}; run `aqi ingest PATH` first")
    with locked(data_dir):
        manifest = load_manifest(data_dir)
        entries = manifest["stations"]
        known = rows[rows["station"].isin(entries)]
        if not len(known):
            first = f" (its first: {rows['station'].iloc[0]!r})" if len(rows) else ""
            raise AqiError(f"{path}: no row names a station in the store{first}; see `aqi stations`")
        for st, lat, lon in known.itertuples(index=False):
            entries[st] = entries[st] | {"latitude": lat, "longitude": lon}
        write_manifest(data_dir, manifest)
    return len(known), len(rows) - len(known)
