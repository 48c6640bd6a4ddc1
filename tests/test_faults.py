"""Fault injection at every write of ingest and of train: the N-th write fails (disk full) or the
process is killed there (SIGKILL-like `os._exit`), for each N. After each fault every station and
every model is wholly old or wholly new, and the next plain run completes without help.

A write is each `os.replace` (the commit of every atomic write), each TensorFlow checkpoint save
and each Keras model save: every durable change aqi makes goes through one of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import NETWORK_TINY, tree_digest, uci_frame, write_csv
from typer.testing import CliRunner

from aqi.cli import app

runner = CliRunner()
KILLED = 137

HOOK = """
import os, sys
n, action, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
count = [0]
def arm(fn):
    def wrapped(*a, **k):
        count[0] += 1
        if count[0] == n:
            if action == "kill":
                os._exit(137)
            raise OSError(28, "No space left on device (injected)")
        return fn(*a, **k)
    return wrapped
os.replace = arm(os.replace)
if kind == "train":
    from aqi.losses import tf
    import keras
    tf.train.CheckpointManager.save = arm(tf.train.CheckpointManager.save)
    keras.Model.save = arm(keras.Model.save)
from aqi.cli import app
try:
    app(sys.argv[4:])
finally:
    print(f"writes={count[0]}")
