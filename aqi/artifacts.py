"""A trained station model on disk: `models/<station>/model.keras` + `meta.json`, written atomically.

meta.json carries everything forecast and evaluate need (config, features, scaler, standard, loss,
split dates, metrics, library versions) and the sha256 of model.keras, so a torn pair is detected.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from aqi.config import AqiError, Config
from aqi.store import atomic_write_bytes
from aqi.tfboot import import_tf
from aqi.windows import Scaler

import_tf()
import keras  # noqa: E402

import aqi.losses  # noqa: E402,F401 - registers LevelLoss for safe_mode loading
import aqi.model  # noqa: E402,F401 - registers the custom layers


def model_dir(data_dir: Path, station: str) -> Path:
    return Path(data_dir) / "models" / station


def trained_stations(data_dir: Path) -> list[str]:
    root = Path(data_dir) / "models"
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").exists()) if root.exists() else []


def save(model: keras.Model, meta: dict, data_dir: Path, station: str) -> Path:
    """model.keras then meta.json, each by temp file + rename; meta records the model's sha256."""
    d = model_dir(data_dir, station)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".model-{uuid.uuid4().hex}.keras"
    try:
        model.save(tmp)
        data = tmp.read_bytes()
        meta = meta | {"model_sha256": hashlib.sha256(data).hexdigest()}
        keras.models.load_model(tmp, safe_mode=True)  # re-read before it goes live
        os.replace(tmp, d / "model.keras")
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(d / "meta.json", json.dumps(meta, indent=2, default=_jsonable).encode())
    return d


def load(data_dir: Path, station: str) -> tuple[keras.Model, dict]:
    d = model_dir(data_dir, station)
    if not (d / "meta.json").exists() or not (d / "model.keras").exists():
        raise AqiError(
            f"no trained model for station {station!r} in {d.parent}; "
            f"run `aqi train --station {station}`"
        )
    meta = json.loads((d / "meta.json").read_text())
    data = (d / "model.keras").read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("model_sha256"):
        raise AqiError(f"{d}: model.keras does not match meta.json (interrupted write?); retrain")
    return keras.models.load_model(d / "model.keras", safe_mode=True), meta


def config_of(meta: dict) -> Config:
    return Config.from_dict(meta["config"])


def scaler_of(meta: dict) -> Scaler:
    return Scaler.from_dict(meta["scaler"])


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
