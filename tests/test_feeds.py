"""Agency feeds with no mapping file: the hourly rule on synthetic records, an EPA AQS file built
from the published column list, and the real OpenAQ and AirNow files in ../shared/data."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import BEIJING

from aqi.feeds import Feed, detect, offset_zone, to_hourly
from aqi.ingest import ingest
from aqi.store import load_manifest, read_station

DATA = BEIJING.parent
OPENAQ, AIRNOW = DATA / "openaq-archive", DATA / "airnow-hourlydata"
needs_feeds = pytest.mark.skipif(not AIRNOW.is_dir(), reason="../shared feed files not present")


def records(times, values, param="pm25", sensor="1") -> Feed:
    t = pd.to_datetime(times, utc=True)
    df = pd.DataFrame({"station": "S", "time": t, "param": param, "value": values, "sensor": sensor})
    return Feed("test", df.assign(_line=np.arange(len(df)) + 2))


def test_sub_hourly_records_become_hourly_means_with_75_percent_coverage():
    five = pd.date_range("2025-01-01 00:00", periods=24, freq="5min")  # two hours, 12 each
    values = np.arange(24.0)
    keep = np.r_[np.arange(12), 12 + np.arange(8)]  # hour 1 has 8 of 12 records: 67 %
    out = to_hourly(records(five[keep], values[keep]), "f")
    assert out["pm25"].iloc[0] == pytest.approx(values[:12].mean())
    assert np.isnan(out["pm25"].iloc[1])
    keep9 = np.r_[np.arange(12), 12 + np.arange(9)]  # 9 of 12: 75 %, kept
    assert not np.isnan(to_hourly(records(five[keep9], values[keep9]), "f")["pm25"].iloc[1])


def test_off_the_hour_records_take_the_hour_they_start_in_and_sensors_are_averaged():
    f = records(["2024-04-08 12:30", "2024-04-08 12:30", "2024-04-08 13:30"], [10.0, 20.0, 5.0])
    f.records.loc[1, "sensor"] = "2"
    out = to_hourly(f, "f")
    assert list(out["time"].dt.hour) == [12, 13] and list(out["pm25"]) == [15.0, 5.0]


def test_sentinels_missing_small_negatives_zero_large_negatives_missing():
    f = records(pd.date_range("2025-01-01", periods=4, freq="h"), [-999.0, -3.5, -40.0, 7.0])
    out = to_hourly(f, "f")
    assert np.isnan(out["pm25"][0]) and out["pm25"][1] == 0 and np.isnan(out["pm25"][2])
    assert any("1 negative concentration(s) >= -10 set to 0" in n for n in f.notes)


def test_fixed_offsets_and_detection():
    assert [offset_zone(h) for h in (5.5, 5.75, -4, 0, -9.5)] == [
        "+05:30", "+05:45", "-04:00", "+00:00", "-09:30",
    ]  # fmt: skip
    assert detect(b'"location_id","sensors_id","location","datetime","lat"\r\n') == "openaq"
    assert detect(b"04/08/24|00:00|000010601|Goose Bay|-4|OZONE|PPB|44|Canada\n") == "airnow"
    assert detect(b"No,year,month,day,hour,PM2.5\n") is None


# The columns EPA publishes for hourly_88101_YYYY.csv (aqs.epa.gov/aqsweb/airdata/FileFormats.html).
# No real AQS file is at hand: this one is built from that list.
AQS_COLUMNS = [
    "State Code", "County Code", "Site Num", "Parameter Code", "POC", "Latitude", "Longitude",
    "Datum", "Parameter Name", "Date Local", "Time Local", "Date GMT", "Time GMT",
    "Sample Measurement", "Units of Measure", "MDL", "Uncertainty", "Qualifier", "Method Type",
    "Method Code", "Method Name", "State Name", "County Name", "Date of Last Change",
]  # fmt: skip


def aqs_rows(param="88101", units="Micrograms/cubic meter (LC)", values=(12.0, 14.0), poc="1"):
    return [
        ["06", "037", "1103", param, poc, "34.06659", "-118.22688", "WGS84", "PM2.5 - Local Conditions",
         "2024-01-01", f"{h:02d}:00", "2024-01-01", f"{h + 8:02d}:00", str(v), units, "2", "", "",
         "FEM", "209", "Teledyne", "California", "Los Angeles", "2024-05-01"]
        for h, v in enumerate(values)
    ]  # fmt: skip


def test_aqs_hourly_file_with_two_monitors_and_a_gas_in_ppm(tmp_path):
    rows = aqs_rows() + aqs_rows(values=(14.0, 16.0), poc="3")
    rows += aqs_rows("42602", "Parts per billion", (10.0, 20.0))  # NO2
    path = tmp_path / "hourly_88101_2024.csv"
    pd.DataFrame(rows, columns=AQS_COLUMNS).to_csv(path, index=False)
    [r] = ingest([path], tmp_path / "d")
    df = read_station(tmp_path / "d", "060371103")
    assert r.rows == 2 and list(df["pm25"]) == [13.0, 15.0]  # the two POCs averaged
    assert df["no2"].iloc[0] == pytest.approx(10 * 46.01 / 24.45, rel=1e-4)  # ppb → µg/m³
    entry = load_manifest(tmp_path / "d")["stations"]["060371103"]
    assert entry["timezone"] == "-08:00" and entry["latitude"] == pytest.approx(34.06659)
    assert entry["name"] == "Los Angeles, California" and entry["source"] == "aqs"
    assert df["time"].iloc[0] == pd.Timestamp("2024-01-01 08:00", tz="UTC")


@needs_feeds
def test_real_openaq_delhi_files_csv_and_gz(tmp_path):
    files = sorted(OPENAQ.glob("location-*.csv"))
    assert len(files) == 115
    [r] = ingest(files, tmp_path / "d")
    df = read_station(tmp_path / "d", "8118")
    assert r.rows == 2760 and int(df["pm25"].isna().sum()) == 102  # the -999 sentinels
    assert df["pm25"].min() >= 0 and df[["pm10", "o3", "temp"]].isna().all().all()
    entry = load_manifest(tmp_path / "d")["stations"]["8118"]
    assert entry["timezone"] == "+05:30" and entry["latitude"] == pytest.approx(28.63576)
    assert entry["names"] == ["New Delhi-8118", "US Diplomatic Post: New Delhi-8118"]
    # the archive's hour-ending 2025-01-01T01:00+05:30 is the hour starting 00:00 local
    assert df["time"].iloc[0] == pd.Timestamp("2024-12-31 18:30", tz="UTC").floor("h")
    gz = tmp_path / "gz" / (files[0].name + ".gz")
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(files[0].read_bytes()))
    [g] = ingest([gz], tmp_path / "g")
    assert g.rows == 24
    pd.testing.assert_frame_equal(read_station(tmp_path / "g", "8118"), df.iloc[:24])


@needs_feeds
def test_real_airnow_hours(tmp_path):
    files = [AIRNOW / f"HourlyData_20240413{h}.dat.gz" for h in (19, 20, 21)]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder)
    (folder / "MANIFEST.csv").write_text("file,sha256\na.dat,00\n")  # not data: skipped, noted
    notes: list[str] = []
    reports = ingest([folder], tmp_path / "d", notes=notes)
    d = tmp_path / "d"
    meta = load_manifest(d)["stations"]
    pm = {r.station for r in reports if read_station(d, r.station)["pm25"].notna().any()}
    assert len(meta) > 2000 and 1300 < len(pm) <= 1428
    assert any("MANIFEST.csv: skipped" in n for n in notes)
    assert any("negative concentration" in n for n in notes)
    assert meta["000050308"]["name"].startswith("Québec")  # Latin-1 bytes
    assert meta["DS1010001"]["timezone"] == "+05:30" and meta["104MMR010001"]["timezone"] == "+06:30"
    assert read_station(d, "148CHD010001")["pm25"].iloc[0] == 605.0  # N'Djamena, 19Z: real
    assert min(read_station(d, s)["pm25"].min() for s in list(pm)[:200]) >= 0
    again = ingest([folder], d)
    assert not any(r.written for r in again)  # idempotent


@needs_feeds
def test_real_openaq_delhi_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from aqi.cli import app

    d = str(tmp_path / "d")
    run = CliRunner().invoke
    assert (
        run(app, ["--data-dir", d, "ingest", *map(str, sorted(OPENAQ.glob("location-*.csv")))]).exit_code
        == 0
    )
    dates = ["--train-end", "2025-03-10", "--val-end", "2025-03-31"]  # 115 days: a short series
    tiny = ["--epochs", "1", "--members", "1", "--hidden", "16", "--device", "cpu", "-q"]
    r = run(app, ["--data-dir", d, "train", "--station", "8118", *dates, *tiny])
    assert r.exit_code == 0, r.output
    from aqi.trained import load

    tm = load(tmp_path / "d", "8118")  # the only measure the feed has is the only input
    assert tm.config.window.inputs == ("pm25",) and "pm10" not in tm.info["features"]
    r = run(app, ["--data-dir", d, "evaluate", "--station", "8118", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)["stations"]["8118"]["gaps"]) == {"0", "3", "6", "12", "24"}
    r = run(app, ["--data-dir", d, "forecast", "--station", "8118", "--format", "json"])
    [f] = json.loads(r.stdout)
    assert f["issued_at"] == "2025-04-25T22:30:00+05:30" and f["last_observation_age_h"] == 0


@needs_feeds
def test_real_airnow_hourly_job_network_and_forecast_all(tmp_path):
    """Every AirNow hour, as an hourly job stores them (200 at once, then the last 9 one by one
    through the delta layer), one network model over every site with a window, and a forecast
    of all of them. 9 days of mostly clean April hours: this shows the pipeline, not skill."""
    from typer.testing import CliRunner

    from aqi.cli import app
    from aqi.deltas import delta_files

    d, run = tmp_path / "d", CliRunner().invoke
    files = sorted(AIRNOW.glob("HourlyData_*.dat.gz"))
    assert len(files) == 209
    assert run(app, ["--data-dir", str(d), "ingest", *map(str, files[:200]), "-q"]).exit_code == 0
    for f in files[200:]:
        assert run(app, ["--data-dir", str(d), "ingest", str(f), "-q"]).exit_code == 0
    assert len(delta_files(d)) == 9
    rows = load_manifest(d)["stations"]
    assert len(rows) == 2296 and sum(e["rows"] for e in rows.values()) == 461_414
    dates = ["--train-end", "2024-04-13T23:00+00:00", "--val-end", "2024-04-15T11:00+00:00"]
    tiny = ["--epochs", "1", "--members", "1", "--hidden", "8", "--level-hidden", "4", "--layers", "1"]
    tiny += ["--device", "cpu"]
    r = run(app, ["--data-dir", str(d), "train", "--station", "all", *dates, *tiny])
    assert r.exit_code == 0, r.output
    assert "network model of 1412 stations" in r.output  # 4 more had no window whose targets end by then
    assert "884 station(s) without a complete window before" in r.output and "132,933 train" in r.output
    r = run(app, ["--data-dir", str(d), "forecast", "--station", "all", "--format", "json"])
    out = json.loads(r.stdout)  # every site it can forecast, then exit 2 naming the others
    assert r.exit_code == 2 and len({f["station"] for f in out}) == 1397
    assert sum(f["last_observation_age_h"] > 0 for f in out) == 18  # through a feed gap
    assert r.stderr.count("is stale") == 15 and "Traceback" not in r.output
