"""The network model's inputs and stream: neighbours, causality, missing neighbours, each window
once per epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import NETWORK_DATES, TZ, series
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.config import AqiError, Config, NetworkConfig, WindowConfig
from aqi.network import (
    NetworkPm25,
    coordinates,
    extra_columns,
    nearest,
    neighbours,
    rolling_mean,
)
from aqi.windows import Moments, build_windows, hourly

HOURS = 24 * 40
DATES = {"train_end": "2016-01-25 23:00", "val_end": "2016-02-01 23:00", "test_end": "2016-02-09 23:00"}


def grid(values: dict[str, np.ndarray]) -> NetworkPm25:
    """A network from log PM2.5 columns on one UTC grid."""
    times = pd.date_range("2016-01-01", periods=HOURS, freq="h", tz="UTC", name="time")
    v = np.stack([values[k] for k in values], 1).astype(np.float32)
    seen = np.isfinite(v)
    total = np.where(seen, v, 0).sum(1, dtype=np.float32)
    return NetworkPm25(v, times, tuple(values), total, seen.sum(1).astype(np.float32))


def walks(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(0, 0.1, HOURS)) + 4
    return {
        "A": a,
        "B": a + rng.normal(0, 0.05, HOURS),  # A's twin
        "C": np.cumsum(rng.normal(0, 0.1, HOURS)) + 4,  # unrelated
    }


def test_neighbours_are_the_most_correlated_stations():
    net = grid(walks())
    nb = neighbours(net, net.times[0], net.times[-1], 1)
    assert nb["A"] == ["B"] and nb["B"] == ["A"]
    assert neighbours(net, net.times[0], net.times[-1], 2)["A"] == ["B", "C"]
    assert neighbours(net, net.times[0], net.times[-1], 1, among={"C"})["A"] == ["C"]


def test_nearest_is_by_great_circle_distance_across_the_antimeridian():
    coords = {
        "Beijing": [39.9, 116.4],
        "Tianjin": [39.1, 117.2],
        "Shanghai": [31.2, 121.5],
        "Fiji": [-17.7, 178.0],
        "Samoa": [-13.8, -171.8],  # 10 degrees east of Fiji across 180
        "Tahiti": [-17.5, -149.4],
    }
    nb = nearest(coords, list(coords), 2)
    assert nb["Beijing"] == ["Tianjin", "Shanghai"]
    assert nb["Fiji"] == ["Samoa", "Tahiti"]
    assert nearest(coords, ["Beijing"], 1, among={"Fiji", "Shanghai"})["Beijing"] == ["Shanghai"]
    entries = {s: {"latitude": la, "longitude": lo} for s, (la, lo) in coords.items()}
    assert coordinates(entries, ["Fiji", "Samoa"]) == {"Fiji": [-17.7, 178.0], "Samoa": [-13.8, -171.8]}
    entries["Samoa"]["longitude"] = None  # AirNow's hourly files: no coordinates
    assert coordinates(entries, ["Fiji", "Samoa"]) is None
    entries["Samoa"]["longitude"] = float("nan")  # a blank OpenAQ field
    assert coordinates(entries, ["Fiji", "Samoa"]) is None


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0, 8), st.just(float("nan"))), max_size=80),
    st.integers(1, 30),
    st.integers(1, 30),
)
def test_rolling_mean_is_pandas_rolling_mean(values, window, min_periods):
    v = np.asarray(values, np.float32)
    want = pd.Series(v).rolling(window, min_periods=min(min_periods, window)).mean().to_numpy()
    got = rolling_mean(v, window, min(min_periods, window))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_too_short_an_overlap_is_no_neighbour():
    w = walks()
    w["B"][: HOURS - 100] = np.nan  # 100 hours together only
    net = grid(w)
    assert "B" not in neighbours(net, net.times[0], net.times[-1], 2)["A"]


@settings(max_examples=25, deadline=None)
@given(st.integers(24 * 8, HOURS - 2), st.integers(0, 3))
def test_no_input_column_reads_past_its_hour(t, station):
    """Changing every station's PM2.5 after hour t leaves all extra columns at hours <= t alone."""
    w = walks()
    net = grid(w)
    changed = grid({k: np.where(np.arange(HOURS) > t, v + 3.0, v) for k, v in w.items()})
    name = "ABC"[station % 3]
    cfg = NetworkConfig(neighbours=2, days=6)
    a = extra_columns(net, name, ["B", "C"], 1, cfg, 3)
    b = extra_columns(changed, name, ["B", "C"], 1, cfg, 3)
    pd.testing.assert_frame_equal(a.iloc[: t + 1], b.iloc[: t + 1])
    assert not a.iloc[t + 1 :].equals(b.iloc[t + 1 :])  # the check can fail


