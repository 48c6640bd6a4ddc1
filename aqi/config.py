"""Every default of aqi, in one place.

Frozen, typed dataclasses; each field says its unit or the reason for its value. Artifacts (the store
manifest, a model's meta.json) carry the dataclasses they were built with, so that later stages read
them back with `from_dict` instead of guessing.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar


class AqiError(Exception):
    """A user-facing error: bad input, a missing artifact. The CLI prints it on one line, exit code 2."""


T = TypeVar("T")

DATA_DIR_ENV = "AQI_DATA_DIR"  # overrides the default data directory
RAW_ENV = "AQI_RAW"  # folder of raw CSVs used by `make demo` when ../shared is absent

# Canonical measured columns of the store, in order. Units: µg/m³ for the six pollutants (CO too,
# as UCI publishes it), °C (temp, dewp), hPa (pres), mm per hour (rain), m/s (wspm), degrees (wd_deg).
POLLUTANTS = ("pm25", "pm10", "so2", "no2", "co", "o3")
WEATHER = ("temp", "pres", "dewp", "rain", "wspm", "wd_deg")
MEASURES = POLLUTANTS + WEATHER

# Physical plausibility bounds (lo, hi) per column; a value outside is invalid input. Loose on purpose:
# Beijing's worst hours reach ~1000 µg/m³ PM2.5, CO ~10 000 µg/m³; they only catch unit mistakes.
PHYSICAL_BOUNDS: dict[str, tuple[float, float]] = {
    "pm25": (0.0, 2000.0), "pm10": (0.0, 3000.0), "so2": (0.0, 2000.0), "no2": (0.0, 1000.0),
    "co": (0.0, 50000.0), "o3": (0.0, 1500.0), "temp": (-60.0, 60.0),
    "pres": (500.0, 1100.0),  # hPa; a monitor at 5,000 m reads ~550
    "dewp": (-80.0, 50.0), "rain": (0.0, 500.0), "wspm": (0.0, 100.0), "wd_deg": (0.0, 360.0),
}  # fmt: skip


TEST_MONTHS = 12  # months of test data when neither test_months nor val_end is given
MEDIAN = 0.5  # the quantile whose value a quantile head publishes as its point forecast


def median_index(quantiles) -> int:
    """Position of the median in a quantile head's last axis (validate() makes sure it is there)."""
    if MEDIAN not in quantiles:
        raise AqiError(
            f"quantiles {tuple(quantiles)}: no median ({MEDIAN}); retrain with --quantiles including it"
        )
    return list(quantiles).index(MEDIAN)


