"""`aqi train`: one station's windows → model under the chosen strategy → artifacts.

Nothing under models/<station>/ changes unless training finishes with finite losses; the per-epoch
checkpoints (ckpt/) let `--resume` continue an interrupted run.
"""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from aqi import artifacts
from aqi.config import AqiError, Config, validate
from aqi.devices import select_strategy
from aqi.lbfgs import lbfgs_fit
from aqi.levels import get_standard, level
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model
from aqi.store import read_station, station_timezone, stations
from aqi.term import console
from aqi.train import Bar, History, Loop, dataset, distribute, fit, make_optimizer
from aqi.windows import Windows, build_windows, split_dates


def train_station(
    data_dir: Path,
    station: str,
    cfg: Config,
    quiet: bool = False,
    tensorboard: Path | None = None,
    resume: bool = False,
    echo=print,
) -> dict:
    """Train one station's ensemble of `cfg.model.members` networks (seeds seed, seed+1, …) and
    save their average as one model; returns the meta.json written beside model.keras."""
    validate(cfg)
    if tensorboard:
        _check_tensorboard(tensorboard)
    std = get_standard(cfg.loss.standard)
    strategy, device = select_strategy(cfg.train.device)
    tf.config.experimental.enable_op_determinism()
    tz = station_timezone(data_dir, station)
    w = build_windows(read_station(data_dir, station), cfg.window, tz)
    tr, va = w.part("train"), w.part("val")
    if len(tr) < cfg.train.batch_size or not len(va):
        raise AqiError(
            f"station {station}: too little data ({len(tr)} train / {len(va)} validation "
            f"windows for --batch-size {cfg.train.batch_size})"
        )
    echo(f"{station}: {len(tr):,} train / {len(va):,} validation windows on {device}")
    started = time.perf_counter()
    job = Job(
        cfg,
        w,
        tr,
        va,
        strategy,
        std,
        artifacts.model_dir(data_dir, station) / "ckpt",
        quiet,
        tensorboard,
    )
    members = [job.member(k, resume, echo) for k in range(cfg.model.members)]
    with strategy.scope():
        model = ensemble([m for m, _ in members])
    seconds = time.perf_counter() - started
    meta = _meta(station, cfg, w, va, [h for _, h in members], model, std, device, seconds, tz)
    artifacts.save(model, meta, data_dir, station)
    return meta