def test_a_missing_neighbour_never_drops_a_window():
    df = series(HOURS)
    times = pd.DatetimeIndex(df["time"])
    w = {"A": np.log1p(df["pm25"].to_numpy()), "B": np.full(HOURS, np.nan)}
    net = NetworkPm25(
        np.stack([w["A"], w["B"]], 1).astype(np.float32),
        times.rename("time"),
        ("A", "B"),
        np.nan_to_num(w["A"]).astype(np.float32),
        np.ones(HOURS, np.float32),
    )
    extra = extra_columns(net, "A", ["B"], 1, NetworkConfig(neighbours=1), 3)
    cfg = WindowConfig(lookback=24, horizon=6, **DATES)
    plain, rich = build_windows(df, cfg, TZ), build_windows(df, cfg, TZ, extra=extra)
    assert len(rich) == len(plain) > 0
    miss = rich.features.index("miss_nb1")
    assert (rich.x[..., miss] == 1).all() and np.isfinite(rich.x).all()
    assert (rich.x[..., rich.features.index("log_nb1")] == 0).all()  # missing → the train mean


def test_pooled_moments_equal_one_scaler_over_the_rows_together():
    cfg = WindowConfig(lookback=24, horizon=6, **DATES)
    a, b = hourly(series(HOURS), cfg, TZ), hourly(series(HOURS, pm=np.full(HOURS, 5.0)), cfg, TZ)
    pooled = Moments(a.features).add(a.train_rows()).add(b.train_rows()).scaler()
    together = Moments(a.features).add(np.concatenate([a.train_rows(), b.train_rows()])).scaler()
    np.testing.assert_allclose(pooled.mean, together.mean, rtol=1e-6)
    np.testing.assert_allclose(pooled.std, together.std, rtol=1e-6)
    col = a.features.index("pm25")
    rows = np.concatenate([a.train_rows()[:, col], b.train_rows()[:, col]])
    assert np.isclose(pooled.mean[col], rows.mean()) and np.isclose(pooled.std[col], rows.std())


def test_a_detached_level_head_leaves_the_body_to_the_point_forecast():
    """detach_level: the exceedance outputs send no gradient into the shared body; attached they
    do (the check can fail)."""
    import tensorflow as tf
    from conftest import tiny_config

    from aqi.model import build_model

    x = tf.random.normal((8, 24, 5), seed=0)
    grads = {}
    for detach in (True, False):
        cfg = tiny_config().replace(model={"head": "level", "detach_level": detach})
        model = build_model(cfg, 5, (40.0, 30.0))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x)[..., 1:])  # the exceedance probabilities only
        kernel = model.get_layer("dense_0").kernel
        grads[detach] = float(tf.reduce_sum(tf.abs(tape.gradient(loss, kernel))))
    assert grads[True] == 0.0 and grads[False] > 0.0