"""


def run_hooked(n: int, action: str, kind: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HOOK, str(n), action, kind, *args], capture_output=True, text=True
    )


def writes_of(proc: subprocess.CompletedProcess) -> int:
    return int(proc.stdout.strip().splitlines()[-1].removeprefix("writes="))


# ---- ingest --------------------------------------------------------------------------------------


@pytest.fixture
def ingest_case(tmp_path):
    """(data folder holding Alpha and Beta, 24 h each; three newer files: Alpha and Beta extended,
    Gamma new; the tree digest of the new state, from a clean run)."""
    first = [write_csv(uci_frame(s, hours=24), tmp_path / "old" / f"{s}.csv") for s in ("Alpha", "Beta")]
    newer = []
    for i, s in enumerate(("Alpha", "Beta", "Gamma")):
        df = uci_frame(s, hours=48, seed=1 + i)
        newer.append(write_csv(df.iloc[24:] if s != "Gamma" else df, tmp_path / "new" / f"{s}.csv"))
    ref = tmp_path / "ref"
    for paths in (first, newer):
        assert runner.invoke(app, ["--data-dir", str(ref), "ingest", *map(str, paths)]).exit_code == 0
    return first, newer, tree_digest(ref)


def fresh_store(tmp_path: Path, first: list[Path]) -> Path:
    d = tmp_path / "d"
    shutil.rmtree(d, ignore_errors=True)
    assert runner.invoke(app, ["--data-dir", str(d), "ingest", *map(str, first)]).exit_code == 0
    return d


def assert_each_station_old_or_new(d: Path, old: dict, new: dict) -> None:
    from aqi.store import load_manifest, read_station, stations

    assert set(stations(d)) in ({"Alpha", "Beta"}, {"Alpha", "Beta", "Gamma"})
    for st in stations(d):
        now = read_station(d, st)
        assert any(now.equals(x) for x in (old.get(st), new[st]) if x is not None), st
        assert load_manifest(d)["stations"][st]["rows"] == len(now)


@pytest.mark.parametrize("action", ["fail", "kill"])
def test_every_write_of_ingest(tmp_path, ingest_case, action):
    from aqi.store import read_station

    first, newer, new_digest = ingest_case
    d = fresh_store(tmp_path, first)
    old = {s: read_station(d, s) for s in ("Alpha", "Beta")}
    ref = tmp_path / "ref"
    new = {s: read_station(ref, s) for s in ("Alpha", "Beta", "Gamma")}
    count = fresh_store(tmp_path / "count", first)
    total = writes_of(
        run_hooked(10**9, action, "ingest", "--data-dir", str(count), "ingest", *map(str, newer))
    )
    assert total == 4  # three partitions and the manifest
    for n in range(1, total + 1):
        d = fresh_store(tmp_path, first)
        proc = run_hooked(n, action, "ingest", "--data-dir", str(d), "ingest", *map(str, newer))
        assert proc.returncode == (KILLED if action == "kill" else 2), proc.stderr
        assert "Traceback" not in proc.stderr
        assert_each_station_old_or_new(d, old, new)
        r = runner.invoke(app, ["--data-dir", str(d), "ingest", *map(str, newer)])
        assert r.exit_code == 0, r.output
        assert tree_digest(d) == new_digest, f"write {n}"
        assert not list(d.rglob("*.tmp"))


# ---- the hourly delta layer: an hourly ingest (delta file, manifest) and `aqi compact` -------------


@pytest.fixture
def hourly_case(tmp_path):
    """(files of Alpha and Beta, 24 h each; hour-24 files of Alpha, Beta and Gamma (new); the
    clean store after both, and after a compaction on top)."""
    first = [write_csv(uci_frame(s, hours=24), tmp_path / "old" / f"{s}.csv") for s in ("Alpha", "Beta")]
    hour = [
        write_csv(
            uci_frame(s, hours=25, seed=1 + i).iloc[[24 if s != "Gamma" else 0]],
            tmp_path / "h" / f"{s}.csv",
        )
        for i, s in enumerate(("Alpha", "Beta", "Gamma"))
    ]
    ref = tmp_path / "ref"
    for paths in (first, hour):
        assert runner.invoke(app, ["--data-dir", str(ref), "ingest", *map(str, paths)]).exit_code == 0
    appended = tree_digest(ref)
    assert runner.invoke(app, ["--data-dir", str(ref), "compact"]).exit_code == 0
    return first, hour, appended, tree_digest(ref)


@pytest.mark.parametrize("action", ["fail", "kill"])
def test_every_write_of_an_hourly_ingest_and_of_compact(tmp_path, hourly_case, action):
    from aqi.store import read_station

    first, hour, appended, compacted = hourly_case
    d = fresh_store(tmp_path, first)
    old = {s: read_station(d, s) for s in ("Alpha", "Beta")}
    new = {s: read_station(tmp_path / "ref", s) for s in ("Alpha", "Beta", "Gamma")}
    runs = [("ingest", ["ingest", *map(str, hour)], 2, appended), ("compact", ["compact"], 4, compacted)]
    for name, args, total, want in runs:  # 2: the delta file and the manifest; 4: 3 partitions, manifest
        count = fresh_store(tmp_path / "count", first)
        if name == "compact":
            assert (
                runner.invoke(app, ["--data-dir", str(count), "ingest", *map(str, hour)]).exit_code == 0
            )
        assert writes_of(run_hooked(10**9, action, "ingest", "--data-dir", str(count), *args)) == total
        for n in range(1, total + 1):
            d = fresh_store(tmp_path, first)
            if name == "compact":
                assert (
                    runner.invoke(app, ["--data-dir", str(d), "ingest", *map(str, hour)]).exit_code == 0
                )
            proc = run_hooked(n, action, "ingest", "--data-dir", str(d), *args)
            assert proc.returncode == (KILLED if action == "kill" else 2), proc.stderr
            assert "Traceback" not in proc.stderr
            assert_each_station_old_or_new(d, {} if name == "compact" else old, new)
            r = runner.invoke(app, ["--data-dir", str(d), *args])
            assert r.exit_code == 0, r.output
            assert tree_digest(d) == want, f"{name}, write {n}"


# ---- train ---------------------------------------------------------------------------------------


def live_sha(data: Path) -> tuple[str, Path]:
    from aqi.trained import load

    tm = load(data, "Synth")
    return tm.sha256, tm.path


def train_args(data: Path) -> list[str]:
    return ["--data-dir", str(data), "train", "--station", "Synth", "-q", *NETWORK_TINY]


@pytest.mark.parametrize("action", ["fail", "kill"])
def test_every_write_of_train(template, tmp_path, monkeypatch, action):
    """A kill needs its own process; a failed write is injected in this one (the same hook, without
    a new interpreter importing TensorFlow at each write), which also catches a lock or a state
    left behind in the process."""
    total = _count_train_writes(tmp_path, template, monkeypatch)
    assert total >= 5  # two checkpoints, the model, meta.json, CURRENT
    roots = {n: tmp_path / f"r{n}" for n in range(1, total + 1)}
    for root in roots.values():
        shutil.copytree(template, root)
    olds = {n: live_sha(root / "data") for n, root in roots.items()}
    if action == "kill":  # two processes at a time: each spends ~10 s importing TensorFlow
        with ThreadPoolExecutor(2) as pool:
            kills = dict(zip(roots, pool.map(lambda n: _killed_at(n, roots[n]), roots), strict=True))
    for n, root in roots.items():
        data, old = root / "data", olds[n]
        if action == "kill":
            proc = kills[n]
            assert proc.returncode == KILLED, proc.stdout + proc.stderr
            assert "Traceback" not in proc.stderr, proc.stderr
        else:
            with monkeypatch.context() as m:
                armed(m, n)
                r = runner.invoke(app, train_args(data))
            assert r.exit_code == 2 and "No space left" in r.output, r.output
            assert "Traceback" not in r.output, r.output
        assert live_sha(data) == old, f"write {n}: the previous model is not live and whole"
        r = runner.invoke(app, train_args(data))  # the next plain run completes
        assert r.exit_code == 0, r.output
        sha, path = live_sha(data)
        assert sha != old[0] and not (data / "models" / "Synth" / "ckpt").exists()
        assert len(list((data / "models" / "Synth" / "versions").iterdir())) <= 2
        assert not [p for p in data.rglob("*.tmp")]
        shutil.rmtree(root)


def _killed_at(n: int, root: Path) -> subprocess.CompletedProcess:
    return run_hooked(n, "kill", "train", *train_args(root / "data"))


def armed(m: pytest.MonkeyPatch, n: int) -> list[int]:
    """HOOK's 'fail' in this process: the n-th write raises ENOSPC; returns the write counter."""
    import keras

    from aqi.losses import tf

    count = [0]

    def arm(fn):
        def wrapped(*a, **k):
            count[0] += 1
            if count[0] == n:
                raise OSError(28, "No space left on device (injected)")
            return fn(*a, **k)

        return wrapped

    m.setattr(os, "replace", arm(os.replace))
    m.setattr(tf.train.CheckpointManager, "save", arm(tf.train.CheckpointManager.save))
    m.setattr(keras.Model, "save", arm(keras.Model.save))
    return count


def _count_train_writes(tmp_path: Path, template: Path, monkeypatch) -> int:
    root = tmp_path / "count"
    shutil.copytree(template, root)
    with monkeypatch.context() as m:
        count = armed(m, 10**9)
        r = runner.invoke(app, train_args(root / "data"))
    assert r.exit_code == 0, r.output
    return count[0]


def test_the_hook_counts_real_writes(tmp_path, ingest_case):
    first, *_ = ingest_case
    d = tmp_path / "x"
    proc = run_hooked(10**9, "fail", "ingest", "--data-dir", str(d), "ingest", *map(str, first))
    assert proc.returncode == 0 and writes_of(proc) == 3  # two partitions and the manifest
    assert pd.read_parquet(d / "store" / "station=Alpha" / "data.parquet").shape[0] == 24
    assert os.path.exists(d / "store" / "_manifest.json")
