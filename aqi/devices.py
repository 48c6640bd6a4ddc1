"""Device selection through tf.distribute: `--device auto|cpu|gpu|gpu:0,1|cpus:N`.

One device uses the default strategy: wrapping a single device in OneDeviceStrategy or MirroredStrategy
costs 30–55 % of CPU throughput for nothing. Several GPUs use MirroredStrategy; `TF_CONFIG` in the
environment selects MultiWorkerMirroredStrategy. `cpus:N` splits the CPU into N logical devices under
MirroredStrategy, to exercise the multi-device path on a machine without GPUs.
"""

from __future__ import annotations

import contextlib
import json
import os

from aqi.config import AqiError
from aqi.tfboot import import_tf

tf = import_tf()


def select_strategy(device: str = "auto"):
    """(strategy, description). Call before anything else touches TensorFlow devices."""
    if os.environ.get("TF_CONFIG"):
        return _multi_worker()
    gpus = tf.config.list_physical_devices("GPU")
    kind, _, ids = device.partition(":")
    if kind == "cpus":
        return _logical_cpus(ids, device)
    if kind == "cpu" and not ids:
        _hide_gpus(gpus)
        return tf.distribute.get_strategy(), "CPU (default strategy)"
    if kind == "gpu" and not gpus:
        raise AqiError(
            f"--device {device}: no GPU visible to TensorFlow (CUDA drivers/libraries "
            "missing?); use --device cpu or auto"
        )
    if kind == "gpu" and ids:
        gpus = _pick(gpus, ids, device)
        tf.config.set_visible_devices(gpus, "GPU")
    elif kind not in ("auto", "gpu"):
        raise AqiError(f"--device {device!r}: use auto, cpu, gpu, gpu:0,1 or cpus:N")
    if len(gpus) > 1:
        names = [f"/gpu:{i}" for i in range(len(gpus))]
        return tf.distribute.MirroredStrategy(names), f"{len(gpus)} GPUs (MirroredStrategy)"
    if gpus:
        return tf.distribute.get_strategy(), f"GPU {gpus[0].name} (default strategy)"
    return tf.distribute.get_strategy(), "CPU (default strategy)"


def _pick(gpus, ids: str, device: str):
    try:
        wanted = [int(i) for i in ids.split(",")]
    except ValueError:
        raise AqiError(f"--device {device!r}: GPU ids must be integers, e.g. gpu:0,1") from None
    missing = [i for i in wanted if not 0 <= i < len(gpus)]
    if missing:
        raise AqiError(f"--device {device}: GPU {missing[0]} not present ({len(gpus)} visible)")
    return [gpus[i] for i in wanted]


def _hide_gpus(gpus) -> None:
    if gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as e:  # TF already initialised its devices in this process
            raise AqiError(f"--device cpu: cannot hide the GPUs now ({e})") from None


def _logical_cpus(n: str, device: str):
    try:
        count = int(n)
        assert count >= 1
    except (ValueError, AssertionError):
        raise AqiError(f"--device {device!r}: use cpus:N with N >= 1") from None
    cpu = tf.config.list_physical_devices("CPU")[0]
    with contextlib.suppress(RuntimeError):  # already configured in this process: use what exists
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    names = [d.name for d in tf.config.list_logical_devices("CPU")][:count]
    if len(names) < count:
        raise AqiError(f"--device {device}: only {len(names)} logical CPU devices could be made")
    return tf.distribute.MirroredStrategy(names), f"{count} logical CPUs (MirroredStrategy)"


def is_chief() -> bool:
    """Whether this process writes models, checkpoints and reports: always without TF_CONFIG; in a
    cluster, the 'chief' task, or worker 0 when there is none (TensorFlow's own convention)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        cluster = json.loads(raw)
        kind, index = cluster["task"]["type"], int(cluster["task"].get("index", 0))
        has_chief = "chief" in cluster["cluster"]
    except (ValueError, KeyError, TypeError) as e:
        raise AqiError(f"TF_CONFIG: not a valid cluster description ({e})") from None
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def _multi_worker():
    try:
        cluster = json.loads(os.environ["TF_CONFIG"])
        n = sum(len(v) for v in cluster["cluster"].values())
    except (ValueError, KeyError, TypeError) as e:
        raise AqiError(f"TF_CONFIG: not a valid cluster description ({e})") from None
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return strategy, f"{n} workers (MultiWorkerMirroredStrategy, task {cluster.get('task')})"
