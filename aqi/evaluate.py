"""`aqi evaluate`: a trained model against the baselines on the test split, every method on the same
(origin, horizon) pairs; owns the evaluation's report files.

Under reports/evaluate/: <station>/{metrics.json, predictions.parquet, mae_vs_horizon.png,
level_accuracy_vs_horizon.png, confusion.png, fortnight.png}, summary.json and summary.md.
The windows are the model's own (`TrainedModel.windows`: its scaler and split dates).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from aqi import baselines, gbm, metrics, plots
from aqi.config import AqiError
from aqi.datadir import NETWORK, atomic_write_bytes, evaluate_dir
from aqi.gap_skill import gap_scores
from aqi.levels import Standard, get_standard, level
from aqi.prediction import Prediction, publish
from aqi.report import summary_markdown
from aqi.resolve import bind, load, network_at
from aqi.store import read_station
from aqi.summary import merged, summary_row
from aqi.trained import TrainedModel, live_folder, load_from
from aqi.windows import Windows, complete_grid

METHODS = ("model", "persistence", "seasonal_naive", "climatology", "gbm")
DAILY_MIN_HOURS = 18  # of 24: EPA's 75 % completeness rule for a daily mean
# --model names that would collide with a column of predictions.parquet or a key of summary rows
RESERVED = (*METHODS, "station", "origin", "horizon", "target_time", "y_true", "checks", "published")
RESERVED += ("probabilistic",)
SUMMARY_LOCK_S = 120  # seconds a run waits for another one's summary update (a write takes ms)
MISS_COSTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)  # the decision curve's points (1 = most probable)


def evaluation_report(
    data_dir: Path,
    names: list[str],
    standard: str | None = None,
    echo: Callable[[str], None] = print,
    threads: int = 1,
    others: dict[str, Path] | None = None,
    failed: tuple[str, ...] = (),
) -> dict:
    """Evaluate each station, then update the cross-station summary (json and Markdown): the rows
    of these stations are replaced, the others kept. Returns this run's rows; AqiError at the end
    naming the stations that failed (`failed`: problems met before, e.g. a torn network model)."""
    if standard:
        get_standard(standard)  # a bad --standard fails before minutes of baseline fitting
    gbms, rows, failed = GbmCache(data_dir, threads, echo), {}, list(failed)
    for i, st in enumerate(names, 1):
        started = time.perf_counter()
        echo(f"[{i}/{len(names)}] {st}: the model and 4 baselines on the test year")
        try:
            rows[st] = summary_row(evaluate_station(data_dir, st, standard, gbms, others or {}))
        except AqiError as e:  # one station's damaged data or model must not stop the others
            failed.append(f"{st}: {e}" if len(names) + len(failed) > 1 else str(e))
            continue
        echo(f"[{i}/{len(names)}] {st}: scored in {time.perf_counter() - started:.1f} s")
    if rows:
        _write_summary(data_dir, rows)
    if failed:
        done = f" (the other {len(rows)} were scored: {evaluate_dir(data_dir)})" if rows else ""
        raise AqiError("; ".join(failed) + done)
    return rows


def _write_summary(data_dir: Path, rows: dict) -> None:
    root = evaluate_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".summary.lock", timeout=SUMMARY_LOCK_S):  # shards finishing together
        everything = merged(root / "summary.json", rows)
        atomic_write_bytes(root / "summary.json", json.dumps(everything, indent=2).encode())
        atomic_write_bytes(root / "summary.md", summary_markdown(everything).encode())


class GbmCache:
    """The pooled gradient-boosting baseline of each (window, split) met in one run, loaded once."""

    def __init__(self, data_dir: Path, threads: int, echo):
        self.data_dir, self.threads, self.echo, self.models = data_dir, threads, echo, {}

    def get(self, tm: TrainedModel) -> gbm.PooledGbm:
        key = (repr(tm.config.window), repr(tm.split))
        if key not in self.models:
            started = time.perf_counter()
            self.models[key] = gbm.pooled_gbm(
                self.data_dir, tm.config.window, tm.split, self.threads, echo=self.echo
            )
            self.echo(f"GBM baseline ready in {time.perf_counter() - started:.1f} s")
        return self.models[key]


def evaluate_station(
    data_dir: Path,
    station: str,
    standard: str | None = None,
    gbms: GbmCache | None = None,
    others: dict[str, Path] | None = None,
) -> dict:
    """Score every method on the test split; write metrics.json, predictions.parquet and plots."""
    tm = load(data_dir, station)
    gbms = gbms or GbmCache(data_dir, 1, lambda *_: None)
    rivals = {n: other_model(n, root, station, data_dir, tm) for n, root in (others or {}).items()}
    df = read_station(data_dir, station)
    test, points, quantiles, pred = station_forecasts(df, tm, gbms, rivals)
    std = get_standard(standard) if standard else tm.standard
    m = {"station": station} | scores(test, points, std, tm.timezone)
    if pred.exceedance(std) is not None:
        m |= decision_scores(test.y, tm, pred, std)
    m["gaps"] = gap_scores(df, tm, std)
    if quantiles:
        m["probabilistic"] = {
            k: metrics.probabilistic(test.y, q, tm.quantile_levels, std) for k, q in quantiles.items()
        }
    out = evaluate_dir(data_dir, station)
    atomic_write_bytes(out / "metrics.json", json.dumps(m, indent=2).encode())
    frame = predictions_frame(station, test, points)
    _write_parquet(out / "predictions.parquet", frame)
    for name, png in plots.station_figures(station, m, frame, METHODS).items():
        atomic_write_bytes(out / name, png)
    return m


def station_forecasts(df, tm: TrainedModel, gbms: GbmCache, rivals: dict | None = None):
    """On the station's rows `df`: test-split windows, every method's (N, H) point forecast (with
    the `other_model`s of `rivals`, by name), and for a quantile head the (N, H, Q) quantiles of
    the model and of climatology. The pooled GBM is fitted (minutes) only once the station has
    test windows and every rival has forecast its origins: a rival of other pairs fails first."""
    w = tm.windows(df)
    test = w.part("test")
    if not len(test):
        raise AqiError(
            f"station {tm.station}: no test windows after {tm.split.val_end} (a model for operation, "
            "--test-months 0?): evaluate one trained with a test split"
        )
    grid, tz, cfg = complete_grid(df), tm.timezone, tm.config
    pred = tm.predict(test.x, test.last_pm25)
    others = {n: other_forecast(n, o, tm.station, df, test) for n, o in (rivals or {}).items()}
    points = {
        "model": pred.point,
        "persistence": baselines.persistence(test),
        "seasonal_naive": baselines.seasonal_naive(test, grid, tz, cfg.window.max_gap),
        "climatology": baselines.climatology(test, grid, tz, tm.split.train_end),
        "gbm": gbm.predict_station(gbms.get(tm), tm.station, test, grid, tz, cfg.window.max_gap),
    } | others
    quantiles = {}
    if pred.quantiles is not None:
        clim = baselines.climatology_quantiles(test, grid, tz, tm.split.train_end, tm.quantile_levels)
        quantiles = {"model": pred.quantiles, "climatology": clim}
    return test, points, quantiles, pred


def named_models(items: list[str]) -> dict[str, Path]:
    """`--model NAME=DIR` options → {NAME: DIR}; DIR holds one model folder per station."""
    pairs = [item.partition("=") for item in items]
    for item, (name, eq, folder) in zip(items, pairs, strict=True):
        word = name.replace("_", "a").replace("-", "a").isalnum()  # it names a column and a file
        if not (eq and folder and word) or name in RESERVED:
            raise AqiError(f"--model {item!r}: use NAME=DIR, NAME a word, not {', '.join(RESERVED)}")
        if [p[0] for p in pairs].count(name) > 1:
            raise AqiError(f"--model {item!r}: the name {name!r} is given twice; name each model once")
        root = Path(folder)
        if not root.is_dir() or not any(live_folder(p) for p in [root, *root.iterdir()] if p.is_dir()):
            raise AqiError(f"--model {item!r}: no trained model in {folder} (DIR/<station>, _network)")
    return {name: Path(folder) for name, _, folder in pairs}


def other_model(name: str, root: Path, station: str, data_dir: Path, tm: TrainedModel) -> TrainedModel:
    """The model in root/<station> (else the network model in root/_network, or root itself when it
    is models/_network), refused unless it has `tm`'s split dates and horizon (the same pairs)."""
    root = Path(root)
    network = root if root.name == NETWORK else root / NETWORK
    if root.name == NETWORK or (not live_folder(root / station) and live_folder(network)):
        other = bind(network_at(network), data_dir, station)  # loaded once
    else:
        other = load_from(root / station, station)
        other = bind(other, data_dir, station) if other.config.network.stations else other  # tuned
    if (other.split, other.config.window.horizon) != (tm.split, tm.config.window.horizon):
        raise AqiError(
            f"--model {name}: {station}'s model there has other split dates or another --horizon; "
            "it cannot be scored on the same pairs"
        )
    return other


