"""Two real workers on 127.0.0.1 (MultiWorkerMirroredStrategy, one TF_CONFIG each) train the same
tiny model on real Beijing windows as one process with the same global batch: per-step losses agree
on both workers and with the single process, and the data are sharded so each example is seen once
per epoch. Only the chief writes; a killed worker's job resumes to the uninterrupted result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BEIJING, needs_beijing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from launch_workers import free_ports  # noqa: E402  (the launcher's own port picking)

WORKER = """
import json, os, sys
sys.path.insert(0, "tests")
ports, index, out, data_dir = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if index >= 0:
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index}})
from conftest import array_config
STATION = "Aotizhongxin"
from aqi.devices import select_strategy
from aqi.levels import get_standard
from aqi.loop import Loop, dataset, distribute, make_optimizer
from aqi.losses import LevelLoss, tf
from aqi.model import build_model
strategy, device = select_strategy("cpu" if index < 0 else "auto")
tf.config.experimental.enable_op_determinism()
from aqi.store import read_station, station_timezone
from aqi.windows import build_windows
cfg = array_config(epochs=2)
w = build_windows(read_station(data_dir, STATION), cfg.window, station_timezone(data_dir, STATION))
x, y = w.part("train").x[:64], w.part("train").y[:64]  # real Beijing windows, 6 h in, 3 h out
tf.keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_model(cfg, x.shape[-1], w.scaler.pm25())
    loss = LevelLoss.for_model(get_standard("us-epa-2024"), cfg)
    loop = Loop(model, make_optimizer(cfg.train, 4), loss, strategy)
ds = distribute(strategy, dataset(x, y, 16, False, 0))
losses, seen = [], []
for epoch in range(2):
    for batch in ds:
        local = strategy.experimental_local_results(batch[0])  # a window's sum: unique per example
        seen.append(sorted(float(v) for t in local for v in t.numpy().sum(axis=(1, 2))))
        losses.append(float(loop.train_step(batch)))
json.dump({"device": device, "losses": losses, "seen": seen}, open(out, "w"))
"""


@pytest.fixture(scope="module")
def beijing(tmp_path_factory) -> Path:
    """A store of the real Aotizhongxin station."""
    from aqi.ingest import ingest

    d = tmp_path_factory.mktemp("beijing") / "data"
    ingest(sorted(BEIJING.glob("PRSA_Data_Aotizhongxin_*.csv")), d)
    return d


def spawn(script: str, per_worker: list[list[str]]) -> list:
    """One process per argument list, all started at once."""
    return [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in per_worker
    ]


def finish(procs: list, seconds: float = 150) -> None:
    """Wait for every worker; all are killed if one outlives `seconds` (a missing peer would
    otherwise block forever)."""
    for p in procs:
        try:
            _, err = p.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a worker did not finish in {seconds} s") from None
        assert p.returncode == 0, err[-2000:]


def run_workers(tmp_path: Path, indices: list[int], ports: list[int], data: Path) -> list[dict]:
    outs = [tmp_path / f"w{i}.json" for i in indices]
    finish(
        spawn(
            WORKER,
            [[json.dumps(ports), str(i), str(o), str(data)] for i, o in zip(indices, outs, strict=True)],
        ),
        120,
    )
    return [json.loads(o.read_text()) for o in outs]


@needs_beijing
def test_two_workers_train_like_one_process(tmp_path, beijing):
    ports = free_ports(2)
    a, b = run_workers(tmp_path, [0, 1], ports, beijing)
    (one,) = run_workers(tmp_path, [-1], ports, beijing)
    assert "MultiWorkerMirroredStrategy" in a["device"] and "2 workers" in a["device"]
    assert len(a["losses"]) == len(one["losses"]) == 8  # 64 windows / global batch 16, 2 epochs
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-6)
    np.testing.assert_allclose(a["losses"], one["losses"], rtol=1e-4)
    assert a["losses"][0] != a["losses"][-1]  # it trained: the check can fail
    for step in range(4):  # one epoch: the workers' examples are disjoint and cover the batch
        mine, theirs, whole = a["seen"][step], b["seen"][step], one["seen"][step]
        assert len(mine) == len(theirs) == 8 and not set(mine) & set(theirs)
        np.testing.assert_allclose(sorted(mine + theirs), whole, rtol=1e-6)


TRAIN = """
import json, os, sys
sys.path.insert(0, "tests")
ports, index, data_dir, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
    "task": {"type": "worker", "index": index}})
