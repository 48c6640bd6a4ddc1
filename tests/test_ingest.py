"""Ingest and store: canonical schema, upsert semantics, mappings, atomicity, locking."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import BEIJING, needs_beijing, tree_digest, uci_frame, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aqi.config import AqiError
from aqi.datadir import store_dir
from aqi.ingest import ingest
from aqi.store import SCHEMA, load_manifest, locked, read_station, summary


def test_uci_file_lands_in_typed_utc_partition(tmp_path, uci_csv):
    reports = ingest([uci_csv], tmp_path / "d")
    assert [(r.station, r.rows, r.added) for r in reports] == [("Alpha", 48, 48)]
    part = tmp_path / "d" / "store" / "station=Alpha" / "data.parquet"
    assert pq.read_schema(part).equals(SCHEMA, check_metadata=False)
    df = read_station(tmp_path / "d", "Alpha")
    # 2016-01-01 00:00 Beijing (UTC+8) is 2015-12-31 16:00 UTC
    assert df["time"].iloc[0] == pd.Timestamp("2015-12-31 16:00", tz="UTC")
    src = uci_frame()
    np.testing.assert_allclose(df["pm25"], src["PM2.5"].astype("float32"))
    assert np.isnan(df["wd_deg"][src["wd"] == "C"]).all()  # calm has no direction
    assert (df["wd_deg"][src["wd"] == "NE"] == 45).all()
    entry = load_manifest(tmp_path / "d")["stations"]["Alpha"]
    assert entry["timezone"] == "Asia/Shanghai" and entry["rows"] == 48
    assert len(entry["sources"][0]["sha256"]) == 64


def test_out_of_order_rows_are_sorted(tmp_path):
    path = write_csv(uci_frame().iloc[::-1], tmp_path / "rev.csv")
    df = read_station(ingest([path], tmp_path / "d") and tmp_path / "d", "Alpha")
    assert df["time"].is_monotonic_increasing


def test_newer_file_extends_and_corrects(tmp_path):
    d = tmp_path / "d"
    full = uci_frame(hours=72)
    ingest([write_csv(full.iloc[:48], tmp_path / "a.csv")], d)
    newer = full.iloc[24:].copy()  # overlaps 24 h, adds 24 h
    newer.loc[newer.index[0], "PM2.5"] = 123.0
    [r] = ingest([write_csv(newer, tmp_path / "b.csv")], d)
    assert (r.rows, r.added, r.corrected) == (72, 24, 1)
    assert read_station(d, "Alpha")["pm25"].iloc[24] == 123.0
    names = [s["name"] for s in load_manifest(d)["stations"]["Alpha"]["sources"]]
    assert [Path(n).name for n in names] == ["a.csv", "b.csv"]


def test_two_sources_disagreeing_name_both(tmp_path):
    a = write_csv(uci_frame(hours=24), tmp_path / "a.csv")
    other = uci_frame(hours=24)
    other.loc[5, "PM2.5"] += 1
    b = write_csv(other, tmp_path / "b.csv")
    with pytest.raises(AqiError, match=r"a\.csv.*b\.csv.*two different values"):
        ingest([a, b], tmp_path / "d")
    assert not (tmp_path / "d" / "store" / "station=Alpha").exists()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hours=st.integers(1, 60), seed=st.integers(0, 10_000), start_h=st.integers(0, 23))
def test_ingest_is_idempotent(tmp_path_factory, hours, seed, start_h):
    tmp = tmp_path_factory.mktemp("idem")
    start = str(pd.Timestamp("2016-03-01") + pd.Timedelta(hours=start_h))
    path = write_csv(uci_frame(hours=hours, seed=seed, start=start), tmp / "x.csv")
    ingest([path], tmp / "d")
    first = tree_digest(store_dir(tmp / "d"))
    reports = ingest([path], tmp / "d")
    assert tree_digest(store_dir(tmp / "d")) == first
    assert not any(r.written for r in reports)


def test_folder_and_nested_zip(tmp_path):
    raw = tmp_path / "raw"
    write_csv(uci_frame("Alpha"), raw / "a.csv")
    write_csv(uci_frame("Beta"), raw / "b.csv")
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for f in sorted(raw.iterdir()):
            z.write(f, f"PRSA_Data/{f.name}")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, "PRSA2017.zip")
    assert {r.station for r in ingest([outer], tmp_path / "z")} == {"Alpha", "Beta"}
    assert tree_digest(store_dir(tmp_path / "z")).keys() == {
        k for k in tree_digest(store_dir(ingest([raw], tmp_path / "f") and tmp_path / "f"))
    }


def test_concatenated_gzip_is_read_whole_and_a_cut_one_refused(tmp_path):
    """`gzip >>` appends a second member: every row of both is stored; a file cut short (no end
    marker) is refused in one line with nothing written, never read in part."""
    import gzip

    text = write_csv(uci_frame("Alpha", hours=96), tmp_path / "a.csv").read_bytes()
    head, body = text.split(b"\n", 1)
    cut = body.rfind(b"\n", 0, len(body) // 2) + 1
    two = tmp_path / "two.csv.gz"
    two.write_bytes(gzip.compress(head + b"\n" + body[:cut]) + gzip.compress(body[cut:]))
    (report,) = ingest([two], tmp_path / "d")
    assert len(read_station(tmp_path / "d", "Alpha")) == 96
    short = tmp_path / "short.csv.gz"
    short.write_bytes(gzip.compress(text)[:-40])
    with pytest.raises(AqiError, match="truncated gzip file"):
        ingest([short], tmp_path / "e")
    assert not (tmp_path / "e" / "store").exists()


def test_station_option_filters_uci_files(tmp_path):
    raw = tmp_path / "raw"
    write_csv(uci_frame("Alpha"), raw / "a.csv")
    write_csv(uci_frame("Beta"), raw / "b.csv")
    assert [r.station for r in ingest([raw], tmp_path / "d", station="Beta")] == ["Beta"]


def test_mapping_long_layout_with_units_and_missing_tokens(tmp_path):
    t = pd.date_range("2020-06-01 00:00", periods=30, freq="h")
    df = pd.DataFrame(
        {
            "datetime": t.strftime("%d/%m/%Y %H:%M"),
            "site": "London",
            "PM2.5 (ug/m3)": np.arange(30) + 5.0,
            "CO (mg/m3)": 0.5,
            "Temperature (C)": 15.0,
        }
    )
    df["PM2.5 (ug/m3)"] = df["PM2.5 (ug/m3)"].astype(int).astype(str)
    df.loc[3, "PM2.5 (ug/m3)"] = "-9999"
    path = tmp_path / "london.csv"
    df.to_csv(path, index=False)
    example = Path(__file__).parents[1] / "aqi" / "examples" / "mapping-example.toml"
    ingest([path], tmp_path / "d", mapping=example)
    out = read_station(tmp_path / "d", "London")
    assert out["time"].iloc[0] == pd.Timestamp("2020-05-31 23:00", tz="UTC")  # BST = UTC+1
    assert np.isnan(out["pm25"].iloc[3]) and out["pm25"].iloc[4] == 9.0
    assert (out["co"] == 500.0).all()  # mg/m³ → µg/m³
    assert out["no2"].isna().all()


def test_mapping_wide_layout(tmp_path):
    t = pd.date_range("2021-01-01", periods=10, freq="h", tz="UTC")
    df = pd.DataFrame({"ts": t.strftime("%Y-%m-%dT%H:%M:%S%z"), "North": 10.0, "South": 20.0})
    df.to_csv(tmp_path / "wide.csv", index=False)
    m = tmp_path / "m.toml"
    m.write_text('[time]\ncolumn = "ts"\ntimezone = "UTC"\n[station]\nwide = "pm25"\n')
    assert {r.station for r in ingest([tmp_path / "wide.csv"], tmp_path / "d", mapping=m)} == {
        "North",
        "South",
    }
    assert (read_station(tmp_path / "d", "South")["pm25"] == 20).all()


def test_mapping_station_from_option(tmp_path):
    df = pd.DataFrame({"yr": [2020] * 3, "mo": 1, "dy": 1, "hr": [0, 1, 2], "pm": [1.0, 2, 3]})
    df.to_csv(tmp_path / "s.csv", index=False)
    m = tmp_path / "m.toml"
    m.write_text(
        '[time]\nparts = {year="yr", month="mo", day="dy", hour="hr"}\n'
        'timezone = "America/New_York"\n[columns]\npm25 = "pm"\n'
    )
    ingest([tmp_path / "s.csv"], tmp_path / "d", mapping=m, station="Site_7")
    assert read_station(tmp_path / "d", "Site_7")["pm25"].tolist() == [1, 2, 3]


def test_second_ingest_is_refused_while_locked(tmp_path, uci_csv):
    with locked(tmp_path / "d"), pytest.raises(AqiError, match="another ingest"):
        ingest([uci_csv], tmp_path / "d")


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import aqi.datadir as s
    from aqi.ingest import ingest
    when, calls, real_replace = sys.argv[1], [0], os.replace
    def replace(src, dst):  # SIGKILL ourselves just before or just after a file goes live
        calls[0] += 1
        if when == "before-first-rename" and calls[0] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if when == "after-first-rename":
            os.kill(os.getpid(), signal.SIGKILL)
    s.os.replace = replace
    ingest([Path(p) for p in sys.argv[3:]], Path(sys.argv[2]))
""")


