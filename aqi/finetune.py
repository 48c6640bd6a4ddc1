"""`aqi train --station X` where the network model covers X (or `--finetune`): the network model,
trained a little further on X alone.

The network model bound to X (`resolve.bind`: X's scaler, neighbours and embedding row) is trained on
X's own windows by the same loop for `FINETUNE` epochs at a lower rate, as one model (its members
together), and saved as X's own model; an epoch is kept only if it lowers X's validation loss below
the network model's own (`Job`), so X's model is never worse on validation than the network's. It
keeps the network's inputs: forecast and evaluate bind it to the store as they bind the network model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from aqi.checks import validate
from aqi.config import FINETUNE, SECTIONS, AqiError, DecisionConfig, TrainConfig
from aqi.datadir import exclusive, model_dir, network_dir
from aqi.devices import select_strategy
from aqi.job import Job, RunOptions
from aqi.losses import tf
from aqi.resolve import bind, covered, load_network
from aqi.store import read_station
from aqi.train import TRAIN_LOCK, WindowData
from aqi.trained import TrainedModel, live_folder

# config.FINETUNE's run, as one model (the members together), is kept only if it beats the network
# model on X's validation loss. Measured on Beijing (README): better than training X alone under
# both standards; on the test year no worse than the network model (US: MAE 36.62 vs 36.65, level
# 0.508 vs 0.508); the default for a covered X.

# what a fine-tune may set: the first-order run's options and the decision; the rest (the model,
# its window and loss, L-BFGS-B, outage training) is the network model's, or not run on one station
TUNABLE = {f.name for kind in (TrainConfig, DecisionConfig) for f in dataclasses.fields(kind)} - {
    "optimizer", "finetune_lbfgs", "lbfgs_max_samples", "gap_share",
}  # fmt: skip
TRAIN = {f.name for f in dataclasses.fields(TrainConfig)}
CONFIG_FIELDS = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}


def finetunes_by_default(data_dir: Path, station: str, fields: dict, echo=lambda _: None) -> bool:
    """`aqi train --station X` with neither --finetune nor --no-finetune: fine-tune when a network
    model covering X exists and every option given is one a fine-tune honours (`TUNABLE`) --
    measured better than training X alone on both splits (README, "Cold start and fine-tuning");
    otherwise X is trained alone, with a line saying so when options were the reason. A torn
    network model fails as under --finetune."""
    if _unavailable(data_dir, station):
        return False
    fixed = _model_fields(fields)
    if fixed:
        echo(f"{station}: trained alone, not fine-tuned from the network model: {_options(fixed)}")
    return not fixed


def finetune_station(data_dir: Path, station: str, fields: dict, opts: RunOptions) -> dict:
    """X's own model, fine-tuned from the network model; returns its meta.json. When no epoch
    lowers X's validation loss below the network model's, nothing is saved (`"saved": false`):
    the network model already forecasts X, and a copy of it would hide its later retraining."""
    _check(data_dir, station, fields)
    tuned = {"device": TrainConfig().device} | {k: v for k, v in fields.items() if k in TUNABLE}
    strategy, device = select_strategy(tuned["device"])  # before any model: devices are fixed then
    with strategy.scope():  # the Keras model's variables belong to the strategy
        tm = bind(load_network(data_dir), data_dir, station)
        start = tm.keras_model()
    train = FINETUNE | {k: v for k, v in tuned.items() if k in TRAIN}
    decision = {k: v for k, v in tuned.items() if k not in TRAIN}
    cfg = validate(tm.config.replace(train=train, model={"members": 1}, decision=decision))
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
        improved = max(run["best_epoch"]) > 0  # 0: the network model's weights were kept
        meta = out.save(data_dir).meta() if improved else out.meta() | {"saved": False}
        shutil.rmtree(ckpt, ignore_errors=True)
        return meta


def _check(data_dir: Path, station: str, fields: dict) -> None:
    """AqiError naming what keeps X from being fine-tuned: no network model to start from
    (`_unavailable`), or an option a fine-tune cannot honour."""
    why = _unavailable(data_dir, station)
    if why:
        raise AqiError(f"--finetune: {why}")
    fixed = _model_fields(fields)
    if fixed:
        raise AqiError(
            f"--finetune: {_options(fixed)}: not settable when fine-tuning the network model; "
            "drop it or pass --no-finetune"
        )


def _unavailable(data_dir: Path, station: str) -> str | None:
    """Why no network model can be fine-tuned on X here (a cluster, none, or one not trained on
    X), or None. The network model's load is cached: `finetune_station` reuses it."""
    if os.environ.get("TF_CONFIG"):
        return "runs on one worker; unset TF_CONFIG"
    if not live_folder(network_dir(data_dir)):
        return f"no network model in {network_dir(data_dir)}; run `aqi train --station all`"
    if station not in covered(load_network(data_dir)):
        return f"the network model was not trained on {station}"
    return None


def _options(fields: set[str]) -> str:
    return ", ".join(f"--{k.replace('_', '-')}" for k in sorted(fields))


def _model_fields(fields: dict) -> set[str]:
    """Options given that a fine-tune cannot honour (the network model's window, architecture,
    head and loss; L-BFGS-B; outage training): with any of them X is trained alone."""
    return {k for k in fields if k in CONFIG_FIELDS and k not in TUNABLE}