def default_data_dir() -> Path:
    """`$AQI_DATA_DIR`, else ./data: the one folder aqi writes to (store/, models/, reports/)."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


@dataclass(frozen=True)
class IngestConfig:
    invalid: str = "reject"  # 'reject' (exit 2) or 'missing' (set NaN): negative or out-of-bounds values
    hash_chunk: int = 1 << 20  # bytes read at a time when hashing source files
    # bytes of one source after decompression: a UCI station file is 2.5 MB, a year of one AQS
    # parameter for the whole US ~1 GB; a zip bomb stops here, before it is inflated
    max_bytes: int = 1 << 30
    max_ratio: int = 100  # decompressed / compressed size in a zip: CSV text deflates 5-20x
    max_line: int = 1 << 16  # bytes of one CSV line; real lines are < 300 bytes
    # a file that would change more than this share of a station's stored hours (present values
    # replaced by other present values) is refused unless --replace: it is the wrong station or file
    replace_share: float = 0.5
    # rows per station an ingest may bring and still be appended to the store's hourly delta layer
    # (one file, not one partition per station): an hourly job brings 1, a catch-up a few more
    hourly_rows: int = 6
    # delta files kept before an ingest folds them into the partitions (a week of hourly files;
    # `aqi compact` does it at a quiet hour, an ingest past this does it first)
    max_deltas: int = 168


@dataclass(frozen=True)
class WindowConfig:
    lookback: int = 24  # L, hours of past features: one diurnal cycle; 48 h overfit more (Beijing val)
    horizon: int = 24  # H, hours ahead predicted (t+1..t+H), the next-day forecast agencies publish
    max_gap: int = 3  # hours; shorter input gaps are forward-filled, longer ones drop the window
    # hours; a forecast through an outage carries each input's last value forward this long (the
    # PM2.5-missing flag set); a last observation older than this refuses the forecast
    stale_limit: int = 24
    # measured columns the model reads (their features); () = all. `aqi train` sets it to those
    # the station has on its train split: a column a feed never reports is no input
    inputs: tuple[str, ...] = ()
    # Chronological split on target time (local, inclusive ends). None = the last `test_months` of
    # data are test and the `val_months` before validation: for Beijing, train ≤ 2015-08-31 23:00,
    # validation 2015-09-01..2016-02-29, test 2016-03-01..2017-02-28.
    train_end: str | None = None
    val_end: str | None = None
    test_end: str | None = None
    # months; 0: no test split, validation ends at the last hour (the model that forecasts once the
    # test year has been scored: trained on the latest data, README "Keeping the model fresh")
    # None = TEST_MONTHS; given, it goes with no val_end (the split refuses both, whatever the value)
    test_months: int | None = None
    val_months: int = 6  # months of validation before the test split, when val_end is not given


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mlp"  # 'mlp' (flattened window) or 'gru' (recurrent); chosen on validation data
    hidden: int = 256  # units per hidden layer
    layers: int = 2  # hidden layers (mlp) or stacked recurrent layers (gru)
    dropout: float = 0.3  # fraction; the 2-year train split overfits within 2-3 epochs without it
    residual: bool = True  # predict a correction to the last observed PM2.5 (persistence + delta)
    # networks trained from seeds seed..seed+members-1 and averaged: on Beijing validation 3–5
    # members cut MAE by ~1 µg/m³ and lift level accuracy by ~1 point over a single network
    members: int = 5
    # 'point' (H values), 'quantile' (H x Q values) or 'level' (H x (1 + E): the point forecast and,
    # per breakpoint b_i of the standard, P(PM2.5 >= b_i), from which the published level is
    # decided). 'level' is the default: on Beijing validation (12 stations, US and China levels)
    # its published level beats the point forecast's level by 2-3 points at equal MAE.
    head: str = "level"
    # the level head reads the body's features without training them: pooled over 12 stations,
    # its log loss pulled the shared body away from the point forecast (val MAE 43.3 vs 42.3)
    detach_level: bool = False
    # units of the level head's own MLP (`layers` deep) on the window, beside the body's features;
    # 0 = a linear head on the body alone. Its log loss trains only this tower, never the body.
    # A network model's default is 256 (`network_defaults`)
    level_hidden: int = 0
    # dropout in that tower; negative = the body's `dropout` (0.2 or 0.8: China winter fold level
    # accuracy 0.553 / 0.550 vs 0.556 at the body's 0.6, README)
    level_dropout: float = -1.0
    # centre the level head's distribution on a learned blend of the point forecast and the PM2.5 at
    level_anchor: bool = False  # the origin. Off: China winter fold level accuracy 0.555 vs 0.556
    # mix the level distribution with a point mass on the level at the origin (persistence's), its
    level_persist: bool = False  # weight learned per example and hour. Off: US summer -0.4 (README)
    # levels of the quantile head, increasing, with the median among them (the point forecast)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class LossConfig:
    standard: str = "us-epa-2024"  # AQI table whose breakpoints the level loss counts
    # table whose breakpoints the point forecast's level term counts ("" = `standard`); the level
    term_standard: str = ""  # head learns `standard`'s, the levels it publishes
    alpha: float = 0.5  # weight of the level term; 1 - alpha goes to MAE
    # µg/m³, width of each tanh step: ~ hourly PM2.5 monitor noise (2–5 µg/m³), so the loss does not
    # reward precision finer than the instrument; 2·tau stays well inside the narrowest band (9 µg/m³).
    tau: float = 2.0
    tau_frac: float = 0.0  # if > 0: tau_i = tau_frac × width of the band below breakpoint i (µg/m³)
    # continuation: tau is tau_anneal × its value at the first epoch and shrinks geometrically to it
    # by the last, so early epochs see a level term whose gradient reaches every prediction
    tau_anneal: float = 1.0
    scale: float = 20.0  # µg/m³ of MAE worth one level: ~ Beijing's median band width (9–125)
    # weight of the level head's ordinal log loss (Σ_i binary cross-entropy of P(PM2.5 >= b_i)): ~1
    level_weight: float = 1.0  # puts it on the scale of the mixed loss (0.5-2 on Beijing)
    # weight of the log loss at the last horizon vs the first (linear, mean 1): > 1 spends the
    level_ramp: float = 1.0  # level head's capacity where the point forecast regresses to the mean
    # "ordinal": Σ_i log loss of P(PM2.5 >= b_i); "categorical": log loss of the observed level's
    level_loss: str = "ordinal"  # P(≥ b_k) - P(≥ b_k+1), what argmax publishes (network default)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8  # passes over the train split; the cosine schedule anneals over exactly these
    batch_size: int = 256  # global batch (all replicas together)
    lr: float = 1e-3  # peak learning rate
    optimizer: str = "adam"  # adam | adamw | sgd | nadam | rmsprop | lbfgs
    schedule: str = "cosine"  # cosine | exponential | constant
    lr_floor: float = 0.05  # share of lr the cosine schedule ends at: the last epoch still learns
    clipnorm: float | None = 1.0  # global gradient-norm clip; None disables
    weight_decay: float = 1e-4  # adamw only
    # momentum of a per-step moving average of the weights (0 = off); each epoch then ends on the
    ema: float = 0.0  # averaged weights, which validation scores and training continues from
    patience: int = 3  # epochs without validation-loss improvement tolerated (Keras' patience + 1)
    restore_best: bool = True  # end with the weights of the best validation epoch
    seed: int = 0  # weights, shuffling and dropout; deterministic on CPU
    device: str = "auto"  # auto | cpu | cpus:N | gpu | gpu:0,1
    # share of train windows added again with their last 1..stale_limit hours missing (a feed's
    # outage, `Hourly.windows(gap=)`), so the model learns to forecast through one
    gap_share: float = 0.0
    finetune_lbfgs: int = 0  # L-BFGS-B iterations after the first-order phase
    # epochs refitting a detached level head alone on the frozen body (early stopping on validation
    # loss). 0: with the categorical loss a tie (0.562 vs 0.561) for 77 % more training (README)
    level_epochs: int = 0
    lbfgs_max_samples: int = 20000  # full-batch L-BFGS-B uses at most this many windows (memory)


@dataclass(frozen=True)
class DecisionConfig:
    # Cost of publishing a level below the first unhealthy level when the hour reaches it, vs any
    miss_cost: float = 1.0  # other wrong level (1: the most probable; > 1 trades false alarms for hits)
    # per hour ahead, publish the level at the origin where the model prefers another by less than
    stay: bool = True  # a probability margin chosen on validation (`fit_stay`; README, issue 16)


@dataclass(frozen=True)
class GbmConfig:
    """The gradient-boosting baseline (LightGBM, one booster per hour ahead, pooled stations)."""

    learning_rate: float = 0.05  # shrinkage; with early stopping, lower only costs time
    num_leaves: int = 63  # tree size: ~250 k pooled Beijing rows support deep trees
    min_data_in_leaf: int = 200  # rows; keeps leaves from memorising one station's episode
    feature_fraction: float = 0.8  # columns sampled per tree (decorrelates the many lags)
    max_rounds: int = 2000  # boosting rounds at most; early stopping ends far sooner
    early_stopping: int = 50  # rounds without validation improvement
    max_bin: int = 127  # histogram bins per feature


@dataclass(frozen=True)
class NetworkConfig:
    """A network model: one network over many stations (`aqi train --station all`)."""

    stations: int = 0  # rows of the station embedding besides 'unknown'; 0 = a one-station model
    neighbours: int = 3  # other stations' PM2.5 series as inputs
    # how they are chosen: most correlated on the train split; "coordinates" = nearest by
    # great-circle distance; "auto" = by distance when every station has coordinates. On Beijing with
    # its real coordinates the two tie within 0.16 µg/m³ on two folds and both standards (README)
    neighbours_by: str = "correlation"
    network_mean: bool = True  # the mean PM2.5 of every other station as an input
    # daily means of the station's own PM2.5, 1..days days before each input hour. 0: with 6, five
    # networks each, mean validation MAE of the two folds was 34.59 vs 34.45 µg/m³ without (README)
    days: int = 0
    # the daily means feed the level head's own tower only, not the body (nor the point forecast).
    # Off: China winter fold, published level accuracy 0.552 vs 0.556 without (README)
    level_days: bool = False
    embed: int = 8  # width of the station embedding
    station_heads: bool = False  # per-station FiLM + offsets: within noise on validation (README)
    level_station: bool = False  # per-station correction of the level head's raw outputs (README)
    station_dropout: float = 0.1  # share of training windows shown as 'unknown' (cold start)
    # days; > 0: an epoch draws its windows by recency, weight halving every `recency` days of age.
    # Off: at 180 the summer fold's validation MAE was 0.7 µg/m³ worse, both standards (README)
    recency: float = 0.0
    min_overlap: int = 24 * 30  # hours two stations observed together on train for a correlation
    cold_days: int = 30  # days of a new station's history its neighbours are chosen on
    cold_overlap: int = 24 * 7  # hours of PM2.5 it needs in them
    cycle: int = 16  # stations streamed at once (tf.data interleave): bounds memory
    chunk: int = 256  # windows per read from one station before the next is interleaved
    shuffle_buffer: int = 16384  # windows mixed across the streamed stations


@dataclass(frozen=True)
class Config:
    window: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return cls(**{k: _build(kind, d.get(k, {})) for k, kind in SECTIONS.items()})

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A copy with fields of named sections replaced: cfg.replace(train={"epochs": 3})."""
        new = {k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items() if v}
        return dataclasses.replace(self, **new)

    def with_fields(self, **values: Any) -> Config:
        """A copy with fields set by name, whichever section holds them (field names are unique
        across sections): cfg.with_fields(epochs=3, alpha=0.9). Unknown names are ignored."""
        sections = {
            name: {k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(kind)}}
            for name, kind in SECTIONS.items()
        }
        return self.replace(**sections)