def test_the_level_tower_is_trained_by_the_exceedances_alone():
    """level_hidden: a detached level head reads its own MLP beside the body; the exceedance outputs
    reach the tower and not the body, and the point forecast does not reach the tower."""
    import tensorflow as tf
    from conftest import tiny_config

    from aqi.model import build_model

    x = tf.random.normal((8, 24, 5), seed=0)
    cfg = tiny_config().replace(model={"head": "level", "detach_level": True, "level_hidden": 4})
    model = build_model(cfg, 5, (40.0, 30.0))
    body, tower = (model.get_layer(n).kernel for n in ("dense_0", "level_dense_0"))
    assert tower.shape[-1] == 4
    with tf.GradientTape(persistent=True) as tape:
        out = model(x)
        level, point = tf.reduce_sum(out[..., 1:]), tf.reduce_sum(out[..., 0])
    size = lambda g: 0.0 if g is None else float(tf.reduce_sum(tf.abs(g)))  # noqa: E731
    assert size(tape.gradient(level, body)) == 0.0 and size(tape.gradient(level, tower)) > 0.0
    assert size(tape.gradient(point, tower)) == 0.0 and size(tape.gradient(point, body)) > 0.0


def test_the_level_tower_has_its_own_dropout():
    """model.level_dropout sets the tower's dropout; negative keeps the body's."""
    from conftest import tiny_config

    from aqi.model import build_model

    rates = {}
    for tower in (-1.0, 0.1):
        cfg = tiny_config().replace(
            model={"head": "level", "detach_level": True, "level_hidden": 4, "dropout": 0.5,
                   "level_dropout": tower}
        )  # fmt: skip
        model = build_model(cfg, 5, (40.0, 30.0))
        rates[tower] = sorted(layer.rate for layer in model.layers if layer.name.startswith("dropout"))
    assert rates[-1.0] == [0.5] * len(rates[-1.0]) and len(rates[-1.0]) >= 2
    assert 0.1 in rates[0.1] and 0.5 in rates[0.1]
    from aqi.checks import validate

    with pytest.raises(AqiError, match="model.level_dropout"):
        validate(cfg.replace(model={"level_dropout": 1.0}))


def test_level_days_feed_the_level_tower_and_not_the_point_forecast():
    """network.level_days: the daily-mean columns (`log_day*`, just before the station columns) move
    the exceedance probabilities and leave the point forecast exactly as it was."""
    import tensorflow as tf
    from conftest import tiny_config

    from aqi.model import build_model

    cfg = tiny_config().replace(
        model={"head": "level", "detach_level": True, "level_hidden": 4},
        network={"stations": 2, "days": 2, "level_days": True},
    )
    model = build_model(cfg, 9, (40.0, 30.0))  # 4 features, 2 daily means, 3 station columns
    x = np.random.default_rng(0).normal(size=(8, 24, 9)).astype("float32")
    x[..., -3:] = (40.0, 30.0, 1.0)
    moved = x.copy()
    moved[..., -5:-3] += 3.0
    a, b = (model(tf.constant(v), training=False).numpy() for v in (x, moved))
    np.testing.assert_array_equal(a[..., 0], b[..., 0])
    assert np.abs(a[..., 1:] - b[..., 1:]).max() > 1e-4
    from aqi.checks import validate

    with pytest.raises(AqiError, match="network.level_days: needs network.days > 0"):
        validate(cfg.replace(network={"days": 0}))


def test_a_station_s_level_correction_moves_its_exceedances_alone():
    """network.level_station: a per-station row added to the level head's raw outputs, zero at the
    start; setting station 1's row moves station 1's exceedances and no one else's forecast."""
    import tensorflow as tf
    from conftest import tiny_config

    from aqi.model import build_model

    cfg = tiny_config().replace(model={"head": "level"}, network={"stations": 2, "level_station": True})
    model = build_model(cfg, 7, (40.0, 30.0))  # 4 features, 3 station columns
    table = model.get_layer("station_level")
    assert not np.any(table.get_weights()[0])
    x = np.random.default_rng(0).normal(size=(4, 24, 7)).astype("float32")
    x[..., -3:] = (40.0, 30.0, 2.0)
    x[:2, :, -1] = 1.0
    before = model(tf.constant(x), training=False).numpy()
    rows = np.zeros_like(table.get_weights()[0])
    rows[1] = 3.0  # station 1: its centre, spread and steps, every hour ahead
    table.set_weights([rows])
    after = model(tf.constant(x), training=False).numpy()
    np.testing.assert_array_equal(before[..., 0], after[..., 0])
    np.testing.assert_array_equal(before[2:], after[2:])
    assert np.abs(before[:2, :, 1:] - after[:2, :, 1:]).max() > 1e-3


