"""The data folder's layout, in one place, and the atomic write every stage uses.

    DATA_DIR/raw/                               downloads; never modified
    DATA_DIR/store/station=<id>/data.parquet    one partition per station (hive layout)
    DATA_DIR/store/_delta/<seq>.parquet         hourly ingests, until `aqi compact` folds them in
    DATA_DIR/store/_manifest.json               stations, time zones, sources
    DATA_DIR/models/<station>/                  CURRENT, versions/<v>/{model.keras, meta.json}, ckpt/
    DATA_DIR/models/_gbm/<key>/                 the pooled gradient-boosting baseline
    DATA_DIR/reports/evaluate/[<station>/]      metrics, predictions, plots, summary
    DATA_DIR/reports/bench.json                 `make bench`

Every path that holds a station name is built here, after `check_station` has made sure the name is
one safe path component: no command can write outside the data folder.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from aqi.config import AqiError

STATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a safe single path component
MANIFEST = "_manifest.json"  # leading '_' keeps it out of pyarrow's dataset discovery


def check_station(name: str, where: str = "--station") -> str:
    """`name` if it is a valid station id, else AqiError naming `where` (an option or a file line)."""
    if not STATION_RE.fullmatch(str(name)):
        raise AqiError(
            f"{where}: invalid station name {name!r} "
            "(letters, digits, '_' and '-' only; no path separators or '..')"
        )
    return name


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "raw"


def store_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "store"


def manifest_path(data_dir: Path) -> Path:
    return store_dir(data_dir) / MANIFEST


def partition_path(data_dir: Path, station: str) -> Path:
    return store_dir(data_dir) / f"station={check_station(station)}" / "data.parquet"


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


NETWORK = "_network"  # models/_network/: the network model (a leading '_' is never a station id)


def network_dir(data_dir: Path) -> Path:
    return models_dir(data_dir) / NETWORK


def model_dir(data_dir: Path, station: str) -> Path:
    return models_dir(data_dir) / check_station(station)


def evaluate_dir(data_dir: Path, station: str | None = None) -> Path:
    d = Path(data_dir) / "reports" / "evaluate"
    return d / check_station(station) if station else d


def bench_path(data_dir: Path) -> Path:
    return Path(data_dir) / "reports" / "bench.json"


def write_output(path: Path, text: str, option: str) -> None:
    """A file the user named (e.g. `--output`), written atomically; OSError → AqiError naming it.
    Never inside a store or a model folder (one holding _manifest.json or CURRENT): it would
    overwrite what the data folder is made of."""
    target = check_output(path, option)  # a link's target: the rename would replace the link
    try:
        atomic_write_bytes(target, text.encode())
    except OSError as e:
        raise AqiError(f"{option} {path}: cannot write ({e.strerror})") from None


def check_output(path: Path, option: str) -> Path:
    """`path` resolved, or AqiError unless it can be a user's output file: outside the store and
    the models, in a folder that exists (a typo in a path should not make folders in a batch job)."""
    here = Path(path).resolve()
    if any((d / "_manifest.json").exists() or (d / "CURRENT").exists() for d in here.parents):
        raise AqiError(f"{option} {path}: inside the data folder's store or models; write elsewhere")
    if not here.parent.is_dir():
        raise AqiError(f"{option} {path}: {here.parent} is not an existing folder; create it first")
    if here.is_dir():
        raise AqiError(f"{option} {path}: a folder; give a file name in it")
    if here.exists() and not here.is_file():  # the rename would replace /dev/full with a file
        raise AqiError(f"{option} {path}: not a regular file (a device or a pipe); give a file path")
    return here


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target, fsync, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:  # name the target (a folder in its place, say), not the temporary
            raise OSError(e.errno, e.strerror, str(path)) from e
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write or the rename failed


@contextmanager
def exclusive(folder: Path, lock_name: str, busy: str) -> Iterator[Path]:
    """Hold `folder`/`lock_name` for the block, or fail at once with AqiError `busy`. The folder is
    made and probed for writing first, so an unwritable data folder fails before any work. The lock
    is an OS file lock: a killed holder releases it, so a stale lock file is simply taken over."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise AqiError(f"{folder}: not writable ({e.strerror}); check --data-dir") from None
    lock = FileLock(folder / lock_name)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise AqiError(f"{busy} (lock {lock.lock_file}); wait for it to finish") from None
    try:
        yield folder
    finally:
        lock.release()
