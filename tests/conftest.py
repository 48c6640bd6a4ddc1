"""Shared fixtures and data builders: small synthetic CSVs in the UCI layout, store-shaped frames,
array problems for the loop, the one tiny config, and the real Beijing data when present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# as `cpus.limit` sets it for a command, before any test loads OpenMP (LightGBM reads it then):
# spinning threads made evaluate tests run past their time limit beside another GBM fit (README)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BEIJING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beijing-multisite"
UCI_COLS = [
    "No",
    "year",
    "month",
    "day",
    "hour",
    "PM2.5",
    "PM10",
    "SO2",
    "NO2",
    "CO",
    "O3",
    "TEMP",
    "PRES",
    "DEWP",
    "RAIN",
    "wd",
    "WSPM",
    "station",
]

needs_beijing = pytest.mark.skipif(not BEIJING.is_dir(), reason="../shared Beijing data not present")


def uci_frame(
    station: str = "Alpha", start: str = "2016-01-01", hours: int = 48, seed: int = 0
) -> pd.DataFrame:
    """A small frame in the UCI Beijing layout (local time), values in plausible ranges."""
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=hours, freq="h")
    df = pd.DataFrame(
        {
            "No": np.arange(1, hours + 1),
            "year": t.year,
            "month": t.month,
            "day": t.day,
            "hour": t.hour,
        }
    )
    for col, hi in [
        ("PM2.5", 300),
        ("PM10", 400),
        ("SO2", 50),
        ("NO2", 100),
        ("CO", 3000),
        ("O3", 150),
    ]:
        df[col] = rng.integers(3, hi, hours).astype(float)
    df["TEMP"] = rng.normal(10, 5, hours).round(1)
    df["PRES"] = rng.normal(1015, 5, hours).round(1)
    df["DEWP"] = rng.normal(-5, 5, hours).round(1)
    df["RAIN"] = 0.0
    df["wd"] = rng.choice(["N", "NE", "E", "SW", "C"], hours)
    df["WSPM"] = rng.uniform(0, 5, hours).round(1)
    df["station"] = station
    return df[UCI_COLS]


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, na_rep="NA")
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root (hidden lock files excluded): 'the store is untouched'."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture
def uci_csv(tmp_path: Path) -> Path:
    return write_csv(uci_frame(), tmp_path / "raw" / "PRSA_Data_Alpha.csv")


def learnable_frame(station: str = "Synth", days: int = 120, seed: int = 0) -> pd.DataFrame:
    """UCI-layout hourly data whose PM2.5 has a diurnal cycle and AR(1) episodes: learnable, so a
    model must beat persistence at horizons beyond a few hours."""
    rng = np.random.default_rng(seed)
    df = uci_frame(station, "2016-01-01", days * 24, seed)
    hours = np.arange(days * 24)
    ar = np.zeros(len(hours))
    for i in range(1, len(ar)):
        ar[i] = 0.97 * ar[i - 1] + rng.normal(0, 4)
    df["PM2.5"] = np.clip(60 + 30 * np.sin(2 * np.pi * hours / 24) + ar, 1, 900).round(1)
    return df


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory) -> Path:
    """A data dir whose store holds station Synth: 120 days of learnable hourly data."""
    from aqi.ingest import ingest

    d = tmp_path_factory.mktemp("synth")
    ingest([write_csv(learnable_frame(), d / "raw" / "synth.csv")], d / "data")
    return d / "data"


def tiny_config(**train):
    """The suite's one small config: 24 h in, 6 h out, 16 units, one member; split by explicit dates
    that fit `learnable_frame` (2016-01-01 + 120 days)."""
    from aqi.config import Config

    return Config().replace(
        window={
            "lookback": 24,
            "horizon": 6,
            "train_end": "2016-03-20 23:00",
            "val_end": "2016-04-09 23:00",
            "test_end": "2016-04-29 23:00",
        },
        model={"hidden": 16, "layers": 1, "dropout": 0.0, "members": 1},
        train={"epochs": 2, "batch_size": 64, "device": "cpu"} | train,
    )


# Store-shaped frames (what store.read_station returns), for window arithmetic.
TZ = "Asia/Shanghai"


def series(hours: int, start="2016-01-01 00:00", pm=None) -> pd.DataFrame:
    """Store-shaped frame whose PM2.5 at hour i is i + 1 (every value unique: leaks are visible)."""
    from aqi.config import MEASURES

    t = pd.date_range(pd.Timestamp(start, tz=TZ).tz_convert("UTC"), periods=hours, freq="h")
    df = pd.DataFrame({"time": t})
    for c in MEASURES:
        df[c] = np.float32(1.0)
    df["pm25"] = np.arange(1, hours + 1, dtype=np.float32) if pm is None else pm
    return df


# Array problems for the loop: (n, L, F) inputs → (n, H) targets, no store involved.
L, H, F = 6, 3, 5


def problem(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, L, F)).astype(np.float32)
    y = (40 + 30 * x[:, -1, :1] + 10 * x[:, -2, 1:2] + rng.normal(0, 3, (n, H))).astype(np.float32)
    y[3, 1] = np.nan  # a masked target
    return x, np.maximum(y, 0)


def array_config(**train):
    """tiny_config reshaped for `problem`: L, H above, 8 units, constant lr, no early stopping."""
    fixed = {"batch_size": 16, "schedule": "constant", "clipnorm": None, "lr": 1e-2}
    fixed |= {"patience": 99, "restore_best": False}
    return tiny_config(**fixed | train).replace(
        window={"lookback": L, "horizon": H}, model={"hidden": 8, "head": "point"}
    )


def two_models(cfg):
    """Two models of `cfg` with identical initial weights."""
    from aqi.model import build_model

    a = build_model(cfg, F, (40.0, 30.0))
    b = build_model(cfg, F, (40.0, 30.0))
    b.set_weights(a.get_weights())
    return a, b


# A network of stations: `aqi train` options of a tiny network model, and a store + model built once.
NETWORK_DATES = {
    "train_end": "2016-03-20 23:00",
    "val_end": "2016-04-09 23:00",
    "test_end": "2016-04-29 23:00",
}
NETWORK_TINY = [
    *("--epochs", "1", "--members", "1", "--hidden", "8", "--layers", "1", "--batch-size", "64"),
    *("--level-hidden", "4"),
    *("--horizon", "6", "--device", "cpu"),
    *(x for k, v in NETWORK_DATES.items() for x in (f"--{k.replace('_', '-')}", v)),
]


@pytest.fixture(scope="session")
def network_store(tmp_path_factory):
    """Three learnable stations (B follows A with noise, C its own) and a fourth, D, kept out of
    training for the cold start; the network model trained on A, B, C."""
    from aqi.ingest import ingest

    d = tmp_path_factory.mktemp("network")
    a = learnable_frame("A", seed=0)
    b = learnable_frame("B", seed=0)
    b["PM2.5"] = (b["PM2.5"] * 1.1 + np.random.default_rng(1).normal(0, 3, len(b))).clip(1).round(1)
    frames = [a, b, learnable_frame("C", seed=2), learnable_frame("D", seed=3)]
    ingest([write_csv(f, d / "raw" / f"{f['station'][0]}.csv") for f in frames], d / "data")
    from typer.testing import CliRunner

    from aqi.cli import app

    args = ["--data-dir", str(d / "data"), "train", "--station", "A,B,C", "-q", *NETWORK_TINY]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "network model of 3 stations" in r.output
    return d / "data"


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """root/raw/{Synth,Other}.csv and root/data: both stations ingested, each with a tiny model.
    Copy it before changing it."""
    from typer.testing import CliRunner

    from aqi.cli import app
    from aqi.ingest import ingest

    root = tmp_path_factory.mktemp("template")
    frames = [learnable_frame("Synth"), learnable_frame("Other", seed=5)]
    ingest([write_csv(f, root / "raw" / f"{f['station'][0]}.csv") for f in frames], root / "data")
    train = ["train", "--station", "Synth,Other", "--per-station", "-q", *NETWORK_TINY]
    r = CliRunner().invoke(app, ["--data-dir", str(root / "data"), *train])
    assert r.exit_code == 0, r.output
    return root