def other_forecast(name: str, other: TrainedModel, station: str, df, test: Windows) -> np.ndarray:
    """(N, H) point forecasts of `other` (`other_model`) on the test windows' origins."""
    w = other.windows(df)
    idx = w.origin.get_indexer(test.origin)
    if (idx < 0).any():
        raise AqiError(
            f"--model {name}: its windows for {station} miss {(idx < 0).sum()} of the "
            f"{len(idx)} test origins (another --lookback, --max-gap or split); not the same pairs"
        )
    return other.predict(w.x[idx], None).point


def decision_scores(y: np.ndarray, tm: TrainedModel, pred: Prediction, std: Standard) -> dict:
    """The published level's per-horizon scores at the model's miss cost, and the POD/FAR/CSI
    trade-off of the cost decision alone over miss costs (every point one rule: no per-horizon
    rule, which is chosen at cost 1 only), all horizons pooled."""
    ok = np.isfinite(y)
    observed = level(y[ok], std)
    curve = []
    for cost in MISS_COSTS:
        lv = publish(pred, std, cost)[0][ok]
        scores = metrics.exceedance_scores(observed >= std.unhealthy, lv >= std.unhealthy)
        acc = metrics.level_accuracy(observed, lv)
        curve.append({"miss_cost": cost, "level_accuracy": round(acc, metrics.DIGITS)} | scores)
    levels, probability = tm.published(pred, std)
    decided = metrics.per_horizon_levels(y, levels, std) | metrics.per_horizon_calibration(
        y, pred.level_probabilities(std), probability, std
    )
    return {"decided": {"miss_cost": tm.config.decision.miss_cost} | decided, "decision_curve": curve}


