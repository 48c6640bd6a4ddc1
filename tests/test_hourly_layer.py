"""The store's hourly delta layer: a small ingest of recent hours is one delta file, read back
exactly as if each partition had been rewritten, and `aqi compact` folds it into the same bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import tree_digest, uci_frame, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aqi.cli import app
from aqi.config import IngestConfig
from aqi.datadir import partition_path
from aqi.deltas import delta_files
from aqi.ingest import compact_store, ingest
from aqi.store import load_manifest, read_station, read_stations, stations

runner = CliRunner()
SLOW = IngestConfig(max_deltas=0)  # never append: every ingest rewrites the partitions
STATIONS = ("Alpha", "Beta", "Gamma")


def hour_files(tmp_path, frames: dict[str, pd.DataFrame], hour: int, tag: str = "") -> list:
    """One file per station holding only row `hour` of its frame (an hourly feed's drop)."""
    return [
        write_csv(df.iloc[[hour]], tmp_path / f"h{hour}{tag}" / f"{s}.csv")
        for s, df in frames.items()
        if hour < len(df)
    ]


def stores(tmp_path, frames, first: int = 24):
    """(store appended hour by hour, the same rewritten hour by hour) after `first` hours of each."""
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for d in (fast, slow):
        ingest(
            [write_csv(df.iloc[:first], tmp_path / "base" / f"{s}.csv") for s, df in frames.items()], d
        )
    return fast, slow


def same_rows(a, b) -> None:
    assert stations(a) == stations(b)
    for s in stations(a):
        pd.testing.assert_frame_equal(read_station(a, s), read_station(b, s))
    assert load_manifest(a) == load_manifest(b)


def test_hourly_files_append_one_delta_each_and_read_as_rewritten(tmp_path):
    frames = {s: uci_frame(s, hours=30, seed=i) for i, s in enumerate(STATIONS[:2])}
    fast, slow = stores(tmp_path, frames)
    parts = {s: partition_path(fast, s).read_bytes() for s in frames}
    for h in range(24, 30):
        files = hour_files(tmp_path, frames, h)
        reports = ingest(files, fast)
        ingest(files, slow, cfg=SLOW)
        assert [(r.added, r.written) for r in reports] == [(1, True)] * 2
    assert len(delta_files(fast)) == 6 and not delta_files(slow)
    assert parts == {s: partition_path(fast, s).read_bytes() for s in frames}  # untouched
    same_rows(fast, slow)
    before = tree_digest(fast)
    assert [r.written for r in ingest(hour_files(tmp_path, frames, 29), fast)] == [False, False]
    assert tree_digest(fast) == before  # idempotent: nothing written
    r = runner.invoke(app, ["--data-dir", str(fast), "compact"])
    assert r.exit_code == 0 and "2 station partition(s) rewritten" in r.output
    assert tree_digest(fast) == tree_digest(slow)  # the same bytes as rewriting every hour


def test_a_correction_a_fill_and_a_blank_through_the_delta_layer(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=27)}
    fast, slow = stores(tmp_path, frames, first=25)
    df = frames["Alpha"]
    ingest(hour_files(tmp_path, frames, 25), fast)
    ingest(hour_files(tmp_path, frames, 25), slow, cfg=SLOW)
    fixed = df.copy()
    fixed.loc[25, "PM2.5"] += 5.0  # the feed re-issues hour 25 with a corrected PM2.5
    fixed.loc[25, "TEMP"] = np.nan  # and without its temperature: a blank never erases
    for d, cfg in ((fast, IngestConfig()), (slow, SLOW)):
        [r] = ingest(hour_files(tmp_path, {"Alpha": fixed}, 25, "fix"), d, cfg=cfg)
        assert (r.added, r.corrected, r.filled) == (0, 1, 0)
    assert len(delta_files(fast)) == 2
    got = read_station(fast, "Alpha").iloc[25]
    assert got["pm25"] == np.float32(df.loc[25, "PM2.5"] + 5.0) and got["temp"] == np.float32(
        df.loc[25, "TEMP"]
    )
    same_rows(fast, slow)


def test_an_hour_already_in_a_partition_rewrites_it_after_folding_the_deltas(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=28)}
    fast, slow = stores(tmp_path, frames)
    for h in (24, 25):
        ingest(hour_files(tmp_path, frames, h), fast)
        ingest(hour_files(tmp_path, frames, h), slow, cfg=SLOW)
    old = frames["Alpha"].copy()
    old.loc[3, "PM2.5"] += 1.0  # a late correction of an hour the partition holds
    for d, cfg in ((fast, IngestConfig()), (slow, SLOW)):
        ingest(hour_files(tmp_path, {"Alpha": old}, 3, "late"), d, cfg=cfg)
    assert not delta_files(fast)  # folded first, then the partition rewritten
    assert tree_digest(fast) == tree_digest(slow)


def test_an_ingest_past_max_deltas_compacts_first(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=30)}
    fast, slow = stores(tmp_path, frames)
    cfg = IngestConfig(max_deltas=3)
    for h in range(24, 30):
        ingest(hour_files(tmp_path, frames, h), fast, cfg=cfg)
        ingest(hour_files(tmp_path, frames, h), slow, cfg=SLOW)
        assert len(delta_files(fast)) == (h - 23) % 4
    same_rows(fast, slow)