class Job:
    """What every ensemble member of one station shares: data, strategy, loss, checkpoint root."""

    def __init__(self, cfg, w, tr, va, strategy, std, ckpt_root: Path, quiet: bool, tensorboard):
        self.cfg, self.w, self.tr, self.va, self.strategy = cfg, w, tr, va, strategy
        self.std, self.ckpt_root, self.quiet, self.tensorboard = std, ckpt_root, quiet, tensorboard
        self.steps = -(-len(tr) // cfg.train.batch_size)
        self.val_ds = distribute(strategy, dataset(va.x, va.y, 4096, False, 0))

    def loss(self) -> LevelLoss:
        m = self.cfg.model
        return LevelLoss.from_standard(
            self.std, self.cfg.loss, quantiles=m.quantiles if m.head == "quantile" else ()
        )

    def member(self, k: int, resume: bool, echo):
        """Member k (seed + k): first-order training, then optional L-BFGS-B fine-tuning."""
        t, loss = self.cfg.train, self.loss()
        tf.keras.utils.set_random_seed(t.seed + k)
        with self.strategy.scope():
            model = build_model(
                self.cfg,
                len(self.w.features),
                (float(self.w.scaler.mean[0]), float(self.w.scaler.std[0])),
            )
        hist = History() if t.optimizer == "lbfgs" else self._first_order(model, loss, k, resume, echo)
        if t.optimizer == "lbfgs" or t.finetune_lbfgs:
            hist.lbfgs = self._lbfgs(model, loss, k, echo)
        return model, hist

    def _first_order(self, model, loss, k: int, resume: bool, echo) -> History:
        """The custom loop, checkpointed each epoch; a finished checkpoint is taken whole on --resume."""
        cfg, t = self.cfg, self.cfg.train
        with self.strategy.scope():
            optimizer = make_optimizer(t, self.steps)
            loop = Loop(model, optimizer, loss, self.strategy)
            ckpt = tf.train.Checkpoint(
                model=model, optimizer=optimizer, epoch=tf.Variable(0), done=tf.Variable(False)
            )
        ckpt_dir = self.ckpt_root / f"member-{k}"
        if not resume:  # a fresh run never resumes a stale checkpoint of another configuration
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        manager = tf.train.CheckpointManager(ckpt, ckpt_dir, 2)
        start = _resume(ckpt, manager, echo) if resume else 0
        if bool(ckpt.done.numpy()):
            return History(best_epoch=int(ckpt.epoch.numpy()) - 1)
        train_ds = distribute(
            self.strategy, dataset(self.tr.x, self.tr.y, t.batch_size, True, t.seed + k)
        )
        label = f"member {k + 1}/{cfg.model.members} " if cfg.model.members > 1 else ""
        with Bar(self.steps, t.epochs, self.quiet, label) as bar:
            bar.done = start
            hist = fit(
                loop,
                train_ds,
                self.val_ds,
                t,
                len(self.tr),
                start,
                self._on_epoch(ckpt, manager, k),
                bar,
            )
        ckpt.done.assign(True)
        manager.save(checkpoint_number=int(ckpt.epoch.numpy()) + 1)  # final (best) weights
        return hist

    def _lbfgs(self, model, loss, k: int, echo) -> dict:
        """Full-batch L-BFGS-B on up to lbfgs_max_samples train windows; kept only if the
        validation loss improves (the best weights are kept either way)."""
        t = self.cfg.train
        iters = t.finetune_lbfgs or 200
        rng = np.random.default_rng(t.seed + k)
        pick = rng.permutation(len(self.tr))[: t.lbfgs_max_samples]
        before, weights = self._val_loss(model, loss), model.get_weights()
        with Progress(
            TextColumn(f"L-BFGS-B member {k + 1}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=self.quiet,
        ) as bar:
            task = bar.add_task("", total=iters, info="")
            res = lbfgs_fit(
                model,
                loss,
                self.tr.x[pick],
                self.tr.y[pick],
                iters,
                on_iteration=lambda i, v: bar.update(task, completed=i, info=f"loss {v:.4f}"),
            )
        after = self._val_loss(model, loss)
        if not after < before:
            model.set_weights(weights)
        echo(
            f"L-BFGS-B member {k + 1}: {res.iterations} iterations in {res.seconds:.1f} s, "
            f"val loss {before:.4f} → {after:.4f}{'' if after < before else ' (not kept)'}"
        )
        return {
            "iterations": res.iterations,
            "seconds": round(res.seconds, 2),
            "val_before": before,
            "val_after": after,
            "kept": bool(after < before),
            "train_losses": res.losses,
        }

    def _val_loss(self, model, loss) -> float:
        pred = artifacts.predict(model, self.va.x)
        return float(np.mean(loss.call(self.va.y, pred)))

    def _on_epoch(self, ckpt, manager, k: int):
        writer = (
            tf.summary.create_file_writer(str(Path(self.tensorboard) / f"member-{k}"))
            if self.tensorboard
            else None
        )

        def on_epoch(epoch: int, h: History) -> None:
            ckpt.epoch.assign(epoch + 1)
            manager.save(checkpoint_number=epoch + 1)
            if writer:
                with writer.as_default(step=epoch + 1):
                    for name in ("train_loss", "val_loss", "val_mae", "val_level_acc"):
                        tf.summary.scalar(name, getattr(h, name)[-1])

        return on_epoch


def ensemble(models: list) -> keras.Model:
    """One model averaging the members' outputs (µg/m³); a single member is returned as it is."""
    if len(models) == 1:
        return models[0]
    x = keras.Input(models[0].input_shape[1:], name="window")
    for i, m in enumerate(models):
        m.name = f"member_{i}"
    return keras.Model(
        x, keras.layers.Average(name="pm25_mean")([m(x) for m in models]), name="aqi_ensemble"
    )


def _check_tensorboard(path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise AqiError(
            f"--tensorboard {path}: the tensorboard package is not installed "
            "(pip install 'aqi[tensorboard]')"
        )


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


def _meta(station, cfg, w: Windows, va, hists: list[History], model, std, device, seconds, tz) -> dict:
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
        "history": [
            {k: getattr(h, k) for k in ("train_loss", "val_loss", "val_mae", "val_level_acc", "lbfgs")}
            for h in hists
        ],  # one entry per ensemble member
        "best_epoch": [h.best_epoch + 1 for h in hists],
        "epochs_run": [len(h.train_loss) for h in hists],
        "validation": {
            "model": horizon_metrics(va.y, point, std),
            "persistence": horizon_metrics(va.y, persistence, std),
        },
        "device": device,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(max(h.samples_per_s for h in hists), 1),
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
