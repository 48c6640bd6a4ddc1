"""`aqi stations --locations FILE`: coordinates for feeds that carry none; the neighbour rule."""

from __future__ import annotations

import json

import pytest
from conftest import tree_digest, uci_frame, write_csv
from typer.testing import CliRunner

from aqi.cli import app
from aqi.config import AqiError
from aqi.locations import read_locations
from aqi.store import load_manifest
from aqi.train_network import by_distance

runner = CliRunner()


def aqi(d, *args):
    return runner.invoke(app, ["--data-dir", str(d), *args])


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "d"
    assert aqi(d, "ingest", str(write_csv(uci_frame(), tmp_path / "a.csv"))).exit_code == 0
    return d


def test_locations_are_stored_and_kept_by_a_later_ingest(store, tmp_path):
    f = tmp_path / "sites.csv"
    f.write_text("site_name,station,latitude,longitude\nx,Alpha,39.982,116.397\ny,Elsewhere,1,2\n")
    r = aqi(store, "stations", "--locations", str(f), "--format", "json")
    assert r.exit_code == 0 and "coordinates of 1 station(s) stored; 1 row(s) of others" in r.stderr
    assert json.loads(r.stdout)[0]["latitude"] == 39.982  # stdout stays JSON
    entry = load_manifest(store)["stations"]["Alpha"]
    assert (entry["latitude"], entry["longitude"]) == (39.982, 116.397)
    later = uci_frame(start="2016-01-03")  # a feed without coordinates never erases them
    assert aqi(store, "ingest", str(write_csv(later, tmp_path / "b.csv"))).exit_code == 0
    assert load_manifest(store)["stations"]["Alpha"]["longitude"] == 116.397


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("station,lat,lon\nAlpha,1,2\n", "no column latitude, longitude"),
        ("station,latitude,longitude\nAlpha,91,2\n", "latitude of 'Alpha' is not a number in [-90, 90]"),
        ("station,latitude,longitude\nAlpha,1,east\n", "longitude of 'Alpha' is not a number"),
        ("station,latitude,longitude\nAlpha,1,2\nAlpha,1,3\n", "'Alpha' has two different locations"),
        (b"\xff\xfe\x00bad", "not a readable CSV"),
        ("station,latitude,longitude\nAlpha_aq,1,2\n", "no row names a station in the store"),
        ("station,latitude,longitude\n", "no row names a station in the store"),
    ],
)
def test_a_bad_locations_file_is_one_line_exit_2_store_untouched(store, tmp_path, body, message):
    f = tmp_path / "sites.csv"
    f.write_bytes(body if isinstance(body, bytes) else body.encode())
    before = tree_digest(store)
    r = aqi(store, "stations", "--locations", str(f))
    assert r.exit_code == 2 and message in r.output, r.output
    assert r.output.count("\n") == 1 and tree_digest(store) == before


def test_neighbours_by_rule():
    coords = {"A": [0.0, 0.0], "B": [0.0, 1.0]}
    assert by_distance("auto", coords) == coords
    assert by_distance("auto", None) is None
    assert by_distance("correlation", coords) is None
    assert by_distance("coordinates", coords) == coords
    with pytest.raises(AqiError, match="aqi stations --locations FILE"):
        by_distance("coordinates", None)


def test_header_case_spaces_and_text_ids_are_read_as_written(tmp_path):
    f = tmp_path / "sites.csv"
    f.write_text("Station , LATITUDE,Longitude\n 000010601 ,1.5, 2\nNA,3,4\n")
    rows = read_locations(f)
    assert rows["station"].tolist() == ["000010601", "NA"]  # leading zeros and 'NA' kept
    assert rows["latitude"].tolist() == [1.5, 3.0]


def test_locations_on_an_empty_data_folder_write_nothing(tmp_path):
    f = tmp_path / "sites.csv"
    f.write_text("station,latitude,longitude\nAlpha,1,2\n")
    r = aqi(tmp_path / "empty", "stations", "--locations", str(f))
    assert r.exit_code == 2 and "run `aqi ingest PATH` first" in r.output
    assert not (tmp_path / "empty").exists()
