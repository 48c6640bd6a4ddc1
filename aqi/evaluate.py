"""Score a trained model against the baselines on the test split: same (origin, horizon) pairs for all.

Writes `reports/evaluate/<station>/metrics.json` and `predictions.parquet`; reuses the model's own
windowing (`windows.build_windows` with its scaler and split dates): no second copy of window logic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import confusion_matrix, f1_score

from aqi import artifacts, baselines
from aqi.config import AqiError
from aqi.levels import Standard, exceedance_probability, get_standard, level
from aqi.store import atomic_write_bytes, read_station
from aqi.windows import Windows, build_windows, complete_grid, split_dates

METHODS = ("model", "persistence", "seasonal_naive", "climatology", "gbm")


def report_dir(data_dir: Path, station: str | None = None) -> Path:
    d = Path(data_dir) / "reports" / "evaluate"
    return d / station if station else d


def score(y: np.ndarray, pred: np.ndarray, std: Standard) -> dict:
    """Per-horizon MAE, RMSE, bias (µg/m³), level accuracy, macro-F1 over levels, and POD / FAR /
    CSI of reaching the standard's first unhealthy level; finite targets only."""
    out: dict[str, list] = {
        k: [] for k in ("mae", "rmse", "bias", "level_accuracy", "macro_f1", "pod", "far", "csi")
    }
    for h in range(y.shape[1]):
        ok = np.isfinite(y[:, h])
        t, p = y[ok, h], pred[ok, h]
        lt, lp = level(t, std), level(p, std)
        hit = ((lt >= std.unhealthy) & (lp >= std.unhealthy)).sum()
        miss = ((lt >= std.unhealthy) & (lp < std.unhealthy)).sum()
        false = ((lt < std.unhealthy) & (lp >= std.unhealthy)).sum()
        out["mae"].append(float(np.abs(t - p).mean()))
        out["rmse"].append(float(np.sqrt(((t - p) ** 2).mean())))
        out["bias"].append(float((p - t).mean()))
        out["level_accuracy"].append(float((lt == lp).mean()))
        out["macro_f1"].append(
            float(f1_score(lt, lp, average="macro", labels=np.arange(std.n_levels), zero_division=0))
        )
        out["pod"].append(float(hit / max(hit + miss, 1)))
        out["far"].append(float(false / max(hit + false, 1)))
        out["csi"].append(float(hit / max(hit + miss + false, 1)))
    return {k: [round(v, 4) for v in vs] for k, vs in out.items()}


def confusion(y: np.ndarray, pred: np.ndarray, std: Standard) -> list[list[int]]:
    """Levels observed (rows) × forecast (columns), all horizons pooled."""
    ok = np.isfinite(y)
    return confusion_matrix(
        level(y[ok], std), level(pred[ok], std), labels=np.arange(std.n_levels)
    ).tolist()


def daily_accuracy(w: Windows, pred: np.ndarray, std: Standard, tz: str) -> float | None:
    """Next-day daily-mean level accuracy: origins at 23:00 local, the 24 next hours as the day;
    days with fewer than 18 observed hours are left out (EPA's 75 % rule)."""
    if w.y.shape[1] < 24:
        return None
    k = w.origin.tz_convert(tz).hour == 23
    y, p = w.y[k, :24], pred[k, :24]
    enough = np.isfinite(y).sum(1) >= 18
    if not enough.any():
        return None
    obs = level(np.nanmean(y[enough], axis=1), std)
    return round(float((obs == level(p[enough].mean(1), std)).mean()), 4)


def probabilistic_scores(y: np.ndarray, q: np.ndarray, quantiles, std: Standard) -> dict:
    """Per horizon: coverage and mean width (µg/m³) of the outer-quantile interval, pinball loss
    per quantile (µg/m³), and the Brier score of P(level ≥ unhealthy)."""
    ok = np.isfinite(y)
    y0 = np.where(ok, y, 0.0)
    n = np.maximum(ok.sum(0), 1)
    inside = (y0 >= q[..., 0]) & (y0 <= q[..., -1]) & ok
    err = y0[..., None] - q
    pin = np.maximum(np.asarray(quantiles) * err, (np.asarray(quantiles) - 1) * err)
    p = exceedance_probability(quantiles, q, std.edges[std.unhealthy - 1])
    event = (level(np.where(ok, y, np.nan), std) >= std.unhealthy).astype(float)
    return {
        "interval": [quantiles[0], quantiles[-1]],
        "coverage": (inside.sum(0) / n).round(4).tolist(),
        "width": (((q[..., -1] - q[..., 0]) * ok).sum(0) / n).round(2).tolist(),
        "pinball": {
            f"{qq:g}": ((pin[..., i] * ok).sum(0) / n).round(3).tolist()
            for i, qq in enumerate(quantiles)
        },
        "brier": ((((p - event) ** 2) * ok).sum(0) / n).round(4).tolist(),
    }


