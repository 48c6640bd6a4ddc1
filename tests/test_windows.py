"""Window arithmetic: offsets, no leakage, gaps, masking, chronological splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TZ, series
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.config import AqiError, WindowConfig
from aqi.windows import Split, build_windows, window_at, window_offsets

DATES = {"train_end": "2016-01-03 23:00", "val_end": "2016-01-05 23:00", "test_end": "2016-01-09 23:00"}


def unscaled_pm25(w, i):
    return w.x[i, :, 0] * w.scaler.std[0] + w.scaler.mean[0]


@given(st.integers(1, 200), st.integers(1, 72))
def test_offsets_never_let_a_target_hour_into_its_inputs(L, H):
    inp, tgt = window_offsets(L, H)
    assert len(inp) == L and len(tgt) == H
    assert inp.max() == 0 and tgt.min() == 1 and not set(inp) & set(tgt)


def test_windows_hold_exactly_the_past_and_the_next_hours():
    cfg = WindowConfig(
        lookback=5,
        horizon=3,
        train_end="2016-01-02 23:00",
        val_end="2016-01-03 23:00",
        test_end="2016-01-04 23:00",
    )
    w = build_windows(series(96), cfg, TZ)
    for i in (0, 7, len(w) - 1):
        origin_value = w.last_pm25[i]  # = origin position + 1
        np.testing.assert_allclose(unscaled_pm25(w, i), origin_value - 4 + np.arange(5), rtol=1e-5)
        np.testing.assert_array_equal(w.y[i], origin_value + np.arange(1, 4))
        assert w.y[i].min() > unscaled_pm25(w, i).max() + 0.5  # no target value among the inputs
    assert w.x.dtype == np.float32 and w.x.shape[1:] == (5, len(w.features))


def test_short_gaps_filled_from_the_past_long_gaps_drop_windows_targets_masked():
    pm = np.arange(1, 201, dtype=np.float32)
    pm[50:52] = np.nan  # 2 h gap ≤ max_gap 3: filled with the value at 49 (= 50)
    pm[120:130] = np.nan  # 10 h gap: windows reading it are dropped
    cfg = WindowConfig(lookback=6, horizon=4, max_gap=3, **DATES)
    w = build_windows(series(200, pm=pm), cfg, TZ)
    origins = (w.last_pm25 - 1).astype(int)
    k = np.flatnonzero(origins == 53)[0]
    np.testing.assert_allclose(unscaled_pm25(w, k), [49, 50, 50, 50, 53, 54], rtol=1e-5)
    assert not ((origins >= 120) & (origins < 130 + 5)).any()  # inputs would touch the long gap
    k = np.flatnonzero(origins == 117)[0]  # inputs before the gap, targets inside: kept, masked
    assert np.isnan(w.y[k, 2:]).all() and (w.y[k, :2] == [119, 120]).all()


def test_no_window_straddles_a_split_and_splits_are_chronological():
    cfg = WindowConfig(
        lookback=4,
        horizon=5,
        train_end="2016-01-03 23:00",
        val_end="2016-01-05 23:00",
        test_end="2016-01-07 23:00",
    )
    w = build_windows(series(24 * 7), cfg, TZ)
    ends = {
        k: pd.Timestamp(v, tz=TZ)
        for k, v in [("train", cfg.train_end), ("val", cfg.val_end), ("test", cfg.test_end)]
    }
    first = (w.origin + pd.Timedelta(hours=1)).tz_convert(TZ)
    last = (w.origin + pd.Timedelta(hours=5)).tz_convert(TZ)
    assert (last[w.split == "train"] <= ends["train"]).all()
    assert (first[w.split == "val"] > ends["train"]).all() and (
        last[w.split == "val"] <= ends["val"]
    ).all()
    assert (first[w.split == "test"] > ends["val"]).all()
    assert (w.split == "").sum() == 2 * 4  # the straddling windows at two boundaries
    assert w.origin[w.split == "train"].max() < w.origin[w.split == "val"].min()


def test_default_split_is_the_beijing_one():
    end = pd.Timestamp("2017-02-28 23:00", tz=TZ).tz_convert("UTC")
    s = Split.resolve(WindowConfig(), end, TZ)
    assert str(s.train_end) == "2015-08-31 23:00:00+08:00"
    assert (
        str(s.val_end) == "2016-02-29 23:00:00+08:00" and str(s.test_end) == "2017-02-28 23:00:00+08:00"
    )
    assert Split.from_dict(s.to_dict(), TZ) == s  # meta.json round trip


def test_test_months_moves_the_split_to_the_end_of_the_data():
    end = pd.Timestamp("2017-02-28 23:00", tz=TZ).tz_convert("UTC")
    s = Split.resolve(WindowConfig(test_months=0), end, TZ)  # operational: no test split
    assert str(s.val_end) == str(s.test_end) == "2017-02-28 23:00:00+08:00"
    assert str(s.train_end) == "2016-08-31 23:00:00+08:00"
    s = Split.resolve(WindowConfig(test_months=3, val_months=3), end, TZ)
    assert str(s.train_end) == "2016-08-31 23:00:00+08:00"
    assert str(s.val_end) == "2016-11-30 23:00:00+08:00"
    given = Split.resolve(WindowConfig(val_end="2016-06-30"), end, TZ)  # test_months unused
    assert str(given.val_end) == "2016-06-30 23:00:00+08:00"
    for months in (0, 12):  # 12 is the default's value, given: still refused with val_end
        with pytest.raises(AqiError, match=f"--test-months {months} with --val-end"):
            Split.resolve(WindowConfig(test_months=months, val_end="2016-06-30"), end, TZ)


def test_given_split_dates_label_like_the_config_that_made_them():
    cfg = WindowConfig(lookback=5, horizon=3, **DATES)
    a = build_windows(series(240), cfg, TZ)
    b = build_windows(series(240), WindowConfig(lookback=5, horizon=3), TZ, a.scaler, a.dates)
    assert (a.split == b.split).all() and a.dates == b.dates


def test_scaler_sees_only_the_train_split():
    cfg = WindowConfig(
        lookback=4,
        horizon=2,
        train_end="2016-01-02 23:00",
        val_end="2016-01-03 23:00",
        test_end="2016-01-04 23:00",
    )
    w = build_windows(series(96), cfg, TZ)
    assert w.scaler.mean[0] == pytest.approx(np.arange(1, 49).mean())  # hours of Jan 1–2 only


def test_window_at_forecasts_through_an_outage_and_refuses_past_the_staleness_limit():
    pm = np.arange(1, 101, dtype=np.float32)
    pm[95:99] = np.nan  # 4 h gap inside the last window
    cfg = WindowConfig(lookback=8, horizon=2, max_gap=2, stale_limit=6, **DATES)
    w = build_windows(series(100), cfg, TZ)
    x, origin, last, stale = window_at(series(100, pm=pm), cfg, TZ, w.scaler)
    assert x.shape == (1, 8, len(w.features)) and last == 100
    assert stale == {"last_observation_age_h": 0, "missing_input_share": 0.5}
    out = series(100, pm=np.r_[np.arange(1, 96, dtype=np.float32), [np.nan] * 5])
    x, origin, last, stale = window_at(out, cfg, TZ, w.scaler)  # the feed is out for 5 h
    assert last == 95 and stale["last_observation_age_h"] == 5
    later = out["time"].iloc[-1] + pd.Timedelta(hours=1)  # issued after the last row: no rows
    assert window_at(out, cfg, TZ, w.scaler, at=later)[3]["last_observation_age_h"] == 6
    with pytest.raises(AqiError, match="stale .*last at .* older than the model's 6 h"):
        window_at(out, cfg, TZ, w.scaler, at=later + pd.Timedelta(hours=1))
    with pytest.raises(AqiError, match="outside the data"):
        window_at(out, cfg, TZ, w.scaler, at=pd.Timestamp("2030-01-01", tz="UTC"))
    local = [
        (out["time"].iloc[k] + pd.Timedelta(hours=dh)).tz_convert(TZ) for k, dh in ((3, -7), (0, 0))
    ]
    start, first = (f"{t:%Y-%m-%dT%H:%M}" for t in local)  # --at is local: so are the hours named
    with pytest.raises(AqiError, match=f"history too short: inputs from {start} .* data start {first}$"):
        window_at(out, cfg, TZ, w.scaler, at=out["time"].iloc[3])


@pytest.mark.parametrize("gap", [1, 3, 6])
def test_a_live_window_through_a_gap_equals_the_simulated_one(gap):
    df = series(120)
    cfg = WindowConfig(lookback=8, horizon=2, max_gap=2, stale_limit=6, **DATES)
    w = build_windows(df, cfg, TZ, gap=gap)
    out = df.iloc[:111].copy()  # the store ends at the origin, hour 110, its last `gap` hours out
    out.loc[out.index[-gap:], [c for c in out.columns if c != "time"]] = np.nan
    x, origin, last, _ = window_at(out, cfg, TZ, w.scaler)
    k = np.flatnonzero(w.origin == origin)[0]
    # the calendar columns differ nowhere; every measured input carries the last observed hour
    np.testing.assert_allclose(x[0], w.x[k], atol=1e-6)
    assert last == w.last_pm25[k] == 111 - gap


def test_too_little_data():
    with pytest.raises(AqiError, match="too little data"):
        build_windows(series(10), WindowConfig(lookback=8, horizon=4, **DATES), TZ)


def test_a_date_alone_as_a_split_end_means_its_whole_day():
    from aqi.config import WindowConfig
    from aqi.split import Split

    cfg = WindowConfig(train_end="2016-02-29", val_end="2016-03-31 12:00", test_end="2016-04-30")
    s = Split.resolve(cfg, pd.Timestamp("2016-05-01", tz="UTC"), "Asia/Shanghai")
    assert (s.train_end.hour, s.val_end.hour, s.test_end.hour) == (23, 12, 23)
    assert str(s.train_end) == "2016-02-29 23:00:00+08:00"


@given(st.integers(0, 2**31 - 1), st.integers(1, 30))
@settings(max_examples=60, deadline=None)
def test_numpy_ffill_is_pandas_ffill_with_a_limit(seed, limit):
    from aqi.windows import ffill

    rng = np.random.default_rng(seed)
    a = rng.normal(size=(40, 3))
    a[rng.random(a.shape) < 0.5] = np.nan
    np.testing.assert_array_equal(ffill(a, limit), pd.DataFrame(a).ffill(limit=limit).to_numpy())
    np.testing.assert_array_equal(ffill(a, 0), a)  # no fill (pandas refuses limit 0)