from conftest import tiny_config
from aqi.train import train_station
said = []
meta = train_station(data_dir, "Synth", tiny_config(epochs=1), quiet=True, echo=said.append)
json.dump({"said": said, "val": meta["validation"]["model"]["mae"]}, open(out, "w"))
"""


def test_only_the_chief_writes(synth_store, tmp_path):
    """`aqi train` on two workers: both train in step, the chief (worker 0) alone writes the
    model; the other writes to a scratch folder that is gone at the end."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_store, data, ignore=shutil.ignore_patterns("models"))
    ports = free_ports(2)
    outs = [tmp_path / f"t{i}.json" for i in (0, 1)]
    finish(spawn(TRAIN, [[json.dumps(ports), str(i), str(data), str(o)] for i, o in enumerate(outs)]))
    chief, other = (json.loads(o.read_text()) for o in outs)
    assert chief["val"] == other["val"]  # trained in step: the same model on both
    versions = list((data / "models" / "Synth" / "versions").iterdir())
    assert len(versions) == 1 and (data / "models" / "Synth" / "CURRENT").exists()
    scratch = [line for line in other["said"] if "not the chief worker" in line]
    assert scratch and not Path(scratch[0].split("writing to ")[1].split(" (")[0]).exists()
    assert not any("not the chief" in line for line in chief["said"])


RESUMABLE = """
import json, os, sys, time
sys.path.insert(0, "tests")
ports, index, data_dir, out, mode = json.loads(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
    "task": {"type": "worker", "index": index}})
from conftest import tiny_config
from aqi.loop import Loop
from aqi.train import train_station
if mode == "slow":  # from epoch 2 on, slow enough for the test to kill a worker mid-epoch
    real, steps = Loop.train_step, []
    def slow(self, batch):
        steps.append(1)
        if len(steps) > 40:
            time.sleep(0.05)
        return real(self, batch)
    Loop.train_step = slow
cfg = tiny_config(epochs=3, patience=9)
meta = train_station(data_dir, "Synth", cfg, quiet=True, resume=mode == "resume", echo=print)
json.dump({"val": meta["validation"]["model"]["mae"], "epochs_run": meta["epochs_run"]}, open(out, "w"))
"""


def start(data: Path, ports: list[int], tmp: Path, mode: str, tag: str) -> list:
    """Both workers of a RESUMABLE run in `mode`, each writing tmp/<tag><index>.json."""
    runs = [[json.dumps(ports), str(i), str(data), str(tmp / f"{tag}{i}.json"), mode] for i in (0, 1)]
    return spawn(RESUMABLE, runs)


def test_a_killed_worker_resumes_to_the_uninterrupted_result(synth_store, tmp_path):
    """Kill worker 1 mid-epoch 2 (the chief, blocked on its dead peer, goes too, as a launcher
    does); restarted with --resume, both continue from the chief's epoch-1 checkpoint and end
    with the model an uninterrupted two-worker run gives."""
    import shutil
    import time

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for d in (whole, cut):
        shutil.copytree(synth_store, d, ignore=shutil.ignore_patterns("models"))
    finish(start(whole, free_ports(2), tmp_path, "plain", "w"))
    procs = start(cut, free_ports(2), tmp_path, "slow", "k")
    first = cut / "models" / "Synth" / "ckpt" / "member-0" / "ckpt-1.index"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the chief never wrote its epoch-1 checkpoint"
    procs[1].kill()  # mid-epoch 2
    time.sleep(1.0)
    procs[0].kill()
    for p in procs:
        p.wait()
    assert not (tmp_path / "k0.json").exists()  # it really was interrupted
    finish(start(cut, free_ports(2), tmp_path, "resume", "r"))
    resumed, reference = (json.loads((tmp_path / f).read_text()) for f in ("r0.json", "w0.json"))
    assert resumed["epochs_run"] == [2] and reference["epochs_run"] == [3]
    np.testing.assert_allclose(resumed["val"], reference["val"], rtol=1e-5)


def test_tf_config_from_slurm_and_kubernetes_variables():
    from tf_config import tf_config

    slurm = tf_config({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "AQI_HOSTS": "n1,n2"})
    assert slurm == {
        "cluster": {"worker": ["n1:23456", "n2:23456"]},
        "task": {"type": "worker", "index": 1},
    }
    k8s = tf_config({"JOB_COMPLETION_INDEX": "0", "AQI_HOSTS": "h,h", "AQI_PORT": "9000"})
    assert k8s["cluster"]["worker"] == ["h:9000", "h:9001"] and k8s["task"]["index"] == 0
    with pytest.raises(SystemExit, match="3 tasks"):
        tf_config({"SLURM_PROCID": "0", "SLURM_NTASKS": "3", "AQI_HOSTS": "a,b"})
