"""The custom training loop: tf.GradientTape under a tf.distribute strategy, Keras 3 style.

`fit` is the loop (one screen, top to bottom); `train.py` wires data, model, strategy and artifacts.
Per-example losses are summed and divided by the *global* batch size (all-reduced across replicas, so
a last partial batch is averaged over the examples it really has): the same reduction as `model.fit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aqi.config import AqiError, TrainConfig
from aqi.losses import LevelLoss, tf
from aqi.term import console
from aqi.tfboot import import_tf

import_tf()
import keras  # noqa: E402


class NonFiniteLoss(AqiError):
    """Training diverged: a loss became NaN or infinite."""


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)  # per epoch
    val_loss: list[float] = field(default_factory=list)
    val_mae: list[float] = field(default_factory=list)  # µg/m³, over all horizons
    val_level_acc: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)  # every step, for parity checks
    best_epoch: int = -1
    samples_per_s: float = 0.0
    lbfgs: dict | None = None  # L-BFGS-B fine-tuning summary, when run
    level_refit: dict | None = None  # the level head's refit on the frozen body, when run


class Bar:
    """Rich progress: one line per epoch with loss, validation MAE and level accuracy, samples/s."""

    def __init__(self, steps: int, epochs: int, quiet: bool, label: str = ""):
        self.steps, self.epochs, self.label, self.done = steps, epochs, label, 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def step(self, loss: float) -> None:
        if self.task is None:  # made lazily: no empty line after an early stop
            name = f"{self.label}epoch {self.done + 1}/{self.epochs}"
            self.task = self.progress.add_task(name, total=self.steps, info="")
        self.progress.update(self.task, advance=1, info=f"loss {loss:.4f}")

    def epoch(self, epoch: int, h: History) -> None:
        info = (
            f"loss {h.train_loss[-1]:.4f}  val MAE {h.val_mae[-1]:.2f} µg/m³  "
            f"val level acc {h.val_level_acc[-1]:.3f}  {h.samples_per_s:,.0f} samples/s"
        )
        self.progress.update(self.task, completed=self.steps, info=info)
        self.task, self.done = None, epoch + 1


def make_optimizer(t: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Optimizer with its LR schedule; `clipnorm` clips the global gradient norm."""
    total = max(1, t.epochs * steps_per_epoch)
    lr = {
        "cosine": lambda: keras.optimizers.schedules.CosineDecay(t.lr, total, alpha=t.lr_floor),
        "exponential": lambda: keras.optimizers.schedules.ExponentialDecay(t.lr, steps_per_epoch, 0.9),
        "constant": lambda: t.lr,
    }[t.schedule]()
    kw = {"learning_rate": lr, "global_clipnorm": t.clipnorm}
    if t.ema > 0:
        kw |= {"use_ema": True, "ema_momentum": t.ema}
    return {
        "adam": lambda: keras.optimizers.Adam(**kw),
        "adamw": lambda: keras.optimizers.AdamW(weight_decay=t.weight_decay, **kw),
        "sgd": lambda: keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw),
        "nadam": lambda: keras.optimizers.Nadam(**kw),
        "rmsprop": lambda: keras.optimizers.RMSprop(**kw),
    }[t.optimizer]()