SECTIONS = {
    "window": WindowConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "decision": DecisionConfig,
    "network": NetworkConfig,
}


def network_defaults() -> Config:
    """A network model's defaults where they differ, chosen on validation (README): 12x the windows
    per epoch, so 2 epochs (the best was the first of 2 or 4 in every run), a larger batch; wider
    and far more dropout (val MAE 40.4 vs 42.1 at 256 units, dropout 0.3); the detached level head
    with its own 256-unit tower (level accuracy 0.485 / 0.516 vs 0.483 / 0.514 on the two folds);
    the point's level term on US EPA 2024 steps whatever the standard (China: 34.52 vs 34.68); the
    level head's categorical log loss (published level 0.561 / 0.524 vs 0.555 / 0.522, China)."""
    return Config().replace(
        train={"epochs": 2, "batch_size": 1024, "lr": 5e-4, "patience": 1},
        model={"detach_level": True, "hidden": 512, "dropout": 0.6, "level_hidden": 256},
        loss={"term_standard": "us-epa-2024", "level_loss": "categorical"},
    )


# `aqi train --station X` fine-tuning the network model: 1 epoch of X's windows at 1/5 of its lr
FINETUNE = {"epochs": 1, "lr": 1e-4, "batch_size": 256, "patience": 0}


def _build(kind: type[T], values: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
    return kind(**clean)
