"""`aqi train --station X --finetune`: the network model, trained a little further on X alone.

The network model bound to X (`resolve.bind`: X's scaler, neighbours and embedding row) is trained on
X's own windows by the same loop for `FINETUNE` epochs at a lower rate, as one model (its members
together), and saved as X's own model. It keeps the network's inputs: forecast and evaluate bind it
to the store as they bind the network model.
"""

from __future__ import annotations

from pathlib import Path

from aqi.config import AqiError
from aqi.datadir import exclusive, model_dir
from aqi.devices import select_strategy
from aqi.job import Job, RunOptions
from aqi.losses import tf
from aqi.resolve import bind, load_network
from aqi.store import read_station
from aqi.train import TRAIN_LOCK, WindowData
from aqi.trained import TrainedModel

# one epoch of the station's windows at a fifth of the network's rate, one model: on Beijing
# validation this beat both the network model and the station's own model (README)
FINETUNE = {"epochs": 1, "lr": 1e-4, "batch_size": 256, "members": 1, "patience": 0}


def finetune_station(data_dir: Path, station: str, fields: dict, opts: RunOptions) -> dict:
    """X's own model, fine-tuned from the network model; returns its meta.json."""
    tm = bind(load_network(data_dir), data_dir, station)
    if station not in tm.info["data"]["stations"]:
        raise AqiError(f"--finetune: the network model was not trained on {station}")
    cfg = tm.config.with_fields(**FINETUNE | fields)
    w = tm.windows(read_station(data_dir, station))
    busy = f"station {station}: another `aqi train` is writing this model"
    with exclusive(model_dir(data_dir, station), TRAIN_LOCK, busy):
        strategy, device = select_strategy(cfg.train.device)
        tf.config.experimental.enable_op_determinism()
        data = WindowData(w.part("train"), w.part("val"), w)
        ckpt = model_dir(data_dir, station) / "ckpt"
        job = Job(cfg, data, strategy, tm.standard, ckpt, opts, start=tm.model)
        model, run = job.run(station, device)
        run["data"] = tm.info["data"] | run["data"]  # the network's stations, neighbours, scalers
        info = run | {"kind": "finetuned", "network_sha256": tm.sha256}
        out = TrainedModel(station, model, cfg, tm.scaler, tm.split, tm.timezone, tm.standard, info)
        return out.save(data_dir).meta()
