"""What an interrupted run was, so that `--resume` continues only the same run.

A fresh run writes `run.json` beside its per-epoch checkpoints: the resolved config, the data it
trains on (split dates, stations, windows per split) and a digest of the weights it starts from
(a fine-tune's network model). `--resume` compares its own record with it and refuses a mismatch:
restoring another run's weights into a changed split, schedule or shape would end in a model that
no uninterrupted run could have trained, or in a traceback from the restore.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from aqi.config import AqiError
from aqi.datadir import atomic_write_bytes
from aqi.losses import tf

RUN_FILE = "run.json"
SHOWN = 3  # differences named in the refusal; more are counted
KEEP = 2  # checkpoints kept per member
# what TensorFlow raises on a torn or missing checkpoint file, or one of another shape
UNREADABLE = (ValueError, IndexError, tf.errors.OpError)
AFRESH = "drop --resume to start afresh"


def weights_digest(model) -> str:
    """sha256 of a Keras model's weights, in order: the start a fine-tune continues from."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def run_record(cfg, described: dict[str, Any], start=None) -> dict[str, Any]:
    """What makes a run this run: its config, its data (`describe()` of the job's data) and the
    weights it starts from. Not what training never reads: the test split (its end, its windows),
    which an hourly ingest extends while a job waits (with given split dates that leaves the run
    as it was), and the device (a preempted job may resume on another node)."""
    data = {k: v for k, v in described.get("data", {}).items() if k != "last_origin"}
    if "windows" in data:
        data["windows"] = {k: v for k, v in data["windows"].items() if k != "test"}
    return {
        "config": cfg.replace(train={"device": ""}, window={"test_end": None}).to_dict(),
        **described,
        "data": data,
        "start": weights_digest(start) if start is not None else None,
    }


def as_json(record: dict[str, Any]) -> dict[str, Any]:
    """The record as run.json reads back (tuples become lists, dates strings)."""
    return json.loads(json.dumps(record, default=str))


def check_run(root: Path, source: Path, record: dict[str, Any], resume: bool) -> None:
    """Write `record` to root/run.json for this run; with `resume`, first refuse it unless the
    run whose checkpoints are in `source` (root, or the chief's for another worker) had the same.
    A source without run.json (no checkpoint yet) resumes nothing, so any record goes."""
    record = as_json(record)
    kept = Path(source) / RUN_FILE
    if resume and not kept.is_file() and any(Path(source).glob("member-*/*.index")):
        raise AqiError(
            f"--resume: {source} holds checkpoints but no {RUN_FILE} naming their run; {AFRESH}"
        )
    if resume and kept.is_file():
        changed = differences(_read(kept), record)
        if changed:
            more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
            raise AqiError(
                f"--resume: the interrupted run in {source} differs from this one in "
                f"{'; '.join(changed[:SHOWN])}{more}"
                f"{_moved(changed)}; give its options again, or {AFRESH}"
            )
    atomic_write_bytes(Path(root) / RUN_FILE, json.dumps(record, indent=1).encode())


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AqiError(f"--resume: {path} is unreadable ({e}); {AFRESH}") from None


def differences(before: Any, now: Any, at: str = "") -> list[str]:
    """'path: before → now' for every leaf where two JSON records differ, in key order."""
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(before) | set(now), key=str):
            path = f"{at}.{k}" if at else str(k)
            if k not in before or k not in now:
                out.append(f"{path}: {_short(before.get(k, '(none)'))} → {_short(now.get(k, '(none)'))}")
            else:
                out += differences(before[k], now[k], path)
        return out
    return [] if before == now else [f"{at}: {_short(before)} → {_short(now)}"]


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _moved(changed: list[str]) -> str:
    """A hint where the split dates differ: a default split moves with every hour ingested."""
    dates = any(c.startswith(("config.window.train_end", "config.window.val_end")) for c in changed)
    return (
        " (the split's dates moved: pass the interrupted run's as --train-end / --val-end)"
        if dates
        else ""
    )


def manager(ckpt, directory: Path):
    """The checkpoints of one member in `directory`; an unreadable state file is a user error."""
    try:
        return tf.train.CheckpointManager(ckpt, directory, KEEP)
    except UNREADABLE as e:
        raise AqiError(f"--resume: {directory}/checkpoint is unreadable ({e}); {AFRESH}") from None


def resume_from(ckpt, directory: Path, echo) -> int:
    """The epoch the last checkpoint in `directory` ended (restored into `ckpt`), 0 if none."""
    latest = manager(ckpt, directory).latest_checkpoint
    if not latest and any(Path(directory).glob("*.index")):  # a state file naming none: torn
        raise AqiError(f"--resume: {directory}/checkpoint names no checkpoint; {AFRESH}")
    if not latest:
        echo("no checkpoint to resume from; starting at epoch 1")
        return 0
    try:
        ckpt.restore(latest)
    except UNREADABLE as e:
        why = str(e).strip().splitlines()[0][:200]
        raise AqiError(f"--resume: {latest} is unreadable ({why}); {AFRESH}") from None
    echo(f"resumed from {latest} (epoch {int(ckpt.epoch.numpy())})")
    return int(ckpt.epoch.numpy())
