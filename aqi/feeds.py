"""Agency feeds read with no mapping file: OpenAQ archive CSV, AirNow HourlyData, EPA AQS hourly.

Each is recognised by its header and shape (`detect`), parsed to long records (station id, UTC
time, canonical parameter, value in canonical units) and then made hourly (`to_hourly`) by one rule
for all: sentinels and unknown units become missing, small negative concentrations (instrument
noise around zero) become 0, records are averaged into the UTC hour they start in when they cover
>= COVERAGE of it, and several sensors of one parameter are averaged. Station metadata (name,
latitude, longitude, time zone as a fixed UTC offset, source) come with the records.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aqi.config import MEASURES, POLLUTANTS, AqiError

SENTINELS = (-999.0, -9999.0)  # "no value" in OpenAQ and AQS files
NEGATIVE_FLOOR = -10.0  # µg/m³: EPA accepts hourly PM2.5 down to -10 (zero noise); below: missing
COVERAGE = 0.75  # share of an hour's expected records needed for an hourly mean
MOLAR_VOLUME = 24.45  # L/mol of an ideal gas at 25 °C and 1 atm: ppb × M / 24.45 = µg/m³
MOLAR_MASS = {"o3": 48.00, "no2": 46.01, "so2": 64.07, "co": 28.01}  # g/mol
# unit (lower case, as written by the feeds) → factor to the canonical unit; gases separately
UNITS = {
    "ug/m3": 1.0, "µg/m³": 1.0, "µg/m3": 1.0, "micrograms/cubic meter (lc)": 1.0,
    "micrograms/cubic meter (25 c)": 1.0, "c": 1.0, "degrees centigrade": 1.0,
    "millibar": 1.0, "mb": 1.0, "hpa": 1.0, "millibars": 1.0, "m/s": 1.0, "knots": 0.514444,
    "degrees": 1.0, "degrees compass": 1.0, "deg": 1.0, "mm": 1.0,
}  # fmt: skip
GAS_UNITS = {"ppb": 1.0, "parts per billion": 1.0, "ppm": 1000.0, "parts per million": 1000.0}


@dataclass
class Feed:
    """Long records of one file: `station`, `time` (UTC), `param`, `value`, `sensor`, `_line`,
    and per station its metadata."""

    kind: str  # 'openaq' | 'airnow' | 'aqs'
    records: pd.DataFrame
    stations: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def detect(head: bytes) -> str | None:
    """Which feed a file's first line is, or None (a UCI or mapped CSV)."""
    first = head.split(b"\n", 1)[0].replace(b'"', b"").strip().lower()
    if first.startswith(b"location_id,sensors_id,location,datetime"):
        return "openaq"
    if b"date gmt" in first and b"sample measurement" in first:
        return "aqs"
    fields = first.split(b"|")
    if len(fields) == 9 and len(fields[0]) == 8 and fields[0][2:3] == b"/":
        return "airnow"
    return None


def offset_zone(hours: float) -> str:
    """A fixed UTC offset as a zone pandas reads: 5.5 → '+05:30', -4 → '-04:00'."""
    minutes = round(hours * 60)
    sign, m = ("-" if minutes < 0 else "+"), abs(minutes)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def to_hourly(feed: Feed, name: str) -> pd.DataFrame:
    """The canonical frame (`station`, `time`, MEASURES, `_src`, `_line`) of a feed's records."""
    r = feed.records
    r = r[r["param"].isin(MEASURES)].copy()
    r.loc[r["value"].isin(SENTINELS), "value"] = np.nan
    pol = r["param"].isin(POLLUTANTS)
    low = pol & (r["value"] < NEGATIVE_FLOOR)
    noise = pol & (r["value"] < 0) & ~low
    if noise.any() or low.any():
        feed.notes.append(
            f"{name}: {int(noise.sum())} negative concentration(s) >= {NEGATIVE_FLOOR:g} set to 0 "
            f"(zero noise), {int(low.sum())} below it set missing"
        )
    r.loc[noise, "value"], r.loc[low, "value"] = 0.0, np.nan
    r["hour"] = r["time"].dt.floor("h")
    hourly = _sensor_hours(r).groupby(["station", "hour", "param"])["value"].mean()
    wide = hourly.unstack("param").reindex(columns=list(MEASURES))
    first_line = r.groupby(["station", "hour"])["_line"].min()
    out = wide.join(first_line).reset_index().rename(columns={"hour": "time"})
    out = out.astype({c: np.float32 for c in MEASURES})
    out["_src"] = name
    return out[["station", "time", *MEASURES, "_src", "_line"]]