def dataset(x: np.ndarray, y: np.ndarray, batch: int, shuffle: bool, seed: int):
    """Batches of (x, y), shuffled by `seed` alone (one order per seed: a trainer gives each
    epoch its own seed, so epoch e has the same order in a resumed run)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=False)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def distribute(strategy, ds):
    """The dataset as the strategy wants it. The default (single-device) strategy takes the plain
    dataset: wrapping it in a distributed dataset costs ~13 % of CPU throughput for nothing."""
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return ds
    options = tf.data.Options()  # several workers: each reads every N-th example, so an epoch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


class Loop:
    """The compiled steps of one model/optimizer/loss under one strategy."""

    def __init__(self, model, optimizer, loss: LevelLoss, strategy, val_loss: LevelLoss | None = None):
        self.model, self.optimizer, self.loss, self.strategy = model, optimizer, loss, strategy
        self.val_loss_fn = val_loss or loss  # a separate one when training anneals the loss's tau
        with strategy.scope():
            # slot variables (Adam's m, v) made here, not lazily inside a replica's step, where
            # MirroredStrategy cannot create them
            optimizer.build(model.trainable_variables)
            self.train_loss = keras.metrics.Mean("loss")
            self.val_loss = keras.metrics.Mean("val_loss")

    def _global_mean(self, per_example):
        """Sum of per-example losses / global batch size (all replicas' examples together)."""
        n = tf.cast(tf.shape(per_example)[0], tf.float32)
        n_global = tf.distribute.get_replica_context().all_reduce("sum", n)
        return tf.reduce_sum(per_example) / n_global

    def _train_replica(self, x, y):
        with tf.GradientTape() as tape:
            pred = self.model(x, training=True)
            loss = self._global_mean(self.loss.call(y, pred))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss, tf.cast(tf.shape(y)[0], tf.float32)

    def _test_replica(self, x, y):
        """Per-replica (sum of per-example losses, examples)."""
        pred = self.model(x, training=False)
        return tf.reduce_sum(self.val_loss_fn.call(y, pred)), tf.cast(tf.shape(y)[0], tf.float32)

    @tf.function(reduce_retracing=True)  # the last partial batch has another shape
    def train_step(self, batch):
        loss, n = self.strategy.run(self._train_replica, args=batch)
        loss = self.strategy.reduce("sum", loss, axis=None)  # replicas' shares of the global mean
        self.train_loss.update_state(loss, sample_weight=self.strategy.reduce("sum", n, axis=None))
        return loss

    @tf.function(reduce_retracing=True)
    def test_step(self, batch):
        loss, n = (
            self.strategy.reduce("sum", s, axis=None)
            for s in self.strategy.run(self._test_replica, args=batch)
        )
        self.val_loss.update_state(loss / n, sample_weight=n)

    def val_loss_of(self, val_ds) -> float:
        """The validation loss over `val_ds` as an epoch measures it (test_step), from a reset."""
        self.val_loss.reset_state()
        for batch in val_ds:
            self.test_step(batch)
        return float(self.val_loss.result())

    def reset(self):
        for m in (self.train_loss, self.val_loss):
            m.reset_state()


class Best(tf.Module):
    """Early stopping's state (best validation loss, its epoch, its weights, epochs since), kept as
    variables so that it is checkpointed with the model: a resumed run ends as an uninterrupted one."""

    def __init__(self, model):
        super().__init__()
        self.loss, self.epoch = tf.Variable(np.inf), tf.Variable(-1)
        self.wait = tf.Variable(0)
        self.weights = [tf.Variable(w, trainable=False) for w in model.get_weights()]

    def update(self, model, loss: float, epoch: int) -> None:
        if not np.isfinite(loss) or loss >= float(self.loss.numpy()) - 1e-7:
            self.wait.assign_add(1)
            return
        self.loss.assign(loss)
        self.epoch.assign(epoch)
        self.wait.assign(0)
        for v, w in zip(self.weights, model.get_weights(), strict=True):
            v.assign(w)


def fit(
    loop: Loop,
    train_ds,
    val_ds,
    t: TrainConfig,
    n_train: int,
    start_epoch: int = 0,
    on_epoch: Callable[[int, History], None] | None = None,
    bar=None,
    score: Callable[[keras.Model], tuple[float, float]] | None = None,
    best: Best | None = None,
) -> History:
    """Epochs of train_step over `train_ds` (or `train_ds(epoch)`: each epoch's own order),
    test_step over `val_ds`; early stopping on validation loss with the best weights restored.
    `score(model)` gives the epoch's validation (MAE µg/m³, level accuracy) for the progress line.
    A non-finite loss raises NonFiniteLoss at once."""
    hist, busy = History(), 0.0
    best = best or Best(loop.model)
    for epoch in range(start_epoch, t.epochs):
        loop.reset()
        started = time.perf_counter()
        for batch in train_ds(epoch) if callable(train_ds) else train_ds:
            loss = float(loop.train_step(batch))
            if not np.isfinite(loss):
                raise NonFiniteLoss(
                    f"training stopped: loss became {loss} at epoch {epoch + 1}, "
                    f"step {len(hist.step_losses) + 1}; lower --lr or set --clipnorm"
                )
            hist.step_losses.append(loss)
            bar and bar.step(loss)
        busy += time.perf_counter() - started
        # the epoch ends on the weights' moving average (a no-op without `ema`)
        loop.optimizer.finalize_variable_values(loop.model.trainable_variables)
        for batch in val_ds:
            loop.test_step(batch)
        hist.train_loss.append(float(loop.train_loss.result()))
        hist.val_loss.append(float(loop.val_loss.result()))
        mae, acc = score(loop.model) if score else (np.nan, np.nan)
        hist.val_mae.append(mae)
        hist.val_level_acc.append(acc)
        best.update(loop.model, hist.val_loss[-1], epoch)
        hist.samples_per_s = n_train * (epoch + 1 - start_epoch) / max(busy, 1e-9)
        bar and bar.epoch(epoch, hist)
        on_epoch and on_epoch(epoch, hist)
        if int(best.wait.numpy()) > t.patience:
            break
    hist.best_epoch = int(best.epoch.numpy())  # -1: no epoch beat the start (`Best.loss` seeded)
    if t.restore_best and np.isfinite(float(best.loss.numpy())):
        loop.model.set_weights([v.numpy() for v in best.weights])
    return hist


def check_tensorboard(path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise AqiError(
            f"--tensorboard {path}: the tensorboard package is not installed "
            "(pip install 'aqi[tensorboard]')"
        )
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AqiError(f"--tensorboard {path}: not a writable folder ({e.strerror})") from None
