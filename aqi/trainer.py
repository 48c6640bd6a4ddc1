"""`aqi train`: one station's windows → model under the chosen strategy → artifacts.

Nothing under models/<station>/ changes unless training finishes with finite losses; the per-epoch
checkpoints (ckpt/) let `--resume` continue an interrupted run.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aqi import artifacts
from aqi.config import AqiError, Config, validate
from aqi.devices import select_strategy
from aqi.levels import get_standard, level
from aqi.losses import LevelLoss, tf
from aqi.model import build_model
from aqi.store import read_station, station_timezone, stations
from aqi.train import History, Loop, dataset, fit, make_optimizer
from aqi.windows import Windows, build_windows, split_dates


class Bar:
    """Rich progress bar per epoch: loss, validation MAE and level accuracy, samples/s."""

    def __init__(self, steps: int, epochs: int, quiet: bool):
        self.steps, self.epochs = steps, epochs
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            disable=quiet,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def step(self, loss: float) -> None:
        if self.task is None:
            self.task = self.progress.add_task("", total=self.steps, epoch=f"1/{self.epochs}", info="")
        self.progress.update(self.task, advance=1, info=f"loss {loss:.4f}")

    def epoch(self, epoch: int, h: History) -> None:
        info = (
            f"loss {h.train_loss[-1]:.4f}  val MAE {h.val_mae[-1]:.2f} µg/m³  "
            f"val level acc {h.val_level_acc[-1]:.3f}  {h.samples_per_s:,.0f} samples/s"
        )
        self.progress.update(
            self.task, completed=self.steps, info=info, epoch=f"{epoch + 1}/{self.epochs}"
        )
        if epoch + 1 < self.epochs:
            self.task = self.progress.add_task(
                "", total=self.steps, epoch=f"{epoch + 2}/{self.epochs}", info=""
            )


def train_station(
    data_dir: Path,
    station: str,
    cfg: Config,
    quiet: bool = False,
    tensorboard: Path | None = None,
    resume: bool = False,
    echo=print,
) -> dict:
    """Train one station; returns the meta.json written beside model.keras."""
    validate(cfg)
    std = get_standard(cfg.loss.standard)
    strategy, device = select_strategy(cfg.train.device)
    tf.keras.utils.set_random_seed(cfg.train.seed)
    tf.config.experimental.enable_op_determinism()
    tz = station_timezone(data_dir, station)
    df = read_station(data_dir, station)
    w = build_windows(df, cfg.window, tz)
    tr, va = w.part("train"), w.part("val")
    if len(tr) < cfg.train.batch_size or not len(va):
        raise AqiError(
            f"station {station}: too little data ({len(tr)} train / {len(va)} validation "
            f"windows for --batch-size {cfg.train.batch_size})"
        )
    echo(f"{station}: {len(tr):,} train / {len(va):,} validation windows on {device}")
    steps = -(-len(tr) // cfg.train.batch_size)
    with strategy.scope():
        model = build_model(cfg, len(w.features), (float(w.scaler.mean[0]), float(w.scaler.std[0])))
        optimizer = make_optimizer(cfg.train, steps)
        loss = LevelLoss.from_standard(std, cfg.loss)
        loop = Loop(model, optimizer, loss, strategy)
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=tf.Variable(0))
    manager = tf.train.CheckpointManager(ckpt, artifacts.model_dir(data_dir, station) / "ckpt", 2)
    start = _resume(ckpt, manager, echo) if resume else 0
    train_ds = strategy.experimental_distribute_dataset(
        dataset(tr.x, tr.y, cfg.train.batch_size, True, cfg.train.seed)
    )
    val_ds = strategy.experimental_distribute_dataset(dataset(va.x, va.y, 4096, False, 0))
    writer = tf.summary.create_file_writer(str(tensorboard)) if tensorboard else None

    def on_epoch(epoch: int, h: History) -> None:
        ckpt.epoch.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)
        if writer:
            with writer.as_default(step=epoch + 1):
                for k in ("train_loss", "val_loss", "val_mae", "val_level_acc"):
                    tf.summary.scalar(k, getattr(h, k)[-1])

    started = time.perf_counter()
    with Bar(steps, cfg.train.epochs, quiet) as bar:
        hist = fit(loop, train_ds, val_ds, cfg.train, len(tr), start, on_epoch, bar)
    meta = _meta(station, cfg, w, tr, va, hist, model, std, device, time.perf_counter() - started, tz)
    artifacts.save(model, meta, data_dir, station)
    return meta


def _resume(ckpt, manager, echo) -> int:
    if not manager.latest_checkpoint:
        echo("no checkpoint to resume from; starting at epoch 1")
        return 0
    ckpt.restore(manager.latest_checkpoint)
    echo(f"resumed from {manager.latest_checkpoint} (epoch {int(ckpt.epoch.numpy())})")
    return int(ckpt.epoch.numpy())


def horizon_metrics(y: np.ndarray, pred: np.ndarray, std) -> dict:
    """MAE (µg/m³) and hard-level accuracy per horizon over finite targets."""
    m = np.isfinite(y)
    err = np.where(m, np.abs(np.nan_to_num(y) - pred), 0.0)
    same = (level(np.where(m, y, np.nan), std) == level(pred, std)) & m
    n = np.maximum(m.sum(0), 1)
    return {
        "mae": (err.sum(0) / n).round(3).tolist(),
        "level_accuracy": (same.sum(0) / n).round(4).tolist(),
    }


def _meta(station, cfg, w: Windows, tr, va, hist: History, model, std, device, seconds, tz) -> dict:
    pred = artifacts.predict(model, va.x)
    point = pred[..., pred.shape[-1] // 2] if pred.ndim == 3 else pred
    persistence = np.repeat(va.last_pm25[:, None], va.y.shape[1], axis=1)
    dates = split_dates(cfg.window, w.origin[-1] + pd.Timedelta(hours=cfg.window.horizon), tz)
    return {
        "station": station,
        "timezone": tz,
        "config": cfg.to_dict(),
        "features": w.features,
        "scaler": w.scaler.to_dict(),
        "standard": std.key,
        "breakpoints": list(std.edges),
        "split": {k: str(v) for k, v in zip(("train_end", "val_end", "test_end"), dates, strict=True)},
        "data": {
            "first_origin": str(w.origin[0]),
            "last_origin": str(w.origin[-1]),
            "windows": {k: int((w.split == k).sum()) for k in ("train", "val", "test")},
        },
        "history": {k: getattr(hist, k) for k in ("train_loss", "val_loss", "val_mae", "val_level_acc")},
        "best_epoch": hist.best_epoch + 1,
        "epochs_run": len(hist.train_loss),
        "validation": {
            "model": horizon_metrics(va.y, point, std),
            "persistence": horizon_metrics(va.y, persistence, std),
        },
        "device": device,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(hist.samples_per_s, 1),
        "params": int(model.count_params()),
        "versions": {
            "aqi": "0.1.0",
            "tensorflow": tf.__version__,
            "keras": tf.keras.__version__ if hasattr(tf.keras, "__version__") else "",
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
        },
    }


def train_stations(data_dir: Path, station: str, cfg: Config, echo=print, **kw) -> list[dict]:
    """`--station all` trains every station in the store in turn."""
    names = stations(data_dir) if station == "all" else [station]
    if not names:
        raise AqiError(f"no stations in {Path(data_dir) / 'store'}; run `aqi ingest PATH` first")
    out = []
    for i, name in enumerate(names, 1):
        if len(names) > 1:
            echo(f"[{i}/{len(names)}] {name}")
        out.append(train_station(data_dir, name, cfg, echo=echo, **kw))
    return out