def test_the_stream_shows_every_train_window_once_per_epoch(network_store, tmp_path):
    """One epoch of the tf.data stream: each station's train windows exactly once (by target rows
    and window sums), shuffled across stations, the scaled inputs equal to the station's own."""
    from aqi.config import network_defaults
    from aqi.network import NetworkPm25
    from aqi.resolve import bind, load_network
    from aqi.store import read_station
    from aqi.train_network import prepare

    cfg = network_defaults().replace(window={"horizon": 6, **NETWORK_DATES})
    names = ["A", "B", "C"]
    cfg, data = prepare(network_store, names, cfg, NetworkPm25.read(network_store, names), tmp_path)
    seen = [(x.numpy(), y.numpy()) for x, y in data.train_ds(64, seed=0)]
    x, y = np.concatenate([s[0] for s in seen]), np.concatenate([s[1] for s in seen])
    parts = [f.part("train") for f in data.files]
    want_x = np.concatenate([p[0] for p in parts])
    assert len(x) == data.n_train == len(want_x)
    key = lambda a: np.sort(np.nansum(a.reshape(len(a), -1), axis=1))  # noqa: E731
    np.testing.assert_allclose(key(x), key(want_x), rtol=1e-5)
    np.testing.assert_allclose(key(y), key(np.concatenate([p[1] for p in parts])), rtol=1e-6)
    first = seen[0][0][:, -1, -1]  # the station rows of the first batch: mixed, not one station
    assert len(set(first.round().astype(int))) > 1
    own = bind(load_network(network_store), network_store, "B").windows(read_station(network_store, "B"))
    np.testing.assert_allclose(parts[1][0], own.part("train").x, rtol=1e-5, atol=1e-6)


def test_recency_weights_halve_every_half_life():
    from aqi.stream import recency_weights

    w = recency_weights(np.array([100, 100 - 24 * 30, 100 - 24 * 60, 100]), 30.0)
    np.testing.assert_allclose(w / w[0], [1.0, 0.5, 0.25, 1.0])
    assert w.sum() == pytest.approx(1.0)


