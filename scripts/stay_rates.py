"""How often the AQI level h hours ahead is the level now (what persistence scores), per half-year:
the drift that a model trained on earlier years has to follow. Observed data only, no model.

Usage: stay_rates.py DATA_DIR STANDARD [HOURS...]
  DATA_DIR holds the store (`aqi ingest`); STANDARD a level standard (`china-hj633-2012`, ...);
  HOURS the hours ahead (default 12 19 24). Half-years: "2015W" is 2015-09..2016-02 (Beijing's
  validation winter), "2015S" 2015-03..2015-08, in each station's local time. Prints, per half-year,
  the share of (hour, hour + h) pairs with both observed whose levels agree, mean over the
  stations; then, at the middle hour ahead given, the same share by the level now, and each level's
  share of the hours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from aqi.levels import get_standard, level
from aqi.store import load_manifest, read_station


def half_year(times: pd.DatetimeIndex) -> np.ndarray:
    m, y = times.month, times.year
    return np.where(
        m >= 9, y.astype(str) + "W", np.where(m <= 2, (y - 1).astype(str) + "W", y.astype(str) + "S")
    )


def pairs(data_dir: Path, st: str, tz: str, std, h: int) -> pd.DataFrame:
    """(level now, stays at h) per hour of `st` with both hours observed, and its half-year."""
    df = read_station(data_dir, st, columns=["time", "pm25"])
    s = df.set_index("time")["pm25"].asfreq("h")
    now = pd.Series(level(s.to_numpy(), std), index=s.index)
    later = now.shift(-h)
    ok = (now >= 0) & (later >= 0)
    local = now.index[ok].tz_convert(tz)
    stays = (now == later)[ok].to_numpy()
    return pd.DataFrame(
        {"station": st, "now": now[ok].to_numpy(), "stays": stays, "half": half_year(local)}
    )


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    data_dir, std = Path(argv[0]), get_standard(argv[1])
    hours = [int(a) for a in argv[2:]] or [12, 19, 24]
    zones = {st: e["timezone"] for st, e in load_manifest(data_dir)["stations"].items()}
    by_h = {h: pd.concat([pairs(data_dir, st, tz, std, h) for st, tz in zones.items()]) for h in hours}
    table = pd.DataFrame(
        {
            f"{h} h": p.groupby(["half", "station"])["stays"].mean().groupby("half").mean()
            for h, p in by_h.items()
        }
    )
    print(f"level at t + h is the level at t, {std.key}, mean over {len(zones)} stations")
    print(table.round(3).to_string())
    mid = by_h[hours[len(hours) // 2]]
    print(f"\nat {hours[len(hours) // 2]} h, by the level now (0 = best): stays")
    print(mid.groupby(["half", "now"])["stays"].mean().unstack().round(2).to_string())
    print("\nshare of the hours at each level")
    counts = mid.groupby(["half", "now"]).size().unstack()
    print(counts.div(counts.sum(axis=1), axis=0).round(2).to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
