"""`aqi train`: one station's windows → an ensemble trained by the loop → one saved `TrainedModel`.

Nothing under models/<station>/ changes unless training finishes with finite losses; the per-epoch
checkpoints (ckpt/) let `--resume` continue an interrupted run.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqi import shards
from aqi.checks import check_size, validate
from aqi.config import MEASURES, AqiError, Config
from aqi.datadir import exclusive, model_dir
from aqi.devices import select_strategy
from aqi.features import N_FEATURES
from aqi.job import VAL_BATCH, Job, RunOptions, output_folder
from aqi.levels import get_standard
from aqi.loop import check_tensorboard, dataset
from aqi.losses import tf
from aqi.store import read_station, station_timezone, stations
from aqi.trained import TrainedModel, predict
from aqi.windows import Split, Windows, build_windows

TRAIN_LOCK = ".train.lock"  # in models/<station>/: one training of a model at a time


def train_station(
    data_dir: Path,
    station: str,
    cfg: Config,
    quiet: bool = False,
    tensorboard: Path | None = None,
    resume: bool = False,
    echo=print,
) -> dict:
    """Train one station's ensemble of `cfg.model.members` networks (seeds seed, seed+1, …), save
    their average as one model and return the meta.json written beside model.keras."""
    validate(cfg)
    if tensorboard:
        check_tensorboard(tensorboard)
    df = read_station(data_dir, station)  # an unknown station fails before anything is made
    check_size(cfg, N_FEATURES, len(df), f"station {station}")
    opts, chief_ckpt = (
        RunOptions(quiet, tensorboard, resume, echo),
        model_dir(data_dir, station) / "ckpt",
    )
    busy = f"station {station}: another `aqi train` is writing this model"
    with (
        output_folder(data_dir, chief_ckpt, opts, station) as (out, opts),
        exclusive(model_dir(out, station), TRAIN_LOCK, busy),
    ):
        return _train_locked(data_dir, station, cfg, df, opts, out)


def _train_locked(data_dir: Path, station: str, cfg: Config, df, opts, out: Path) -> dict:
    """Train and save; `out` is the data folder written to (`job.output_folder`)."""
    std = get_standard(cfg.loss.standard)
    strategy, device = select_strategy(cfg.train.device)
    tf.config.experimental.enable_op_determinism()
    tz = station_timezone(data_dir, station)
    cfg = with_inputs(cfg, df, tz, opts.echo, station)
    w = build_windows(df, cfg.window, tz)
    cfg = cfg.replace(window=w.dates.to_dict())  # resolved: what meta.json and run.json record
    data = WindowData(with_outages(df, cfg, tz, w), w.part("val"), w)
    job = Job(cfg, data, strategy, std, model_dir(out, station) / "ckpt", opts)
    model, info = job.run(station, device)
    saved = TrainedModel(station, model, cfg, w.scaler, w.dates, tz, std, info).save(out)
    shutil.rmtree(model_dir(out, station) / "ckpt", ignore_errors=True)  # a later --resume: afresh
    return saved.meta()


def with_inputs(cfg: Config, df, tz: str, echo, station: str) -> Config:
    """`cfg` reading only the measured columns the station has on its train split (PM2.5 always)."""
    dates = Split.resolve(cfg.window, df["time"].iloc[-1], tz)
    train = df[df["time"] <= dates.train_end]
    have = tuple(c for c in MEASURES if c == "pm25" or train[c].notna().any())
    if len(have) < len(MEASURES):
        echo(f"{station}: no data, so no input: {', '.join(c for c in MEASURES if c not in have)}")
    return cfg.replace(window={"inputs": have})


def with_outages(df, cfg: Config, tz: str, w: Windows) -> Windows:
    """The train windows, and again `gap_share` of them as if their last 1..stale_limit hours were
    missing (a feed's outage; `Hourly.windows`), drawn with the training seed."""
    tr = w.part("train")
    share, limit = cfg.train.gap_share, cfg.window.stale_limit
    if not share or not limit:
        return tr
    rng = np.random.default_rng(cfg.train.seed)
    gaps = rng.integers(1, limit + 1, len(w))
    picked = (w.split == "train") & (rng.random(len(w)) < share)
    gapped = build_windows(df, cfg.window, tz, w.scaler, w.dates, gap=gaps)
    x, y = np.concatenate([tr.x, gapped.x[picked]]), np.concatenate([tr.y, gapped.y[picked]])
    return dataclasses.replace(
        tr, x=x, y=y, origin=tr.origin.append(gapped.origin[picked]),
        last_pm25=np.concatenate([tr.last_pm25, gapped.last_pm25[picked]]),
        split=np.concatenate([tr.split, gapped.split[picked]]),
    )  # fmt: skip


@dataclass
class WindowData:
    """One station's windows in memory: what a Job trains on and validates with."""

    tr: Windows
    va: Windows
    w: Windows

    @property
    def n_train(self) -> int:
        return len(self.tr)

    @property
    def n_val(self) -> int:
        return len(self.va)

    def train_ds(self, batch: int, seed: int):
        return dataset(self.tr.x, self.tr.y, batch, True, seed)

    def val_ds(self):
        return dataset(self.va.x, self.va.y, VAL_BATCH, False, 0)

    def val_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(y, persistence), both (N, H) µg/m³, of the validation windows."""
        return self.va.y, self.va.persistence()

    def val_raw(self, model) -> np.ndarray:
        return predict(model, self.va.x)

    @property
    def features(self) -> list[str]:
        return self.w.features

    @property
    def scaler(self):
        return self.w.scaler

    def describe(self) -> dict:
        w = self.w
        return {
            "features": w.features,
            "data": {
                "first_origin": str(w.origin[0]),
                "last_origin": str(w.origin[-1]),
                "windows": {k: int((w.split == k).sum()) for k in ("train", "val", "test")},
            },
        }


def train_stations(
    data_dir: Path, station: str, cfg: Config, echo=print, shard: str | None = None, **kw
) -> list[dict]:
    """`--station all` trains every station in the store (or in its `--shard`) in turn."""
    names = shards.pick(stations(data_dir), shard) if station == "all" else [station]
    if not names:
        raise AqiError(f"no stations in {Path(data_dir) / 'store'}; run `aqi ingest PATH` first")
    out, failed = [], []
    for i, name in enumerate(names, 1):
        if len(names) > 1:
            echo(f"[{i}/{len(names)}] {name}")
        try:
            out.append(train_station(data_dir, name, cfg, echo=echo, **kw))
        except AqiError as e:  # one station's bad data must not stop the others' training
            if len(names) == 1:
                raise
            failed.append(f"{name}: {e}")
    if failed:
        raise AqiError("; ".join(failed) + f" (the other {len(out)} were trained)")
    return out
