"""A trained model: one record in memory (`TrainedModel`), one version folder on disk.

`models/<station>/versions/<v>/{model.keras, model.tflite, meta.json}`, made live by rewriting the
one-line `models/<station>/CURRENT` atomically, so the set can never be torn; meta.json carries the
resolved config (split dates filled in), the scaler, the time zone, the standard's whole table and the
sha256 of both model files, so forecast, evaluate and bench load everything from here and a torn set
is detected. A loaded model predicts through model.tflite (`exported`), without TensorFlow; the Keras
model is read only when asked for (`keras_model`: fine-tuning, scripts), and a model saved before
the LiteRT export existed predicts through it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aqi.checks import validate
from aqi.config import AqiError, Config
from aqi.datadir import NETWORK, STATION_RE, atomic_write_bytes, model_dir, models_dir, network_dir
from aqi.exported import LITE_FILE, Runner, export
from aqi.levels import Standard, get_standard
from aqi.prediction import Prediction, as_prediction, publish
from aqi.windows import Scaler, Split, Windows, build_windows, window_at

if TYPE_CHECKING:
    import keras

MODEL_FILE, META_FILE = "model.keras", "meta.json"
CURRENT, VERSIONS = "CURRENT", "versions"  # models/<station>/CURRENT names the live versions/<v>/


@dataclass(frozen=True)
class TrainedModel:
    station: str
    model: keras.Model | None  # None when loaded with a LiteRT file, until `keras_model()` reads it
    config: Config  # resolved: the split dates the model was trained with are filled in
    scaler: Scaler
    split: Split
    timezone: str
    standard: Standard
    info: dict = field(default_factory=dict)  # the rest of meta.json: features, history, validation…
    path: Path | None = None  # model folder, once saved or loaded
    sha256: str = ""  # of model.keras
    lite_sha256: str = ""  # of model.tflite
    runner: Runner | None = field(default=None, repr=False)  # the loaded model.tflite
    # a network model bound to one station (`resolve.bind`): the network's inputs for it, on a
    # UTC hourly index; None for a one-station model
    extra: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def quantile_levels(self) -> tuple[float, ...]:
        m = self.config.model
        return m.quantiles if m.head == "quantile" else ()

    def predict(self, x: np.ndarray, origin: np.ndarray | None, batch: int = 4096) -> Prediction:
        """Batched forward pass in inference mode over (N, L, F) scaled windows: through the
        LiteRT file once saved and loaded, else the Keras model. `origin` (N,) µg/m³: each window's
        PM2.5 at its origin (`Windows.last_pm25`, `window_at`'s), which the stay margins publish the
        level of; None (the point forecast only wanted): no margin is applied."""
        raw = self.runner(x, batch) if self.runner else predict(self.keras_model(), x, batch)
        pred = as_prediction(raw, self.config.model, self.standard)
        temperature = tuple(self.info.get("level_temperature", ()))
        return dataclasses.replace(pred, temperature=temperature, origin=origin)

    def keras_model(self) -> keras.Model:
        """The Keras model: the one trained in this process, else read from model.keras once
        (this imports TensorFlow)."""
        if self.model is None:
            object.__setattr__(self, "model", _read_keras(self.path / MODEL_FILE))
        return self.model

    def published(self, pred: Prediction, std: Standard, miss_cost: float | None = None):
        """The levels to publish (`publish`), with the per-horizon rules chosen on validation."""
        cost = self.config.decision.miss_cost if miss_cost is None else miss_cost
        if cost != 1.0 or std.key != self.standard.key:  # the rules were chosen at cost 1, here
            return publish(pred, std, cost)
        return publish(pred, std, cost, self.info.get("decided_horizons"), self.info.get("stay_margin"))

    def windows(self, df: pd.DataFrame, gap: int = 0) -> Windows:
        """Every window of `df` with this model's scaler and split dates (`gap`: build_windows)."""
        w = self.config.window
        return build_windows(df, w, self.timezone, self.scaler, self.split, self.extra, gap)

    def window_at(self, df: pd.DataFrame, at: pd.Timestamp | None = None, now=None):
        """(x (1, L, F), origin UTC, PM2.5 forecast from, staleness) at `at` (`window_at`)."""
        return window_at(df, self.config.window, self.timezone, self.scaler, at, self.extra, now)

    def meta(self) -> dict:
        return (
            self.info
            | {
                "station": self.station,
                "timezone": self.timezone,
                "config": self.config.to_dict(),
                "scaler": self.scaler.to_dict(),
                "standard": self.standard.key,
                "standard_table": self.standard.to_dict(),
                "breakpoints": list(self.standard.edges),
                "split": self.split.to_dict(),
            }
            | ({"model_sha256": self.sha256} if self.sha256 else {})
            | ({"lite_sha256": self.lite_sha256} if self.lite_sha256 else {})
        )

    def save(self, data_dir: Path) -> TrainedModel:
        """A new version folder (model.keras, re-read; the LiteRT export of what was read, checked
        against it, or `lite_error` in meta.json; then meta.json with the sha256 of both), then one
        atomic switch of CURRENT: a crash at any moment leaves the previous model live and whole."""
        d = network_dir(data_dir) if self.station == NETWORK else model_dir(data_dir, self.station)
        v = d / VERSIONS / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        v.mkdir(parents=True)
        try:
            self.keras_model().save(v / MODEL_FILE)
            why = export(_read_keras(v / MODEL_FILE), v / LITE_FILE)  # re-read before it goes live
            sha, lite = _sha256(v / MODEL_FILE), "" if why else _sha256(v / LITE_FILE)
            info = self.info | ({"lite_error": why} if why else {})
            saved = dataclasses.replace(self, path=v, sha256=sha, lite_sha256=lite, info=info)
            meta = json.loads(json.dumps(saved.meta(), default=_jsonable))  # as it reads back
            meta[META_SHA] = meta_digest(meta)
            atomic_write_bytes(v / META_FILE, json.dumps(meta, indent=2).encode())
            previous = live_folder(d)
            atomic_write_bytes(d / CURRENT, v.name.encode())  # the one step that makes it live
        except BaseException:
            shutil.rmtree(v, ignore_errors=True)
            raise
        _prune(d, keep={v.name, previous.name if previous else ""})
        return saved


def load(data_dir: Path, station: str) -> TrainedModel:
    return load_from(model_dir(data_dir, station), station)


def live_folder(station_dir: Path) -> Path | None:
    """The folder of the live version (CURRENT), the station folder itself for models saved before
    versions existed, or None. A CURRENT naming no version is returned itself: that model is torn,
    not absent, and `load_from` says so (read as "none", X would be trained alone beside it)."""
    pointer = station_dir / CURRENT
    if pointer.exists():
        name = pointer.read_text(errors="replace").strip()
        return station_dir / VERSIONS / name if STATION_RE.fullmatch(name) else pointer
    return station_dir if (station_dir / META_FILE).exists() else None


def _prune(station_dir: Path, keep: set[str]) -> None:
    """Remove version folders other than `keep` (the live one and the one before it) and the temp
    files of a killed writer (the train lock is held: no other writer is alive)."""
    for v in (station_dir / VERSIONS).iterdir():
        if v.name not in keep:
            shutil.rmtree(v, ignore_errors=True)
    for stale in station_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


# meta.json's keys that are fields of the record itself; the rest is its `info`
META_SHA = "meta_sha256"  # of meta.json's other keys: an edit by hand is caught, not half-read
RECORD = {"station", "timezone", "config", "scaler", "standard", "standard_table", "split"}
RECORD |= {"model_sha256", "lite_sha256", "breakpoints", META_SHA}


def meta_digest(meta: dict) -> str:
    """sha256 of a meta.json's keys other than its own digest, in a canonical order."""
    body = {k: v for k, v in meta.items() if k != META_SHA}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_from(station_dir: Path, station: str) -> TrainedModel:
    """The live model of a station folder (see `live_folder`), for `station` (named in messages)."""
    fix = "aqi train --station " + ("all" if Path(station_dir).name == NETWORK else station)
    d = _live(Path(station_dir), station, fix)
    try:
        meta = json.loads((d / META_FILE).read_text())
        missing = {"station", "timezone", "config", "scaler", "split", "standard"} - set(meta)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
        raise AqiError(f"{d / META_FILE}: corrupt ({e}); retrain: `{fix}`") from None
    if missing or not isinstance(meta, dict):
        raise AqiError(
            f"{d / META_FILE}: incomplete (no {', '.join(sorted(missing))}); retrain: `{fix}`"
        )
    if META_SHA in meta and meta[META_SHA] != meta_digest(meta):  # older models have none
        raise AqiError(f"{d / META_FILE}: edited after training (its digest differs); `{fix}`")
    sha, lite = _sha256(d / MODEL_FILE), meta.get("lite_sha256", "")
    if sha != meta.get("model_sha256"):
        raise AqiError(f"{d}: model.keras does not match meta.json (interrupted write?); `{fix}`")
    if lite and (not (d / LITE_FILE).exists() or _sha256(d / LITE_FILE) != lite):
        raise AqiError(f"{d}: {LITE_FILE} does not match meta.json (interrupted write?); `{fix}`")
    runner = Runner(d / LITE_FILE) if lite else None
    model = None if runner else _read_keras(d / MODEL_FILE)  # saved before the LiteRT export
    try:  # a model of a release before the digest, edited: one line, not a traceback
        tz = meta["timezone"]
        table = meta.get("standard_table")
        return TrainedModel(
            station=meta["station"],
            model=model,
            config=validate(Config.from_dict(meta["config"])),
            scaler=Scaler.from_dict(meta["scaler"]),
            split=Split.from_dict(meta["split"], tz),
            timezone=tz,
            standard=Standard.from_dict(table) if table else get_standard(meta["standard"]),
            info={k: v for k, v in meta.items() if k not in RECORD},
            path=d,
            sha256=sha,
            lite_sha256=lite,
            runner=runner,
        )
    except (KeyError, TypeError, ValueError, AttributeError, AqiError) as e:
        raise AqiError(f"{d / META_FILE}: invalid record ({e!r}); `{fix}`") from None


def _live(station_dir: Path, station: str, fix: str) -> Path:
    """The live version's folder; AqiError when CURRENT is torn or no model is there."""
    d = live_folder(station_dir) or station_dir
    if d == station_dir / CURRENT or (d != station_dir and not d.is_dir()):
        raise AqiError(f"{station_dir / CURRENT}: names no saved version (torn); `{fix}`")
    if not (d / META_FILE).exists() or not (d / MODEL_FILE).exists():
        raise AqiError(
            f"no trained model for station {station!r} in {station_dir.parent}; "
            f"run `aqi train --station {station}`"
        )
    return d


def live_meta(station_dir: Path) -> dict | None:
    """The live model's meta.json as read, without loading the model; None when there is no
    whole one (absent, torn or unreadable: `load_from` reports which when it is loaded)."""
    live = live_folder(station_dir)
    try:
        meta = json.loads((live / META_FILE).read_text()) if live else None
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_keras(path: Path) -> keras.Model:
    """model.keras, its custom layers registered (TensorFlow imported here, not by a forecast)."""
    from aqi.tfboot import import_tf

    import_tf()
    import keras

    import aqi.losses  # noqa: F401 - registers LevelLoss for safe_mode loading
    import aqi.model  # noqa: F401 - registers the custom layers

    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a damaged file
        raise AqiError(f"{path}: cannot be loaded ({type(e).__name__}); retrain") from None


def trained_stations(data_dir: Path) -> list[str]:
    root = models_dir(data_dir)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if STATION_RE.fullmatch(p.name) and live_folder(p))


def predict(model: keras.Model, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Forward pass in inference mode, batched: (N, L, F) → (N, H) or (N, H, Q) µg/m³."""
    if not len(x):
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.concatenate(
        [np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)]
    )


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
