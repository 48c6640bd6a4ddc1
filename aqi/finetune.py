"""`aqi train --station X --finetune`: the network model, trained a little further on X alone.

The network model bound to X (`resolve.bind`: X's scaler, neighbours and embedding row) is trained on
X's own windows by the same loop for `FINETUNE` epochs at a lower rate, as one model (its members
together), and saved as X's own model. It keeps the network's inputs: forecast and evaluate bind it
to the store as they bind the network model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from aqi.checks import validate
from aqi.config import (
    AqiError,
    LossConfig,
    ModelConfig,
    NetworkConfig,
    TrainConfig,
    WindowConfig,
)
from aqi.datadir import exclusive, model_dir, network_dir
from aqi.devices import select_strategy
from aqi.job import Job, RunOptions
from aqi.losses import tf
from aqi.resolve import bind, covered, load_network
from aqi.store import read_station
from aqi.train import TRAIN_LOCK, WindowData
from aqi.trained import TrainedModel, live_folder

# one epoch of the station's windows at a fifth of the network's rate, as one model (the members
# together). Measured on Beijing (README): better MAE and level accuracy than training the station
# alone under both standards, worse MAE than the network model itself; the default for a covered X.
FINETUNE = {"epochs": 1, "lr": 1e-4, "batch_size": 256, "patience": 0}
TUNABLE = {f.name for f in dataclasses.fields(TrainConfig)} - {"optimizer", "finetune_lbfgs"}


def finetunes_by_default(data_dir: Path, station: str, fields: dict) -> bool:
    """`aqi train --station X` with neither --finetune nor --no-finetune: fine-tune when a network
    model covering X exists and no option given fixes the model (its window, architecture, head,
    loss) -- measured better than training X alone on both splits (README, "Cold start and
    fine-tuning"); otherwise X is trained alone. A torn network model fails as under --finetune."""
    if (
        live_folder(network_dir(data_dir)) is None
        or _model_fields(fields)
        or os.environ.get("TF_CONFIG")
    ):
        return False
    return station in covered(load_network(data_dir))  # cached: finetune_station reuses it


def finetune_station(data_dir: Path, station: str, fields: dict, opts: RunOptions) -> dict:
    """X's own model, fine-tuned from the network model; returns its meta.json."""
    fixed = _model_fields(fields)
    if fixed:
        raise AqiError(f"--finetune: the network model fixes {', '.join(sorted(fixed))}; drop them")
    if os.environ.get("TF_CONFIG"):
        raise AqiError("--finetune: runs on one worker; unset TF_CONFIG")
    if not live_folder(network_dir(data_dir)):
        raise AqiError(
            f"--finetune: no network model in {network_dir(data_dir)}; run `aqi train --station all`"
        )
    tuned = {k: v for k, v in fields.items() if k in TUNABLE}
    device = tuned.get("device", "auto")
    strategy, device = select_strategy(device)  # before any model exists: devices are fixed then
    with strategy.scope():  # the Keras model's variables belong to the strategy
        tm = bind(load_network(data_dir), data_dir, station)
        start = tm.keras_model()
    if station not in tm.info["data"]["stations"]:
        raise AqiError(f"--finetune: the network model was not trained on {station}")
    cfg = validate(tm.config.replace(train=FINETUNE | tuned, model={"members": 1}))
    w = tm.windows(read_station(data_dir, station))
    busy = f"station {station}: another `aqi train` is writing this model"
    with exclusive(model_dir(data_dir, station), TRAIN_LOCK, busy):
        tf.config.experimental.enable_op_determinism()
        data = WindowData(w.part("train"), w.part("val"), w)
        # checkpoints of its own: a --resume never restores a trained-alone run's into this shape
        ckpt = model_dir(data_dir, station) / "ckpt-finetune"
        job = Job(cfg, data, strategy, tm.standard, ckpt, opts, start=start)
        model, run = job.run(station, device)
        run["data"] = tm.info["data"] | run["data"]  # the network's stations, neighbours, scalers
        info = run | {"kind": "finetuned", "network_sha256": tm.sha256}
        out = TrainedModel(station, model, cfg, tm.scaler, tm.split, tm.timezone, tm.standard, info)
        meta = out.save(data_dir).meta()
        shutil.rmtree(ckpt, ignore_errors=True)
        return meta


def _model_fields(fields: dict) -> set[str]:
    """Options given that the network model fixes (its window, architecture, head, loss)."""
    fixed = {f.name for kind in (WindowConfig, ModelConfig, LossConfig, NetworkConfig)
             for f in dataclasses.fields(kind)}  # fmt: skip
    return {k for k in fields if k in fixed}
