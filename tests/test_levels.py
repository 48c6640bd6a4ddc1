"""AQI standards (numpy): levels, index values on every band edge, NowCast, custom TOML standards."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from aqi.cli import app
from aqi.concentrations import daily_mean_level, nowcast
from aqi.config import AqiError
from aqi.levels import STANDARDS, index_value, level, load_standard

VERIFIED = [s for s in STANDARDS.values() if s.verified]


@pytest.mark.parametrize("std", [s for s in VERIFIED if s.segments], ids=lambda s: s.key)
def test_index_on_every_band_edge(std):
    """Each segment's C_lo maps to I_lo and C_hi to I_hi: the table itself, read back."""
    for c_lo, c_hi, i_lo, i_hi in std.segments:
        assert index_value(c_hi, std) == i_hi, (c_hi, i_hi)
        if not std.upper_closed or c_lo == 0:  # shared points belong to the lower band
            assert index_value(c_lo, std) == i_lo, (c_lo, i_lo)


def test_us_epa_known_values():
    us = STANDARDS["us-epa-2024"]
    assert level([9.0, 9.09, 9.1, 35.4, 35.5, 225.5], us).tolist() == [0, 0, 1, 1, 2, 5]
    assert index_value([35.5, 12.0, 55.5, 100.0], us).tolist() == [101, 56, 151, 182]


def test_china_shared_end_points_belong_to_lower_band():
    cn = STANDARDS["china-hj633-2012"]
    assert level([35, 35.01, 75, 75.01], cn).tolist() == [0, 1, 1, 2]
    assert index_value([35, 35.1, 300, 400], cn).tolist() == [50, 51, 350, 434]  # 433.3 rounds up


@given(st.lists(st.floats(0, 1000), min_size=2, max_size=50), st.sampled_from(sorted(STANDARDS)))
def test_level_and_index_are_monotone(cs, key):
    std = STANDARDS[key]
    c = np.sort(np.asarray(cs))
    assert np.all(np.diff(level(c, std)) >= 0)
    assert np.all(np.diff(index_value(c, std)) >= 0)
    assert level(c, std).max() <= std.n_levels - 1


def test_nan_is_no_level():
    assert level([np.nan], STANDARDS["us-epa-2024"]).tolist() == [-1]


def test_nowcast_worked_examples():
    # newest three hours 20, 10, 40 µg/m³ (c1 newest): w* = 10/40 < 0.5 → w = 0.5;
    # (20 + 0.5·10 + 0.25·40) / (1 + 0.5 + 0.25) = 35 / 1.75 = 20.0
    assert nowcast([40, 10, 20])[-1] == pytest.approx(20.0)
    # c1 = 50, c2 = 40: w = 0.8, (50 + 0.8·40) / 1.8 = 45.55… → truncated 45.5
    assert nowcast([40, 50])[-1] == pytest.approx(45.5)
    assert np.isnan(nowcast([10, np.nan, np.nan, 5])[-1])  # only 1 of the 3 newest hours
    assert nowcast(np.full(30, 30.0))[-1] == pytest.approx(30.0)


def test_daily_mean_level_needs_18_hours():
    t = pd.date_range("2016-01-01", periods=48, freq="h", tz="Asia/Shanghai").tz_convert("UTC")
    v = np.r_[np.full(24, 40.0), np.full(24, np.nan)]
    v[30:40] = 5.0  # 10 valid hours on day 2
    out = daily_mean_level(t, v, STANDARDS["us-epa-2024"], "Asia/Shanghai")
    assert out["level"].tolist() == [2, -1]


def test_custom_standard_toml(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(
        'name = "mine"\nboundary = "upper"\nresolution = 1\nunhealthy = 1\n'
        '[[level]]\nname = "Low"\nc_lo = 0\nc_hi = 19\ni_lo = 0\ni_hi = 50\n'
        '[[level]]\nname = "High"\nc_lo = 20\nc_hi = 100\ni_lo = 51\ni_hi = 100\n'
    )
    std = load_standard(p)
    assert level([19.9, 20], std).tolist() == [0, 1] and index_value(100, std) == 100


TWO = "[[level]]\nname='a'\nc_lo=0\nc_hi=10\ni_lo=0\ni_hi=50\n[[level]]\nname='b'\n"
B = "c_lo=11\nc_hi=30\ni_lo=51\ni_hi=100\n"  # level b, right above a


@pytest.mark.parametrize(
    "body, msg",
    [
        ("[[level]]\nname='a'\nc_lo=0\nc_hi=5\n", "at least two"),
        (
            "[[level]]\nname='a'\nc_lo=10\nc_hi=20\n[[level]]\nname='b'\nc_lo=5\nc_hi=30\n",
            "levels must increase",
        ),
        ("[[level]]\nname='a'\nc_lo=0\nc_hi=5\n[[level]]\nc_lo=6\nc_hi=9\n", "level 1 has no name"),
        (f"{TWO}c_lo=5\nc_hi=30\ni_lo=51\ni_hi=100\n", "without overlapping"),  # b inside a
        (f"{TWO}c_lo=11\nc_hi=30\ni_lo=40\ni_hi=100\n", "without overlapping"),  # index falls
        (f"name='us-epa-2024'\n{TWO}{B}", "built-in standard"),
        (f"unhealthy=1.7\n{TWO}{B}", "whole level number"),
        (f"resolution=-1\n{TWO}{B}", "resolution >= 0"),
        ("[[level]\n", "malformed TOML"),
    ],
)
def test_custom_standard_errors(tmp_path, body, msg):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(AqiError, match=msg):
        load_standard(p)


runner = CliRunner()


def test_cli_levels_value():
    r = runner.invoke(app, ["levels", "--standard", "us-epa-2024", "--value", "35.5"])
    assert r.exit_code == 0
    assert (
        r.output.strip()
        == '35.5 µg/m³ under us-epa-2024: level 2, "Unhealthy for Sensitive Groups", AQI 101'
    )


@pytest.mark.parametrize("key", sorted(STANDARDS))
def test_cli_levels_table_for_every_standard(key):
    r = runner.invoke(app, ["levels", "--standard", key])
    assert r.exit_code == 0 and STANDARDS[key].names[-1] in r.output


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--standard", "xx"], "--standard 'xx': unknown"),
        (["--value", "-3"], "--value -3.0: a concentration"),
        (["--all", "--value", "3"], "--all: prints every built-in table; drop --value"),
        (["--all", "--standard", "us-epa-2024"], "drop --standard or drop --all"),
    ],
)
def test_cli_levels_errors(args, msg):
    r = runner.invoke(app, ["levels", *args])
    assert r.exit_code == 2 and msg in r.output


def test_a_value_past_float_range_is_the_top_level_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = runner.invoke(app, ["levels", "--value", "1e308"])
    assert r.exit_code == 0 and '"Hazardous"' in r.output and "Warning" not in r.output
