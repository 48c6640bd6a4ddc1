"""A trained model: one record in memory (`TrainedModel`), one folder on disk.

`models/<station>/model.keras` + `meta.json`, each written atomically; meta.json carries the resolved
config (split dates filled in), the scaler, the time zone, the standard's whole table and the sha256 of
model.keras, so forecast, evaluate and bench load everything from here and a torn pair is detected.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.config import AqiError, Config, median_index
from aqi.datadir import atomic_write_bytes, model_dir, models_dir
from aqi.levels import Standard, get_standard
from aqi.tfboot import import_tf
from aqi.windows import Scaler, Split, Windows, build_windows, window_at

import_tf()
import keras  # noqa: E402

import aqi.losses  # noqa: E402,F401 - registers LevelLoss for safe_mode loading
import aqi.model  # noqa: E402,F401 - registers the custom layers

MODEL_FILE, META_FILE = "model.keras", "meta.json"


@dataclass(frozen=True)
class Prediction:
    point: np.ndarray  # (N, H) µg/m³: the point head, or the median of the quantile head
    quantiles: np.ndarray | None = None  # (N, H, Q) µg/m³ with a quantile head


@dataclass(frozen=True)
class TrainedModel:
    station: str
    model: keras.Model
    config: Config  # resolved: the split dates the model was trained with are filled in
    scaler: Scaler
    split: Split
    timezone: str
    standard: Standard
    info: dict = field(default_factory=dict)  # the rest of meta.json: features, history, validation…
    path: Path | None = None  # model folder, once saved or loaded
    sha256: str = ""  # of model.keras

    @property
    def quantile_levels(self) -> tuple[float, ...]:
        m = self.config.model
        return m.quantiles if m.head == "quantile" else ()

    def predict(self, x: np.ndarray, batch: int = 4096) -> Prediction:
        """Batched forward pass in inference mode over (N, L, F) scaled windows."""
        return as_prediction(predict(self.model, x, batch), self.quantile_levels)

    def windows(self, df: pd.DataFrame) -> Windows:
        """Every window of `df` with this model's scaler and split dates."""
        return build_windows(df, self.config.window, self.timezone, self.scaler, self.split)

    def window_at(self, df: pd.DataFrame, at: pd.Timestamp | None = None):
        """(x (1, L, F), origin UTC, PM2.5 at the origin) for a forecast issued at `at`."""
        return window_at(df, self.config.window, self.timezone, self.scaler, at)

    def meta(self) -> dict:
        return self.info | {
            "station": self.station,
            "timezone": self.timezone,
            "config": self.config.to_dict(),
            "scaler": self.scaler.to_dict(),
            "standard": self.standard.key,
            "standard_table": self.standard.to_dict(),
            "breakpoints": list(self.standard.edges),
            "split": self.split.to_dict(),
        }

    def save(self, data_dir: Path) -> TrainedModel:
        """model.keras then meta.json, each by temp file + rename; meta records the model's sha256."""
        d = model_dir(data_dir, self.station)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".model-{uuid.uuid4().hex}.keras"
        try:
            self.model.save(tmp)
            sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
            keras.models.load_model(tmp, safe_mode=True)  # re-read before it goes live
            os.replace(tmp, d / MODEL_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        meta = self.meta() | {"model_sha256": sha}
        atomic_write_bytes(d / META_FILE, json.dumps(meta, indent=2, default=_jsonable).encode())
        return TrainedModel(**{**self.__dict__, "path": d, "sha256": sha})


def load(data_dir: Path, station: str) -> TrainedModel:
    d = model_dir(data_dir, station)
    if not (d / META_FILE).exists() or not (d / MODEL_FILE).exists():
        raise AqiError(
            f"no trained model for station {station!r} in {d.parent}; "
            f"run `aqi train --station {station}`"
        )
    meta = json.loads((d / META_FILE).read_text())
    sha = hashlib.sha256((d / MODEL_FILE).read_bytes()).hexdigest()
    if sha != meta.get("model_sha256"):
        raise AqiError(f"{d}: model.keras does not match meta.json (interrupted write?); retrain")
    model = keras.models.load_model(d / MODEL_FILE, safe_mode=True)
    tz = meta["timezone"]
    table = meta.get("standard_table")
    own = {"station", "timezone", "config", "scaler", "standard", "standard_table", "split"}
    return TrainedModel(
        station=meta["station"],
        model=model,
        config=Config.from_dict(meta["config"]),
        scaler=Scaler.from_dict(meta["scaler"]),
        split=Split.from_dict(meta["split"], tz),
        timezone=tz,
        standard=Standard.from_dict(table) if table else get_standard(meta["standard"]),
        info={k: v for k, v in meta.items() if k not in own | {"model_sha256", "breakpoints"}},
        path=d,
        sha256=sha,
    )


def trained_stations(data_dir: Path) -> list[str]:
    root = models_dir(data_dir)
    return sorted(p.name for p in root.iterdir() if (p / META_FILE).exists()) if root.exists() else []


def predict(model: keras.Model, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Forward pass in inference mode, batched: (N, L, F) → (N, H) or (N, H, Q) µg/m³."""
    if not len(x):
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.concatenate(
        [np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)]
    )


def as_prediction(raw: np.ndarray, quantiles: tuple[float, ...]) -> Prediction:
    """A head's raw output, (N, H) or (N, H, Q) µg/m³, as point forecast (+ quantiles)."""
    if raw.ndim == 2:
        return Prediction(raw)
    return Prediction(raw[..., median_index(quantiles)], raw)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
