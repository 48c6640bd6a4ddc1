"""A training job: the ensemble members of one model, trained by the loop on one data source.

`Job` does not care where windows come from: `train.WindowData` (one station's windows in memory) and
`train_network.StreamData` (many stations streamed by tf.data) give it the same few methods.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

import aqi
from aqi import metrics
from aqi.checkpoints import check_run, manager, resume_from, run_record
from aqi.concentrations import fit_temperature
from aqi.config import AqiError, Config
from aqi.devices import is_chief
from aqi.lbfgs import lbfgs_fit
from aqi.levels import Standard, level
from aqi.loop import Bar, Best, History, Loop, distribute, fit, make_optimizer
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model, ensemble, reseed
from aqi.prediction import as_prediction, fit_stay, publish
from aqi.term import console

VAL_BATCH = 4096  # windows per validation step: inference only, memory-bound not compute-bound
HISTORY = ("train_loss", "val_loss", "val_mae", "val_level_acc", "lbfgs", "level_refit")
EPOCH_SEEDS = 10_007  # member k's epoch e shuffles with seed (seed + k) * EPOCH_SEEDS + e


@dataclass(frozen=True)
class RunOptions:
    """How a run reports and where it keeps state; none of it changes the trained model."""

    quiet: bool = False  # no progress bars (batch jobs)
    tensorboard: Path | None = None  # folder for TensorBoard scalars, one run per member
    resume: bool = False  # continue from the last epoch checkpoint
    echo: Callable[[str], None] = print  # one-line messages
    resume_from: Path | None = None  # checkpoints to resume from, when not the ones it writes
    replace: bool = False  # a list of stations may replace a network model covering others


@contextmanager
def output_folder(data_dir: Path, chief_ckpt: Path, opts: RunOptions, what: str):
    """(data folder to write to, run options) for this process: the data folder itself for the
    chief (or a lone process); for another worker of a cluster, which trains in step with the
    chief, a scratch folder removed at the end, no TensorBoard, and --resume from `chief_ckpt`."""
    if is_chief():
        yield Path(data_dir), opts
        return
    with tempfile.TemporaryDirectory(prefix="aqi-worker-") as scratch:
        opts.echo(f"{what}: not the chief worker; writing to {scratch} (removed at the end)")
        yield Path(scratch), dataclasses.replace(opts, tensorboard=None, resume_from=chief_ckpt)


class Job:
    """What every ensemble member shares: data, strategy, loss, checkpoint root."""

    def __init__(self, cfg: Config, data, strategy, std: Standard, ckpt_root: Path, opts, start=None):
        self.cfg, self.data, self.strategy, self.std, self.ckpt_root, self.opts = (
            cfg, data, strategy, std, ckpt_root, opts,
        )  # fmt: skip
        self.start = start  # a trained model to continue from (fine-tuning), else fresh weights
        self.steps = -(-data.n_train // cfg.train.batch_size)
        self.val_ds = distribute(strategy, data.val_ds())

    def run(self, name: str, device: str):
        """Train every member; (their ensemble, meta.json's record of the run)."""
        n_tr, n_va, batch = self.data.n_train, self.data.n_val, self.cfg.train.batch_size
        if n_tr < batch or not n_va:
            raise AqiError(
                f"{name}: too little data ({n_tr} train / {n_va} validation windows "
                f"for --batch-size {batch})"
            )
        self.opts.echo(f"{name}: {n_tr:,} train / {n_va:,} validation windows on {device}")
        record = run_record(self.cfg, self.data.describe(), self.start)
        check_run(self.ckpt_root, self.opts.resume_from or self.ckpt_root, record, self.opts.resume)
        started = time.perf_counter()
        members = [self.member(k) for k in range(self.cfg.model.members)]
        with self.strategy.scope():
            model = ensemble([m for m, _ in members])
        hists = [h for _, h in members]
        return model, _info(self, hists, model, device, time.perf_counter() - started)

    def loss(self) -> LevelLoss:
        return LevelLoss.for_model(self.std, self.cfg)

    def val_point(self, model) -> np.ndarray:
        """(N, H) point forecasts of the validation windows, µg/m³."""
        return as_prediction(self.data.val_raw(model), self.cfg.model, self.std).point

    def score(self, model) -> tuple[float, float]:
        return metrics.pooled(self.data.val_targets()[0], self.val_point(model), self.std)

    def member(self, k: int):
        """Member k (seed + k): first-order training, then optional L-BFGS-B fine-tuning."""
        t = self.cfg.train
        tf.keras.utils.set_random_seed(t.seed + k)
        with self.strategy.scope():  # the loss's tau scale is a variable too
            loss = self.loss()
            model = self.start or build_model(self.cfg, len(self.data.features), self.data.scaler.pm25())
        if self.start is not None:
            reseed(model, t.seed + k)
        hist = History() if t.optimizer == "lbfgs" else self._first_order(model, loss, k)
        if t.level_epochs and self.cfg.model.head == "level" and self.cfg.model.detach_level:
            hist.level_refit = self._refit_level(model, k)
        if t.optimizer == "lbfgs" or t.finetune_lbfgs:
            hist.lbfgs = self._lbfgs(model, loss, k)
        return model, hist

    def _first_order(self, model, loss, k: int) -> History:
        """The custom loop, checkpointed each epoch; a finished checkpoint is taken whole on --resume."""
        cfg, t = self.cfg, self.cfg.train
        with self.strategy.scope():
            optimizer = make_optimizer(t, self.steps)
            loop = Loop(model, optimizer, loss, self.strategy, val_loss=self.loss())
            best = Best(model)
            ckpt = tf.train.Checkpoint(
                model=model, optimizer=optimizer, epoch=tf.Variable(0), done=tf.Variable(False),
                best=best,
            )  # fmt: skip
        ckpt_dir = self.ckpt_root / f"member-{k}"
        if not self.opts.resume:  # a fresh run never resumes a stale checkpoint of another config
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        saver = manager(ckpt, ckpt_dir)
        # a worker other than the chief resumes from the chief's checkpoints
        source = self.opts.resume_from / f"member-{k}" if self.opts.resume_from else ckpt_dir
        start = resume_from(ckpt, source, self.opts.echo) if self.opts.resume else 0
        if self.start is not None and not start:  # fine-tuning: an epoch must beat the start
            best.loss.assign(loop.val_loss_of(self.val_ds))
        if bool(ckpt.done.numpy()):  # finished before the interruption: its best weights stand
            return History(best_epoch=int(best.epoch.numpy()))
        train_ds = self._epochs((t.seed + k) * EPOCH_SEEDS, t.batch_size)
        label = f"member {k + 1}/{cfg.model.members} " if cfg.model.members > 1 else ""
        on_epoch = self._on_epoch(ckpt, saver, k, loss)
        loss.anneal(self._tau_factor(start))
        with Bar(self.steps, t.epochs, self.opts.quiet, label) as bar:
            bar.done = start
            n = self.data.n_train
            hist = fit(loop, train_ds, self.val_ds, t, n, start, on_epoch, bar, self.score, best)
        loss.anneal(1.0)  # whatever epoch early stopping ended at: later phases use the real tau
        ckpt.done.assign(True)
        saver.save(checkpoint_number=int(ckpt.epoch.numpy()) + 1)  # final (best) weights
        return hist

    def _epochs(self, seed: int, batch: int):
        """`train_ds(epoch)` for `fit`: each epoch its own order, the same in a resumed run."""
        return lambda epoch: distribute(self.strategy, self.data.train_ds(batch, seed + epoch))

    def _refit_level(self, model, k: int) -> dict:
        """More epochs of the level head alone, the body frozen (its features do not change, so
        neither does the point forecast); kept only while the validation loss falls."""
        t = self.cfg.train
        t = dataclasses.replace(t, epochs=t.level_epochs, patience=0, ema=0.0)
        frozen = [layer for layer in model.layers if not layer.name.startswith("level_")]
        for layer in frozen:
            layer.trainable = False
        try:
            with self.strategy.scope():
                loop = Loop(model, make_optimizer(t, self.steps), self.loss(), self.strategy)
                best = Best(model)
            best.loss.assign(self._val_loss(model, self.loss()))  # the head as the body left it
            seed = (self.cfg.train.seed + k) * EPOCH_SEEDS + self.cfg.train.epochs
            train_ds = self._epochs(seed, t.batch_size)
            with Bar(self.steps, t.epochs, self.opts.quiet, f"level head {k + 1} ") as bar:
                n, score = self.data.n_train, self.score_published
                h = fit(loop, train_ds, self.val_ds, t, n, 0, None, bar, score, best)
            if h.best_epoch < 0:  # no epoch improved on the head as it was
                model.set_weights([v.numpy() for v in best.weights])
        finally:
            for layer in frozen:
                layer.trainable = True
        return {"val_loss": h.val_loss, "val_level_acc": h.val_level_acc, "best_epoch": h.best_epoch + 1}

    def score_published(self, model) -> tuple[float, float]:
        """Validation (MAE µg/m³, the decided level's accuracy, mean over horizons)."""
        pred = as_prediction(self.data.val_raw(model), self.cfg.model, self.std)
        y = self.data.val_targets()[0]
        acc = metrics.per_horizon_levels(y, publish(pred, self.std, 1.0)[0], self.std)["level_accuracy"]
        return metrics.pooled(y, pred.point, self.std)[0], float(np.mean(acc))

    def _lbfgs(self, model, loss, k: int) -> dict:
        """Full-batch L-BFGS-B on up to lbfgs_max_samples train windows; kept only if the
        validation loss improves (the best weights are kept either way)."""
        t = self.cfg.train
        iters = t.finetune_lbfgs or 200
        tr = self.data.tr
        pick = np.random.default_rng(t.seed + k).permutation(len(tr))[: t.lbfgs_max_samples]
        before, weights = self._val_loss(model, loss), model.get_weights()
        columns = TextColumn(f"L-BFGS-B member {k + 1}"), BarColumn(), MofNCompleteColumn()
        with Progress(
            *columns, TextColumn("{task.fields[info]}"), console=console, disable=self.opts.quiet
        ) as bar:
            task = bar.add_task("", total=iters, info="")
            res = lbfgs_fit(
                model, loss, tr.x[pick], tr.y[pick], iters,
                on_iteration=lambda i, v: bar.update(task, completed=i, info=f"loss {v:.4f}"),
            )  # fmt: skip
        after = self._val_loss(model, loss)
        kept = bool(after < before)
        if not kept:
            model.set_weights(weights)
        self.opts.echo(
            f"L-BFGS-B member {k + 1}: {res.iterations} iterations in {res.seconds:.1f} s, "
            f"val loss {before:.4f} → {after:.4f}{'' if kept else ' (not kept)'}"
        )
        return {
            "iterations": res.iterations,
            "seconds": round(res.seconds, 2),
            "val_before": before,
            "val_after": after,
            "kept": kept,
            "train_losses": res.losses,
        }

    def _val_loss(self, model, loss) -> float:
        return float(np.mean(loss.call(self.data.val_targets()[0], self.data.val_raw(model))))

    def _tau_factor(self, epoch: int) -> float:
        """tau_anneal at epoch 0, shrinking geometrically to 1 at the last epoch and after it."""
        last = max(self.cfg.train.epochs - 1, 1)
        return self.cfg.loss.tau_anneal ** max(0.0, 1.0 - epoch / last)

    def _on_epoch(self, ckpt, saver, k: int, loss: LevelLoss):
        tb = self.opts.tensorboard
        writer = tf.summary.create_file_writer(str(Path(tb) / f"member-{k}")) if tb else None

        def on_epoch(epoch: int, h: History) -> None:
            ckpt.epoch.assign(epoch + 1)
            saver.save(checkpoint_number=epoch + 1)
            loss.anneal(self._tau_factor(epoch + 1))
            if writer:
                with writer.as_default(step=epoch + 1):
                    for name in ("train_loss", "val_loss", "val_mae", "val_level_acc"):
                        tf.summary.scalar(name, getattr(h, name)[-1])

        return on_epoch


def _info(job: Job, hists: list[History], model, device: str, seconds: float) -> dict:
    """What meta.json records about the run besides the model record itself."""
    y, pers = job.data.val_targets()
    return {
        **job.data.describe(),
        "history": [{k: getattr(h, k) for k in HISTORY} for h in hists],  # one per member
        "best_epoch": [h.best_epoch + 1 for h in hists],
        "epochs_run": [len(h.train_loss) for h in hists],
        "validation": {
            "model": metrics.per_horizon(y, job.val_point(model), job.std),
            "persistence": metrics.per_horizon(y, pers, job.std),
        },
        **_decision_rule(job, model),
        "device": device,
        "train_seconds": round(seconds, 2),
        "samples_per_s": round(max(h.samples_per_s for h in hists), 1),
        "params": int(model.count_params()),
        "versions": {
            "aqi": aqi.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
        },
    }


def _decision_rule(job: Job, model) -> dict:
    """Fitted on validation (miss cost 1): per horizon, whether the decided level beat the point's
    level (else the point's is published); the level head's temperatures (every argmax kept); per
    horizon the margin within which the level at the origin is published (`fit_stay`)."""
    pred = as_prediction(job.data.val_raw(model), job.cfg.model, job.std)
    decided, (y, pers) = publish(pred, job.std, 1.0), job.data.val_targets()
    if decided is None:
        return {}
    acc = metrics.per_horizon_levels(y, decided[0], job.std)["level_accuracy"]
    own = metrics.per_horizon_levels(y, level(pred.point, job.std), job.std)["level_accuracy"]
    rule = {"decided_horizons": [a > b for a, b in zip(acc, own, strict=True)], "val_decided": acc}
    if pred.exceed is not None:
        observed, seen = level(np.nan_to_num(y), job.std), np.isfinite(y)  # a NaN target is not seen
        rule["level_temperature"] = fit_temperature(pred.level_probabilities(job.std), observed, seen)
        pred = dataclasses.replace(pred, temperature=tuple(rule["level_temperature"]))
    if not job.cfg.decision.stay:
        return rule
    pred = dataclasses.replace(pred, origin=pers[:, 0])
    rule["stay_margin"] = fit_stay(pred, job.std, y, rule["decided_horizons"])
    levels = publish(pred, job.std, 1.0, rule["decided_horizons"], rule["stay_margin"])[0]
    return rule | {"val_published": metrics.per_horizon_levels(y, levels, job.std)["level_accuracy"]}