def test_recency_draws_an_epoch_s_windows_toward_the_latest(network_store, tmp_path):
    """network.recency: as many train windows per epoch, drawn with replacement, more of them
    recent; off (0), each once (the test above)."""
    from aqi.config import network_defaults
    from aqi.network import NetworkPm25
    from aqi.train_network import prepare

    names = ["A", "B", "C"]
    cfg = network_defaults().replace(window={"horizon": 6, **NETWORK_DATES}, network={"recency": 2.0})
    cfg, data = prepare(network_store, names, cfg, NetworkPm25.read(network_store, names), tmp_path)
    y = np.concatenate([y.numpy() for _, y in data.train_ds(64, seed=0)])
    parts = [f.part("train")[1] for f in data.files]  # (n, H) targets, in time order
    assert len(y) == data.n_train
    rows = {tuple(r) for r in np.round(y, 3)}
    late = [tuple(r) for p in parts for r in np.round(p[-len(p) // 4 :], 3)]
    early = [tuple(r) for p in parts for r in np.round(p[: len(p) // 4], 3)]
    assert len(rows) < len(y)  # drawn with replacement
    assert np.mean([r in rows for r in late]) > np.mean([r in rows for r in early])


def test_with_history_keeps_the_stations_a_network_model_can_learn_from():
    from aqi.config import WindowConfig
    from aqi.network import NetworkPm25, with_history

    t = pd.date_range("2024-04-08", periods=60, freq="h", tz="UTC")
    full = pd.DataFrame({"time": t, "pm25": np.float32(10.0)})
    late = full[full["time"] >= t[40]]  # data begin after the train split's end
    holey = full.assign(pm25=np.where(np.arange(60) % 5 == 0, np.nan, 10.0))  # 1 h gaps: filled
    short = full.iloc[:14]  # 12 h of inputs, then the series ends before any 6 h of targets
    # a train window's targets end by the split's end: from t[13], origin t[24], targets to t[30]
    fits, edge = full[full["time"] >= t[13]], full[full["time"] >= t[14]]  # edge's end at t[31]
    frames = {"full": full, "late": late, "holey": holey, "short": short, "fits": fits, "edge": edge}
    net = NetworkPm25.from_frames(frames)
    w = WindowConfig(lookback=12, horizon=6, max_gap=3)
    assert with_history(net, w, t[30]) == ["full", "holey", "fits"]


def test_a_new_station_is_bound_on_the_days_before_the_split_else_its_first_days():
    """`_cold_days`: the 30 days before the model's test split when they hold a week of PM2.5
    (installed 10 days before the split: those days), else its first 30 days (installed 3 days
    before, or after the split); exactly a week is enough, an hour less is refused."""
    from types import SimpleNamespace

    from aqi.resolve import _cold_days

    end, hour, day = (
        pd.Timestamp("2016-04-09 15:00", tz="UTC"),
        pd.Timedelta(hours=1),
        pd.Timedelta(days=1),
    )
    grid = pd.date_range("2016-01-01", "2016-06-01", freq="h", tz="UTC")
    starts = {
        "A": grid[0],
        "B": end - 10 * day,
        "C": end - 3 * day,
        "D": end + 5 * day,
        "E": end + 5 * day,
    }
    frames = {}
    for name, first in starts.items():
        t = grid[grid >= first][: 168 if name == "D" else 167 if name == "E" else None]
        frames[name] = pd.DataFrame({"time": t, "pm25": np.full(len(t), 20.0, np.float32)})
    net, tm = NetworkPm25.from_frames(frames), SimpleNamespace(split=SimpleNamespace(val_end=end))
    tm.config = Config()  # NetworkConfig: cold_days 30, cold_overlap 168
    assert _cold_days(tm, net, "A") == (end - 30 * day, end) == _cold_days(tm, net, "B")
    assert _cold_days(tm, net, "C") == (starts["C"] - hour, starts["C"] - hour + 30 * day)
    assert _cold_days(tm, net, "D") == (starts["D"] - hour, starts["D"] - hour + 30 * day)
    with pytest.raises(AqiError, match="under 168 hours of PM2.5 in the 30 days from"):
        _cold_days(tm, net, "E")


def test_the_level_refit_trains_the_level_head_alone(network_store, tmp_path):
    """level_epochs: the same seed with and without the refit gives the same body and point head
    (the point forecast cannot move) and another level head, kept only while validation loss
    falls: its best loss is below the loss the head had before."""
    import shutil

    from aqi.config import network_defaults
    from aqi.job import RunOptions
    from aqi.train_network import train_network
    from aqi.trained import load_from

    base = network_defaults().replace(
        window={"horizon": 6, **NETWORK_DATES},
        model={"members": 1, "hidden": 8, "layers": 1, "level_hidden": 4},
        train={"epochs": 1, "batch_size": 64, "device": "cpu"},
    )
    weights, metas = {}, {}
    for n in (0, 2):
        d = tmp_path / str(n)
        shutil.copytree(network_store / "store", d / "store")
        cfg = base.replace(train={"level_epochs": n})
        metas[n] = train_network(d, ["A", "B", "C"], cfg, RunOptions(quiet=True, echo=lambda s: None))
        model = load_from(d / "models" / "_network", "_network").keras_model()
        weights[n] = {w.path: w.numpy() for w in model.weights}
    level = [k for k in weights[0] if "level_" in k]
    assert level and len(level) < len(weights[0])
    for k in weights[0]:
        same = np.array_equal(weights[0][k], weights[2][k])
        assert same == (k not in level), k
    refit = metas[2]["history"][0]["level_refit"]
    assert refit["best_epoch"] >= 1 and min(refit["val_loss"]) < metas[0]["history"][0]["val_loss"][0]


@pytest.mark.parametrize("gate, centre", [(50.0, "origin"), (-50.0, "point")])
def test_an_anchored_level_head_centres_on_the_gate_s_choice(gate, centre):
    """model.level_anchor: the gate moves the exceedances' centre from the point forecast to the
    PM2.5 at the origin; at the centre P(PM2.5 >= b_0) is one half."""
    from aqi.model import Exceedance

    edges, h = [35.0, 75.0, 115.0], 2
    point = np.full((1, h), 10.0, np.float32)
    origin = np.full((1, 1), 35.0, np.float32)
    raw = np.zeros((1, (3 + len(edges)) * h), np.float32)
    raw[:, -h:] = gate
    p = np.asarray(Exceedance(edges, anchored=True)(point, raw, origin))
    assert p.shape == (1, h, len(edges)) and np.all(np.diff(p, axis=-1) < 0)
    if centre == "origin":
        np.testing.assert_allclose(p[..., 0], 0.5, atol=1e-5)
    else:  # the non-anchored layer's probabilities exactly
        plain = np.asarray(Exceedance(edges)(point, raw[:, :-h]))
        np.testing.assert_allclose(p, plain, atol=1e-6)
        assert np.all(p[..., 0] < 0.2)


def test_level_anchor_widens_the_level_head_and_round_trips(tmp_path):
    """A model with the anchor has H more level-head outputs and loads back with the same output."""
    import keras
    from conftest import tiny_config

    from aqi.model import build_model

    cfg = tiny_config().replace(model={"head": "level", "level_anchor": True})
    model = build_model(cfg, 5, (40.0, 30.0))
    plain = build_model(cfg.replace(model={"level_anchor": False}), 5, (40.0, 30.0))
    width = lambda m: m.get_layer("level_head").kernel.shape[-1]  # noqa: E731
    assert width(model) - width(plain) == cfg.window.horizon
    x = np.random.default_rng(0).normal(size=(4, cfg.window.lookback, 5)).astype("float32")
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-6)


def test_level_anchor_without_a_level_head_is_refused():
    from conftest import tiny_config

    from aqi.checks import validate

    with pytest.raises(AqiError, match="model.level_anchor: needs --head level"):
        validate(tiny_config().replace(model={"head": "point", "level_anchor": True}))


def test_the_network_read_takes_a_corrupt_partition_as_a_station_without_rows(network_store, tmp_path):
    import shutil

    from aqi.datadir import partition_path
    from aqi.network import READ_CHUNK
    from aqi.store import read_station

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    names = ["A", "B", "C", "D"]
    whole = NetworkPm25.read(d, names)
    partition_path(d, "B").write_bytes(b"PAR1 not parquet PAR1")
    net = NetworkPm25.read(d, names)
    assert np.isnan(net.column("B")).all() and len(names) <= READ_CHUNK  # one chunk, read one by one
    for s in ("A", "C", "D"):  # the chunk's other stations read as before
        np.testing.assert_array_equal(net.column(s), whole.column(s))
    a = read_station(d, "A")
    assert np.isfinite(net.column("A")).sum() == a["pm25"].notna().sum()
    with pytest.raises(AqiError, match="'E': not in"):
        NetworkPm25.read(d, [*names, "E"])


@pytest.mark.parametrize("standard", ["us-epa-2024", "china-hj633-2012"])
def test_a_persistence_mixture_puts_its_weight_on_the_level_at_the_origin(standard):
    """model.level_persist: P(>= b_i) = (1 - w)·P + w·1[level(c_t) > i]; at w -> 1 the published level
    is persistence's, counted by `levels.level`'s rule (exact breakpoints, upper-closed tables)."""
    from aqi.levels import get_standard, level
    from aqi.model import Exceedance

    std, h = get_standard(standard), 2
    now = np.array([0.0, *std.edges, *(b + 0.05 for b in std.edges), 1000.0], np.float32)[:, None]
    n, e = len(now), len(std.edges)
    point = np.full((n, h), 10.0, np.float32)
    layer = Exceedance(std.edges, persist=(std.resolution, std.upper_closed))
    for w, share in ((50.0, 1.0), (-50.0, 0.0), (2.0, 0.5)):
        raw = np.zeros((n, (3 + e) * h), np.float32)
        raw[:, -h:] = w  # the mixture weight σ(w - 2)
        p = np.asarray(layer(point, raw, now))
        plain = np.asarray(Exceedance(std.edges)(point, raw[:, :-h]))
        reached = (level(now[:, 0], std)[:, None] > np.arange(e)).astype(np.float32)[:, None, :]
        np.testing.assert_allclose(p, (1 - share) * plain + share * reached, atol=1e-5)
        assert np.all(np.diff(p, axis=-1) <= 1e-7)  # still decreasing in i
    mean, sd = np.float32(83.7), np.float32(47.0)  # the origin as the model rebuilds it: x·σ + mean
    back = ((now - mean) / sd) * sd + mean
    raw = np.zeros((n, (3 + e) * h), np.float32)
    raw[:, -h:] = 50.0
    p = np.asarray(layer(point, raw, back))
    reached = (level(now[:, 0], std)[:, None] > np.arange(e)).astype(np.float32)[:, None, :]
    np.testing.assert_allclose(p, np.broadcast_to(reached, p.shape), atol=1e-5)


def test_level_persist_round_trips_and_needs_a_level_head(tmp_path):
    import keras
    from conftest import tiny_config

    from aqi.checks import validate
    from aqi.model import build_model

    cfg = tiny_config().replace(model={"head": "level", "level_persist": True})
    model = build_model(cfg, 5, (40.0, 30.0))
    x = np.random.default_rng(0).normal(size=(4, cfg.window.lookback, 5)).astype("float32")
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-6)
    with pytest.raises(AqiError, match="model.level_persist: needs --head level"):
        validate(tiny_config().replace(model={"head": "point", "level_persist": True}))


def test_station_dropout_follows_the_run_seed():
    """Which windows are shown as 'unknown' comes from --seed: the same seed repeats it, another
    seed changes it, whatever the global random state."""
    from aqi.model import StationDropout, keras, ops

    def mask(seed: int):
        keras.utils.set_random_seed(seed + 17)
        layer = StationDropout(0.5, seed)
        return ops.convert_to_numpy(layer(ops.ones((256,), "int32"), training=True))

    assert (mask(0) == mask(0)).all() and (mask(0) != mask(1)).any()
    assert 64 < (mask(2) == 0).sum() < 192


def test_reseed_makes_a_loaded_models_dropout_follow_the_seed():
    """A fine-tune starts from a loaded model whose generators were seeded when it was read:
    `reseed` sets them from the run's seed, the same seed alike, another seed otherwise."""
    from aqi.features import N_FEATURES
    from aqi.model import build_model, keras, reseed
    from aqi.network import n_extra

    cfg = Config().replace(network={"stations": 3}, window={"lookback": 4, "horizon": 2})
    build = lambda: build_model(cfg, N_FEATURES + n_extra(cfg.network), (30.0, 20.0))  # noqa: E731
    keras.utils.set_random_seed(1)
    a = build()
    keras.utils.set_random_seed(2)
    b = build()

    def states(m):
        return [v.numpy().tolist() for v in m.non_trainable_variables if "seed_generator" in v.path]

    assert states(a) != states(b) and len(states(a)) >= 2  # dropout and station dropout
    reseed(a, 7), reseed(b, 7)
    assert states(a) == states(b) and len({s[0] for s in states(a)}) == len(states(a))
    reseed(b, 8)
    assert states(a) != states(b)


@pytest.mark.parametrize(
    "section, field, bad, good",
    [
        ("train", "lr_floor", 1.5, 0.0),
        ("network", "min_overlap", 0, 1),
        ("network", "cold_days", 0, 7),  # 7 days hold the 168 h cold_overlap asks
        ("network", "cold_overlap", 24 * 30 + 1, 24 * 30),  # more hours than cold_days hold
        ("network", "recency", -1.0, 0.0),
    ],
)
def test_script_set_fields_are_range_checked(section, field, bad, good):
    from conftest import tiny_config

    from aqi.checks import validate

    cfg = tiny_config().replace(network={"cold_days": 30})
    validate(cfg.replace(**{section: {field: good}}))
    with pytest.raises(AqiError, match=f"{section}.{field} {bad}: out of range"):
        validate(cfg.replace(**{section: {field: bad}}))