@pytest.mark.parametrize("when", ["before-first-rename", "after-first-rename"])
def test_kill_9_mid_ingest_leaves_previous_store_readable(tmp_path, when):
    d = tmp_path / "d"
    ingest(
        [
            write_csv(uci_frame("Alpha", hours=24), tmp_path / "a.csv"),
            write_csv(uci_frame("Beta", hours=24), tmp_path / "b.csv"),
        ],
        d,
    )
    before = {st: read_station(d, st) for st in ("Alpha", "Beta")}
    newer = [
        write_csv(uci_frame(st, hours=48, seed=1 + i), tmp_path / f"n{i}.csv")
        for i, st in enumerate(("Alpha", "Beta"))
    ]
    for p in newer:  # same first 24 h as before would clash in values; shift them to later hours
        df = pd.read_csv(p)
        write_csv(df.iloc[24:], p)
    proc = subprocess.run([sys.executable, "-c", KILLER, when, str(d), *map(str, newer)])
    assert proc.returncode == -9
    manifest = load_manifest(d)  # still parses
    assert set(manifest["stations"]) == {"Alpha", "Beta"}
    for name in ("Alpha", "Beta"):
        now = read_station(d, name)
        assert len(now) in (24, 48)  # wholly old or wholly new
        pd.testing.assert_frame_equal(now.iloc[:24], before[name])
    assert {r.station for r in ingest(newer, d)} == {"Alpha", "Beta"}  # recovers; stale tmp cleaned
    assert not list(store_dir(d).rglob("*.tmp"))


@needs_beijing
def test_real_beijing_ingest(tmp_path):
    reports = ingest([BEIJING], tmp_path / "d")
    assert len(reports) == 12 and sum(r.rows for r in reports) == 420_768
    rows = {r["station"]: r for r in summary(tmp_path / "d")}
    assert rows["Aotizhongxin"]["first"] == "2013-03-01T00:00:00+08:00"
    assert 0 < rows["Aotizhongxin"]["missing_pm25_pct"] < 5
    sources = load_manifest(tmp_path / "d")["stations"]["Dongsi"]["sources"]
    assert sources[0]["sha256"].startswith("9c0020214425")


def test_columns_a_layout_does_not_read_are_reported(tmp_path):
    notes: list[str] = []
    df = uci_frame(hours=24).assign(PM1=3.0)
    ingest([write_csv(df, tmp_path / "extra.csv")], tmp_path / "d", notes=notes)
    assert notes == [f"{tmp_path / 'extra.csv'}: column(s) not read: PM1"]
