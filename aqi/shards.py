"""`--shard i/N`: a deterministic 1/N of the stations, so N batch jobs cover each station once.

Station k of the sorted list belongs to shard k mod N (0-based i, as Kubernetes' indexed Jobs and
`SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)` count): the shards are disjoint, their union is every
station, and their sizes differ by at most one.
"""

from __future__ import annotations

from aqi.config import AqiError
from aqi.datadir import check_station


def parse(spec: str) -> tuple[int, int]:
    """'i/N' → (i, N) with 0 <= i < N; AqiError naming --shard otherwise."""
    index, _, count = spec.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise AqiError(f"--shard {spec!r}: use i/N with 0 <= i < N, e.g. 0/4 (shards count from 0)")
    return i, n


def pick(names: list[str], spec: str | None) -> list[str]:
    """The stations of shard `spec` (all of them when None)."""
    if spec is None:
        return list(names)
    i, n = parse(spec)
    return [name for k, name in enumerate(sorted(names)) if k % n == i]


def one_or_all(station: str, shard: str | None = None) -> str:
    """A `--station` value: 'all', a valid station id or a comma list of them; `--shard` only goes
    with 'all'."""
    if shard is not None and station != "all":
        raise AqiError(f"--shard {shard}: goes with --station all")
    if shard is not None:
        parse(shard)
    if station == "all":
        return station
    names = [s.strip() for s in station.split(",")]
    if "" in names or len(set(names)) < len(names):
        raise AqiError(f"--station {station!r}: an empty or repeated name; list each station once")
    return ",".join(check_station(s) for s in names)