def point(pred: np.ndarray) -> np.ndarray:
    """(N, H) point forecast: the prediction itself, or the median quantile of a (N, H, Q) head."""
    return pred[..., pred.shape[-1] // 2] if pred.ndim == 3 else pred


def station_forecasts(data_dir: Path, station: str):
    """Test-split windows, every method's forecast (model: raw head output), the meta, and for a
    quantile head the (N, H, Q) quantiles of the model and of climatology."""
    model, meta = artifacts.load(data_dir, station)
    cfg, tz = artifacts.config_of(meta), meta["timezone"]
    window = cfg.window.__class__(**{**cfg.window.__dict__, **_split(meta)})
    df = read_station(data_dir, station)
    w = build_windows(df, window, tz, artifacts.scaler_of(meta))
    test, train = w.part("test"), w.part("train")
    if not len(test):
        raise AqiError(f"station {station}: no test windows after {meta['split']['val_end']}")
    grid = complete_grid(df)
    train_end = split_dates(window, grid.index[-1], tz)[0]
    preds = {
        "model": artifacts.predict(model, test.x),
        "persistence": baselines.persistence(test),
        "seasonal_naive": baselines.seasonal_naive(test, grid, tz, window.max_gap),
        "climatology": baselines.climatology(test, grid, tz, train_end),
        "gbm": baselines.predict_gbm(baselines.fit_gbm(train, cfg.train.seed), test),
    }
    quantiles = {}
    if preds["model"].ndim == 3:
        quantiles = {
            "model": preds["model"],
            "climatology": baselines.climatology_quantiles(
                test, grid, tz, train_end, cfg.model.quantiles
            ),
        }
    return test, preds, meta, quantiles


def _split(meta: dict) -> dict:
    """The split dates the model was trained with (local, without offset)."""
    return {
        k: pd.Timestamp(v).tz_localize(None).strftime("%Y-%m-%d %H:%M") for k, v in meta["split"].items()
    }


def evaluate_station(data_dir: Path, station: str, standard: str | None = None) -> dict:
    """Score every method on the test split; write metrics.json and predictions.parquet."""
    test, preds, meta, quantiles = station_forecasts(data_dir, station)
    std = get_standard(standard or meta["standard"])
    points = {m: point(p) for m, p in preds.items()}
    horizons = list(range(1, test.y.shape[1] + 1))
    methods = {m: score(test.y, p, std) for m, p in points.items()}
    pers = np.asarray(methods["persistence"]["mae"])
    for m in methods.values():
        m["skill_vs_persistence"] = (1 - np.asarray(m["mae"]) / pers).round(4).tolist()
    metrics = {
        "station": station,
        "standard": std.key,
        "horizons": horizons,
        "methods": methods,
        "confusion": {m: confusion(test.y, p, std) for m, p in points.items()},
        "daily_level_accuracy": {
            m: daily_accuracy(test, p, std, meta["timezone"]) for m, p in points.items()
        },
        "test": {
            "windows": len(test),
            "first_origin": str(test.origin[0]),
            "last_origin": str(test.origin[-1]),
        },
        "levels": list(std.names),
        "unhealthy_level": std.unhealthy,
    }
    if quantiles:
        qs = artifacts.config_of(meta).model.quantiles
        metrics["probabilistic"] = {
            m: probabilistic_scores(test.y, q, qs, std) for m, q in quantiles.items()
        }
    out = report_dir(data_dir, station)
    atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    _write_predictions(out / "predictions.parquet", station, test, points)
    return metrics


def _write_predictions(path: Path, station: str, w: Windows, points: dict[str, np.ndarray]) -> None:
    n, h = w.y.shape
    origin = np.repeat(w.origin.tz_convert("UTC").tz_localize(None).to_numpy(), h)  # UTC
    horizon = np.tile(np.arange(1, h + 1), n)
    cols = {
        "station": np.full(n * h, station),
        "origin": origin,
        "horizon": horizon.astype(np.int16),
        "target_time": origin + horizon.astype("timedelta64[h]"),
        "y_true": w.y.ravel(),
    }
    cols |= {m: p.ravel().astype(np.float32) for m, p in points.items()}
    frame = pd.DataFrame(cols)
    for c in ("origin", "target_time"):
        frame[c] = frame[c].dt.tz_localize("UTC")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