def _sensor_hours(r: pd.DataFrame) -> pd.DataFrame:
    """Hourly means per (station, sensor, param), kept where the hour's records reach COVERAGE of
    the sensor's cadence (its median spacing; 1 record per hour for hourly data)."""
    keys = ["station", "sensor", "param"]
    r = r.sort_values([*keys, "time"])
    gap = r.groupby(keys)["time"].diff()
    spacing = gap.groupby([r[k] for k in keys]).transform("median").fillna(pd.Timedelta(hours=1))
    r = r.assign(expected=(pd.Timedelta(hours=1) / spacing).clip(lower=1).round())
    g = r.groupby([*keys, "hour"]).agg(
        value=("value", "mean"), n=("value", "count"), expected=("expected", "first")
    )
    g.loc[g["n"] < COVERAGE * g["expected"], "value"] = np.nan
    return g.reset_index()


def _rows(df: pd.DataFrame):
    """(index, row as a dict) pairs: `iterrows` builds a Series per row, 0.2 ms each, and an
    AirNow hour has ~2,200 sites."""
    return zip(df.index, df.to_dict("records"), strict=True)


def read_feed(kind: str, data: bytes, name: str) -> Feed:
    try:
        return {"openaq": _openaq, "airnow": _airnow, "aqs": _aqs}[kind](data, name)
    except (ValueError, KeyError, pd.errors.ParserError) as e:
        raise AqiError(f"{name}: cannot read as {kind} file ({str(e).splitlines()[0][:100]})") from None


def _convert(param: pd.Series, units: pd.Series, value: pd.Series, name: str, notes: list):
    """Values in canonical units (µg/m³ for gases at 25 °C, 1 atm); unknown units → NaN + note."""
    u = units.astype(str).str.strip().str.lower()
    factor = u.map(UNITS)
    gas = param.isin(MOLAR_MASS) & u.isin(GAS_UNITS)
    factor = factor.where(~gas, u.map(GAS_UNITS) * param.map(MOLAR_MASS) / MOLAR_VOLUME)
    unknown = factor.isna() & param.isin(MEASURES)
    if unknown.any():
        pairs = sorted(set(zip(param[unknown], units[unknown], strict=True)))[:5]
        notes.append(f"{name}: left out {int(unknown.sum())} value(s) in unknown units {pairs}")
    return pd.to_numeric(value, errors="coerce") * factor


OPENAQ_PARAMS = {"pm25": "pm25", "pm10": "pm10", "o3": "o3", "no2": "no2", "so2": "so2", "co": "co",
                 "temperature": "temp", "pressure": "pres", "wind_speed": "wspm",
                 "wind_direction": "wd_deg"}  # fmt: skip


def _openaq(data: bytes, name: str) -> Feed:
    """OpenAQ archive: one row per sensor-hour, `datetime` local with offset, labelling the hour's
    end (the record at 01:00 is 00:00-01:00): shifted to the hour's start like the other feeds."""
    raw = pd.read_csv(io.BytesIO(data), dtype={"location_id": str, "sensors_id": str})
    t = pd.to_datetime(raw["datetime"], format="ISO8601", utc=True)
    offsets = raw["datetime"].str[-6:]
    param = raw["parameter"].map(OPENAQ_PARAMS)
    feed = Feed("openaq", pd.DataFrame())
    value = _convert(param, raw["units"], raw["value"], name, feed.notes)
    feed.records = pd.DataFrame(
        {"station": raw["location_id"], "time": t - pd.Timedelta(hours=1), "param": param,
         "value": value, "sensor": raw["sensors_id"], "_line": raw.index + 2}
    )  # fmt: skip
    last = raw.assign(offset=offsets).groupby("location_id")[["location", "lat", "lon", "offset"]].last()
    feed.stations = {
        st: {"name": str(x["location"]), "latitude": float(x["lat"]), "longitude": float(x["lon"]),
             "timezone": x["offset"], "source": "openaq"}
        for st, x in _rows(last)
    }  # fmt: skip
    return feed