def scores(test: Windows, points: dict[str, np.ndarray], std: Standard, tz: str) -> dict:
    """metrics.json's body: per-horizon scores and skill of every method, confusion, daily levels."""
    methods = {k: metrics.per_horizon(test.y, p, std) for k, p in points.items()}
    pers = np.asarray(methods["persistence"]["mae"])
    for v in methods.values():
        v["skill_vs_persistence"] = (1 - np.asarray(v["mae"]) / pers).round(metrics.DIGITS).tolist()
    return {
        "standard": std.key,
        "horizons": list(range(1, test.y.shape[1] + 1)),
        "methods": methods,
        "confusion": {k: metrics.confusion(test.y, p, std) for k, p in points.items()},
        "daily_level_accuracy": {k: daily_accuracy(test, p, std, tz) for k, p in points.items()},
        "test": {
            "windows": len(test),
            "first_origin": str(test.origin[0]),
            "last_origin": str(test.origin[-1]),
        },
        "levels": list(std.names),
        "unhealthy_level": std.unhealthy,
    }


def daily_accuracy(w: Windows, pred: np.ndarray, std: Standard, tz: str) -> float | None:
    """Next-day daily-mean level accuracy: origins at 23:00 local, the 24 next hours as the day;
    days with fewer than DAILY_MIN_HOURS observed hours are left out."""
    if w.y.shape[1] < 24:
        return None
    k = w.origin.tz_convert(tz).hour == 23
    y, p = w.y[k, :24], pred[k, :24]
    enough = np.isfinite(y).sum(1) >= DAILY_MIN_HOURS
    if not enough.any():
        return None
    obs = level(np.nanmean(y[enough], axis=1), std)
    return round(metrics.level_accuracy(obs, level(p[enough].mean(1), std)), metrics.DIGITS)


def predictions_frame(station: str, w: Windows, points: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (origin, horizon): times in UTC, the observation and every method's forecast."""
    n, h = w.y.shape
    origin = np.repeat(w.origin.tz_convert("UTC").tz_localize(None).to_numpy(), h)
    horizon = np.tile(np.arange(1, h + 1), n)
    cols = {
        "station": np.full(n * h, station),
        "origin": origin,
        "horizon": horizon.astype(np.int16),
        "target_time": origin + horizon.astype("timedelta64[h]"),
        "y_true": w.y.ravel(),
    }
    frame = pd.DataFrame(cols | {m: p.ravel().astype(np.float32) for m, p in points.items()})
    for c in ("origin", "target_time"):
        frame[c] = frame[c].dt.tz_localize("UTC")
    return frame


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