def test_a_new_station_can_live_in_the_delta_layer_alone(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=26)}
    fast, _ = stores(tmp_path, frames)
    newcomer = {"Gamma": uci_frame("Gamma", hours=2, seed=5)}
    ingest(hour_files(tmp_path, newcomer, 0) + hour_files(tmp_path, newcomer, 1, "b"), fast)
    assert not partition_path(fast, "Gamma").exists()
    assert stations(fast) == ["Alpha", "Gamma"] and load_manifest(fast)["stations"]["Gamma"]["rows"] == 2
    r = runner.invoke(app, ["--data-dir", str(fast), "stations", "--format", "json"])
    assert r.exit_code == 0 and '"station": "Gamma"' in r.output
    assert compact_store(fast) == (1, [])
    assert len(read_station(fast, "Gamma")) == 2 and partition_path(fast, "Gamma").exists()


def test_a_corrupt_delta_file_is_one_line(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=26)}
    fast, _ = stores(tmp_path, frames)
    ingest(hour_files(tmp_path, frames, 24), fast)
    [f] = delta_files(fast)
    f.write_bytes(b"PAR1 not a parquet file")
    before = tree_digest(fast)
    r = runner.invoke(app, ["--data-dir", str(fast), "stations"])
    assert r.exit_code == 2 and "corrupt delta file" in r.output and str(f) in r.output
    assert tree_digest(fast) == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    drops=st.lists(
        st.tuples(st.integers(20, 23), st.floats(0, 300), st.booleans()), min_size=1, max_size=8
    )
)
def test_any_sequence_of_hourly_drops_reads_as_the_rewritten_store(tmp_path_factory, drops):
    """Law: for any sequence of one-hour drops (new hours, re-issued hours with another PM2.5 or
    a blank one), the appended store reads exactly as the store rewritten at each drop."""
    tmp = tmp_path_factory.mktemp("law")
    frames = {"Alpha": uci_frame("Alpha", hours=30)}
    fast, slow = stores(tmp, frames, first=20)
    for i, (hour, pm, blank) in enumerate(drops):
        df = frames["Alpha"].copy()
        df.loc[hour, "PM2.5"] = np.nan if blank else pm
        files = hour_files(tmp, {"Alpha": df}, hour, f"d{i}")
        for d, cfg in (
            (fast, IngestConfig(replace_share=1.0)),
            (slow, IngestConfig(max_deltas=0, replace_share=1.0)),
        ):
            ingest(files, d, cfg=cfg)
    same_rows(fast, slow)


def test_a_station_only_in_deltas_read_past_its_rows_is_empty_not_none(tmp_path):
    frames = {"Alpha": uci_frame("Alpha", hours=26)}
    fast, _ = stores(tmp_path, frames)
    ingest(hour_files(tmp_path, {"Gamma": uci_frame("Gamma", hours=1)}, 0), fast)
    later = pd.Timestamp("2030-01-01", tz="UTC")
    df = read_station(fast, "Gamma", since=later, columns=["time", "pm25"])
    assert df.empty and list(df.columns) == ["time", "pm25"]
    frames_, bad = read_stations(fast, ["Alpha", "Gamma"], later)
    assert not bad and frames_["Gamma"].empty and frames_["Alpha"].empty


def test_a_refused_file_writes_nothing_even_after_other_stations_merged(tmp_path):
    frames = {s: uci_frame(s, hours=48, seed=i) for i, s in enumerate(STATIONS[:2])}
    fast, _ = stores(tmp_path, frames)
    ingest(hour_files(tmp_path, frames, 24), fast)  # a delta file: a rewrite must fold it first
    wrong = uci_frame("Beta", hours=25, seed=9)  # another station's values under Beta's name
    files = [
        write_csv(frames["Alpha"].iloc[25:], tmp_path / "bad" / "Alpha.csv"),
        write_csv(wrong, tmp_path / "bad" / "Beta.csv"),
    ]
    before = tree_digest(fast)
    r = runner.invoke(app, ["--data-dir", str(fast), "ingest", *map(str, files)])
    assert r.exit_code == 2 and "would change" in r.output and "Beta" in r.output
    assert tree_digest(fast) == before  # Alpha, merged first, was not written; nothing folded


def test_a_compaction_between_a_readers_two_reads_changes_nothing(tmp_path, monkeypatch):
    import aqi.deltas

    frames = {"Alpha": uci_frame("Alpha", hours=27)}
    fast, slow = stores(tmp_path, frames)
    for h in (24, 25, 26):
        ingest(hour_files(tmp_path, frames, h), fast)
        ingest(hour_files(tmp_path, frames, h), slow, cfg=SLOW)
    real, done = aqi.deltas.pq.read_table, []

    def compacting_first(path, *a, **k):  # another process compacts as this one reads a delta
        if not done and "_delta" in str(path):
            done.append(1)
            monkeypatch.setattr(aqi.deltas.pq, "read_table", real)
            compact_store(fast)
            monkeypatch.setattr(aqi.deltas.pq, "read_table", compacting_first)
        return real(path, *a, **k)

    aqi.deltas._CACHE.clear()
    monkeypatch.setattr(aqi.deltas.pq, "read_table", compacting_first)
    pd.testing.assert_frame_equal(read_station(fast, "Alpha"), read_station(slow, "Alpha"))
    assert done and not delta_files(fast)


def test_a_partition_the_manifest_has_no_span_for_is_rewritten_not_appended(tmp_path):
    from aqi.datadir import manifest_path
    from aqi.store import write_partition

    frames = {"Alpha": uci_frame("Alpha", hours=26)}
    fast, _ = stores(tmp_path, frames)
    write_partition(fast, "Alpha", read_station(fast, "Alpha"))  # no entry in its metadata
    manifest_path(fast).unlink()  # and no manifest: nothing knows Alpha's last hour
    [r] = ingest(hour_files(tmp_path, frames, 24) + hour_files(tmp_path, frames, 25), fast)
    assert not delta_files(fast) and (r.added, r.rows) == (2, 26)