AIRNOW_COLS = ["date", "time", "aqsid", "site", "gmt_offset", "parameter", "units", "value", "agency"]
AIRNOW_PARAMS = {"PM2.5": "pm25", "PM10": "pm10", "OZONE": "o3", "NO2": "no2", "SO2": "so2",
                 "CO": "co", "TEMP": "temp", "BARPR": "pres", "WS": "wspm", "WD": "wd_deg",
                 "PRECIP": "rain"}  # fmt: skip


def _airnow(data: bytes, name: str) -> Feed:
    """AirNow HourlyData: no header, '|'-delimited, Latin-1, UTC valid time (the hour's start)."""
    raw = pd.read_csv(
        io.BytesIO(data), sep="|", header=None, names=AIRNOW_COLS, encoding="latin-1",
        dtype={"aqsid": str, "site": str, "value": str}, keep_default_na=False,
    )  # fmt: skip
    t = pd.to_datetime(raw["date"] + " " + raw["time"], format="%m/%d/%y %H:%M", utc=True)
    param = raw["parameter"].map(AIRNOW_PARAMS)
    feed = Feed("airnow", pd.DataFrame())
    value = _convert(param, raw["units"], raw["value"].str.strip('"'), name, feed.notes)
    feed.records = pd.DataFrame(
        {"station": raw["aqsid"], "time": t, "param": param, "value": value, "sensor": "0",
         "_line": raw.index + 1}
    )  # fmt: skip
    last = raw.groupby("aqsid")[["site", "gmt_offset", "agency"]].last()
    feed.stations = {
        st: {"name": x["site"].strip(), "latitude": None, "longitude": None,
             "timezone": offset_zone(float(x["gmt_offset"])), "source": f"airnow: {x['agency']}"}
        for st, x in _rows(last)
    }  # fmt: skip
    return feed


AQS_PARAMS = {"88101": "pm25", "88502": "pm25", "81102": "pm10", "44201": "o3", "42602": "no2",
              "42401": "so2", "42101": "co", "62101": "temp", "64101": "pres", "61103": "wspm",
              "61104": "wd_deg"}  # fmt: skip


def _aqs(data: bytes, name: str) -> Feed:
    """EPA AQS pre-generated hourly file: one row per monitor-hour; the station is State + County +
    Site, the POC the sensor (several monitors of one site are averaged)."""
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    site = (
        raw["State Code"].str.zfill(2) + raw["County Code"].str.zfill(3) + raw["Site Num"].str.zfill(4)
    )
    t = pd.to_datetime(raw["Date GMT"] + " " + raw["Time GMT"], format="%Y-%m-%d %H:%M", utc=True)
    local = pd.to_datetime(raw["Date Local"] + " " + raw["Time Local"], format="%Y-%m-%d %H:%M")
    offset = (local - t.dt.tz_localize(None)) / pd.Timedelta(hours=1)
    param = raw["Parameter Code"].map(AQS_PARAMS)
    feed = Feed("aqs", pd.DataFrame())
    value = _convert(param, raw["Units of Measure"], raw["Sample Measurement"], name, feed.notes)
    feed.records = pd.DataFrame(
        {"station": site, "time": t, "param": param, "value": value, "sensor": raw["POC"],
         "_line": raw.index + 2}
    )  # fmt: skip
    last = raw.assign(site=site, offset=offset).groupby("site")
    last = last[["County Name", "State Name", "Latitude", "Longitude", "offset"]].last()
    feed.stations = {
        st: {"name": f"{x['County Name']}, {x['State Name']}", "latitude": float(x["Latitude"]),
             "longitude": float(x["Longitude"]), "timezone": offset_zone(x["offset"]),
             "source": "aqs"}
        for st, x in _rows(last)
    }  # fmt: skip
    return feed
