"""The upsert rule, the manifest rebuilt from the partitions, and a corrupt partition that harms only
its own station and is repaired by re-ingesting its raw file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import uci_frame, write_csv
from typer.testing import CliRunner

from aqi.cli import app
from aqi.config import AqiError
from aqi.datadir import manifest_path, partition_path
from aqi.ingest import ingest
from aqi.store import load_manifest, read_station, stations

runner = CliRunner()


def test_a_missing_value_never_overwrites_a_present_one(tmp_path):
    d = tmp_path / "d"
    df = uci_frame("Alpha", hours=72)
    ingest([write_csv(df, tmp_path / "a.csv")], d)
    blank = df.copy()
    blank.loc[24:, "PM2.5"] = np.nan  # a feed whose last 48 hours lost their PM2.5
    [r] = ingest([write_csv(blank, tmp_path / "blank.csv")], d)
    assert (r.added, r.corrected, r.filled, r.written) == (0, 0, 0, False)
    np.testing.assert_array_equal(read_station(d, "Alpha")["pm25"], df["PM2.5"].astype(np.float32))


def test_corrections_and_fills_are_counted(tmp_path):
    d = tmp_path / "d"
    df = uci_frame("Alpha", hours=48)
    first = df.copy()
    first.loc[[3, 4], "PM2.5"] = np.nan
    ingest([write_csv(first, tmp_path / "a.csv")], d)
    second = df.copy()
    second.loc[[10, 11, 12], "PM2.5"] += 1  # three corrections, the two gaps filled
    [r] = ingest([write_csv(second, tmp_path / "b.csv")], d)
    assert (r.added, r.corrected, r.filled) == (0, 3, 2)
    np.testing.assert_array_equal(read_station(d, "Alpha")["pm25"], second["PM2.5"].astype(np.float32))


def test_a_file_changing_most_stored_hours_is_refused_unless_replace(tmp_path):
    d = tmp_path / "d"
    ingest([write_csv(uci_frame("Alpha", hours=48, seed=0), tmp_path / "a.csv")], d)
    before = read_station(d, "Alpha")
    other = uci_frame("Alpha", hours=48, seed=7)  # another station's values under this name
    other.loc[5, "PM2.5"] = np.nan
    path = write_csv(other, tmp_path / "other.csv")
    with pytest.raises(AqiError, match="would change .* of station Alpha's 48 stored hours"):
        ingest([path], d)
    assert read_station(d, "Alpha").equals(before)
    [r] = ingest([path], d, replace=True)
    assert r.written and r.corrected > 24
    after = read_station(d, "Alpha")["pm25"]
    assert np.isnan(after[5])  # --replace: the file wins whole, its missing values too
    np.testing.assert_array_equal(after, other["PM2.5"].astype(np.float32))


def test_a_station_hidden_by_a_kill_before_the_manifest_comes_back(tmp_path, monkeypatch):
    import aqi.ingest

    d = tmp_path / "d"
    ingest([write_csv(uci_frame("Alpha", hours=24), tmp_path / "a.csv")], d)
    beta = write_csv(uci_frame("Beta", hours=24), tmp_path / "b.csv")
    real = aqi.ingest.write_manifest
    monkeypatch.setattr(aqi.ingest, "write_manifest", lambda *a: (_ for _ in ()).throw(OSError(28)))
    with pytest.raises(OSError):
        ingest([beta], d)  # Beta's partition is written, the manifest is not
    assert "Beta" not in json.loads(manifest_path(d).read_text())["stations"]
    assert stations(d) == ["Alpha", "Beta"]  # rebuilt from the partitions on read
    assert load_manifest(d)["stations"]["Beta"]["timezone"] == "Asia/Shanghai"
    monkeypatch.setattr(aqi.ingest, "write_manifest", real)
    [r] = ingest([beta], d)
    assert not r.written  # the partition was already right: only the manifest is written
    assert "Beta" in json.loads(manifest_path(d).read_text())["stations"]


@pytest.mark.parametrize("garbage", ["{not json", "{}", '{"stations": []}', "[1]"])
def test_a_corrupt_manifest_is_rebuilt_from_the_partitions(tmp_path, garbage):
    d = tmp_path / "d"
    ingest([write_csv(uci_frame(s, hours=24), tmp_path / f"{s}.csv") for s in ("A", "B")], d)
    good = load_manifest(d)
    manifest_path(d).write_text(garbage)
    assert load_manifest(d) == good
    ingest([tmp_path / "A.csv"], d)  # any ingest writes the repaired manifest
    assert json.loads(manifest_path(d).read_text()) == good


def corrupt(data, station: str) -> None:
    partition_path(data, station).write_bytes(b"PAR1 not parquet PAR1")


def aqi(data, *args):
    return runner.invoke(app, ["--data-dir", str(data), *args])


def test_a_corrupt_partition_harms_only_its_station_and_reingest_repairs_it(template, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(template, root)
    data = root / "data"
    corrupt(data, "Synth")
    r = aqi(data, "forecast", "--station", "all", "--format", "json")
    assert r.exit_code == 2
    assert [f["station"] for f in json.loads(r.stdout)] == ["Other"]  # the healthy one still is
    assert "Synth" in r.stderr and "corrupt partition" in r.stderr and "aqi ingest" in r.stderr
    listed = json.loads(aqi(data, "stations", "--format", "json").stdout)
    assert [("error" in s) for s in listed] == [False, True]  # Other, Synth
    r = aqi(data, "ingest", str(root / "raw" / "Synth.csv"))
    assert r.exit_code == 0 and "corrupt partition rebuilt" in r.output
    assert aqi(data, "forecast", "--station", "all").exit_code == 0


def test_evaluate_all_scores_the_healthy_stations_beside_a_corrupt_one(template, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(template, root)
    corrupt(root / "data", "Synth")
    r = aqi(root / "data", "evaluate", "--station", "all", "-q")
    assert r.exit_code == 2 and "Synth" in r.stderr and "the other 1 were scored" in r.stderr
    summary = json.loads((root / "data" / "reports" / "evaluate" / "summary.json").read_text())
    assert "Other" in json.dumps(summary) and "Synth" not in json.dumps(summary)


def test_a_corrupt_station_is_a_missing_neighbour_to_the_network_model(network_store, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(network_store, data)
    corrupt(data, "B")  # covered by the network model, and a neighbour of A
    r = aqi(data, "forecast", "--station", "all", "--format", "json")
    assert r.exit_code == 2 and "B: " in r.stderr and "corrupt partition" in r.stderr
    assert [f["station"] for f in json.loads(r.stdout)] == ["A", "C"]


def test_per_station_training_of_all_goes_on_past_a_corrupt_station(template, tmp_path):
    from conftest import NETWORK_TINY

    root = tmp_path / "root"
    shutil.copytree(template, root)
    corrupt(root / "data", "Synth")
    before = (root / "data" / "models" / "Other" / "CURRENT").read_text()
    r = aqi(root / "data", "train", "--station", "all", "--per-station", "-q", *NETWORK_TINY)
    assert r.exit_code == 2 and "Synth: " in r.stderr and "the other 1 were trained" in r.stderr
    assert (root / "data" / "models" / "Other" / "CURRENT").read_text() != before
