"""AQI standards for PM2.5 as data, and the numpy functions that use them. No TensorFlow here.

Tables come from `../shared/reference/aqi-standards.md` (sources cited there). Tables marked
`verified=False` were not read from the official text (the reference marks them "check"); any table can
be replaced by a user TOML file (`load_standard`).

Which side of a breakpoint a concentration belongs to: concentrations are first truncated to the
standard's resolution (0.1 µg/m³ for US EPA and Taiwan, 1 µg/m³ for India). Then, for standards whose
bands are written `lo–hi` with a gap (US `9.0 / 9.1`), an edge is the first concentration of the upper
level (`c >= edge` is the upper level); for standards whose bands share their end points (China `0–35,
35–75`, EEA), the end point belongs to the lower band (`c > edge` is the upper level).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqi.config import AqiError
from aqi.tomlfile import read_toml

US_COLORS = ("#00e400", "#ffff00", "#ff7e00", "#ff0000", "#8f3f97", "#7e0023")
US_NAMES = ("Good", "Moderate", "Unhealthy for Sensitive Groups", "Unhealthy", "Very Unhealthy",
            "Hazardous")  # fmt: skip
EEA_NAMES = ("Good", "Fair", "Moderate", "Poor", "Very poor", "Extremely poor")
EEA_COLORS = ("#50f0e6", "#50ccaa", "#f0e641", "#ff5050", "#960032", "#7d2181")


@dataclass(frozen=True)
class Standard:
    key: str
    title: str
    names: tuple[str, ...]  # one per level, level 0 first
    colors: tuple[str, ...]  # hex, one per level
    edges: tuple[float, ...]  # µg/m³, len(names) - 1 level boundaries, increasing
    # Piecewise-linear index: (C_lo, C_hi, I_lo, I_hi) rows, increasing; empty = categorical index
    segments: tuple[tuple[float, float, float, float], ...]
    resolution: float  # µg/m³ the concentration is truncated to before classifying
    upper_closed: bool  # True: c == edge belongs to the lower level (bands share end points)
    unhealthy: int  # first level counted as an exceedance (POD/FAR/CSI, exceedance probability)
    verified: bool  # numbers read from the official text (False: the reference marks them "check")
    ceil_index: bool = False  # HJ 633 rounds the IAQI up; the others round half up

    @property
    def n_levels(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        """The whole table, so a model trained on a custom standard does not depend on its file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Standard:
        seq = {"names", "colors", "edges"}
        return cls(
            **{
                k: tuple(v) if k in seq else tuple(map(tuple, v)) if k == "segments" else v
                for k, v in d.items()
            }
        )


def _gapped(key, title, lows, index, names, colors, res, unhealthy, verified, top):
    """Tables written as `C_lo–C_hi` per level with a gap of one resolution step between levels."""
    highs = [lo - res for lo in lows[1:]] + [top]
    segs = tuple((lo, hi, i_lo, i_hi) for lo, hi, (i_lo, i_hi) in zip(lows, highs, index, strict=True))
    return Standard(
        key, title, tuple(names), tuple(colors), tuple(lows[1:]), segs, res, False, unhealthy, verified
    )


def _shared(key, title, points, index, names, colors, unhealthy, verified):
    """Tables whose bands share their end points; `points` are the index-segment end points."""
    segs = tuple((points[i], points[i + 1], index[i], index[i + 1]) for i in range(len(index) - 1))
    edges = tuple(points[1 : len(names)])
    args = (key, title, tuple(names), tuple(colors), edges, segs, 0.0, True, unhealthy, verified)
    return Standard(*args, ceil_index=key.startswith("china"))


STANDARDS: dict[str, Standard] = {
    s.key: s
    for s in [
        _gapped(
            "us-epa-2024",
            "US EPA PM2.5 AQI (2024 revision, 89 FR 16202)",
            [0.0, 9.1, 35.5, 55.5, 125.5, 225.5],
            [(0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500)],
            US_NAMES,
            US_COLORS,
            0.1,
            2,
            True,
            325.4,
        ),
        _shared(
            "china-hj633-2012",
            "China HJ 633-2012 PM2.5 24-hour IAQI",
            [0, 35, 75, 115, 150, 250, 350, 500],
            [0, 50, 100, 150, 200, 300, 400, 500],
            (
                "Excellent",
                "Good",
                "Lightly polluted",
                "Moderately polluted",
                "Heavily polluted",
                "Severely polluted",
            ),
            ("#00e400", "#ffff00", "#ff7e00", "#ff0000", "#99004c", "#7e0023"),
            2,
            True,
        ),
        # Taiwan's 301–400 and 401–500 index bands are both "Hazardous": one level, two segments.
        Standard(
            "taiwan-2016",
            "Taiwan MOENV AQI 2016–2024 (the 15.4 / 35.4 step-loss breakpoints)",
            US_NAMES,
            US_COLORS,
            (15.5, 35.5, 54.5, 150.5, 250.5),
            (
                (0.0, 15.4, 0, 50),
                (15.5, 35.4, 51, 100),
                (35.5, 54.4, 101, 150),
                (54.5, 150.4, 151, 200),
                (150.5, 250.4, 201, 300),
                (250.5, 350.4, 301, 400),
                (350.5, 500.4, 401, 500),
            ),
            0.1,
            False,
            2,
            True,
        ),
        Standard(
            "taiwan-2025",
            "Taiwan MOENV AQI 2025+ (check: not read from the official text)",
            US_NAMES,
            US_COLORS,
            (12.5, 30.5, 50.5, 125.5, 225.5),
            (
                (0.0, 12.4, 0, 50),
                (12.5, 30.4, 51, 100),
                (30.5, 50.4, 101, 150),
                (50.5, 125.4, 151, 200),
                (125.5, 225.4, 201, 300),
                (225.5, 325.4, 301, 400),
                (325.5, 500.4, 401, 500),
            ),
            0.1,
            False,
            2,
            False,
        ),
        # The reference gives no upper concentration for "Severe": 500 µg/m³ is assumed for its index.
        _gapped(
            "india-naqi",
            "India National AQI (CPCB 2014), PM2.5 24-hour",
            [0, 31, 61, 91, 121, 251],
            [(0, 50), (51, 100), (101, 200), (201, 300), (301, 400), (401, 500)],
            ("Good", "Satisfactory", "Moderate", "Poor", "Very Poor", "Severe"),
            ("#00b050", "#92d050", "#ffff00", "#ff9900", "#ff0000", "#c00000"),
            1.0,
            3,
            True,
            500,
        ),
        _shared(
            "eea-2019",
            "European Air Quality Index 2019–2024 (categorical)",
            [0, 10, 20, 25, 50, 75, 800],
            [],
            EEA_NAMES,
            EEA_COLORS,
            3,
            True,
        ),
        _shared(
            "eea-2024",
            "European Air Quality Index, 2024 revision (check), hourly",
            [0, 5, 15, 50, 90, 140, 1000],
            [],
            EEA_NAMES,
            EEA_COLORS,
            3,
            False,
        ),
    ]
}


def get_standard(name: str) -> Standard:
    """A built-in standard by key, or a TOML file path."""
    if name in STANDARDS:
        return STANDARDS[name]
    if name.endswith(".toml"):
        return load_standard(Path(name))
    raise AqiError(f"--standard {name!r}: unknown; use one of {', '.join(STANDARDS)} or a .toml file")


def truncate(c: np.ndarray, std: Standard) -> np.ndarray:
    c = np.asarray(c, np.float64)
    if not std.resolution:
        return c
    # the 1e-9 guards against 9.1 being stored as 9.0999999: truncation must not drop a digit
    with np.errstate(over="ignore"):  # c/resolution past float range is inf: still the top level
        return np.floor(c / std.resolution + 1e-9) * std.resolution


def level(c, std: Standard) -> np.ndarray:
    """Level number (0 = best) of each concentration in µg/m³; NaN in → -1 out."""
    c = np.asarray(c, np.float64)
    side = "left" if std.upper_closed else "right"
    out = np.searchsorted(np.asarray(std.edges), truncate(c, std), side=side)
    return np.where(np.isnan(c), -1, out)


def index_value(c, std: Standard) -> np.ndarray:
    """Piecewise-linear index (I_hi-I_lo)/(C_hi-C_lo)·(C-C_lo)+I_lo of truncated concentrations,
    rounded half up (ceil for HJ 633), capped at the top of the table. Categorical standards (EEA)
    return level + 1. NaN in → NaN out."""
    c = np.asarray(c, np.float64)
    if not std.segments:
        return np.where(np.isnan(c), np.nan, level(c, std) + 1.0)
    seg = np.asarray(std.segments, np.float64)
    ct = np.clip(truncate(c, std), 0.0, seg[-1, 1])
    # segment k holds ct when C_lo[k] <= ct; gapped tables put 9.05 in no band: truncation prevents it
    k = np.clip(np.searchsorted(seg[:, 0], ct, side="right") - 1, 0, len(seg) - 1)
    if std.upper_closed:  # shared end points belong to the lower band
        k = np.where((k > 0) & (ct == seg[k, 0]), k - 1, k)
    lo_c, hi_c, lo_i, hi_i = seg[k].T
    raw = (hi_i - lo_i) / (hi_c - lo_c) * (ct - lo_c) + lo_i
    idx = np.ceil(raw - 1e-9) if std.ceil_index else np.floor(raw + 0.5)
    return np.where(np.isnan(c), np.nan, idx + 0.0)  # + 0.0 turns ceil's -0.0 into 0.0


def load_standard(path: Path) -> Standard:
    """A custom standard from TOML: top-level `name`, `title`, `resolution` (µg/m³), `boundary`
    ('upper': c == edge is the upper level; 'lower': bands share end points), `unhealthy` (level
    number), then one `[[level]]` table per level: `name`, `color`, `c_lo`, `c_hi`, `i_lo`, `i_hi`."""
    doc = read_toml(path, "standard")
    try:
        return _standard_from_doc(doc, Path(path))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AqiError(f"{path}: invalid standard: {e}") from None


def _check_levels(doc: dict, bands: list[tuple[float, float, float, float]]) -> None:
    """ValueError unless the (c_lo, c_hi, i_lo, i_hi) rows are finite, rising and apart, and the
    name, unhealthy level and resolution make sense."""
    if not np.isfinite(bands).all():
        raise ValueError("breakpoints and index values must be finite (no nan or inf)")
    if any(h < lo or ih < il for lo, h, il, ih in bands) or any(
        b[0] <= a[0] or b[0] < a[1] or b[2] < a[3] for a, b in zip(bands, bands[1:], strict=False)
    ):
        raise ValueError(
            "levels must increase without overlapping: c_lo <= c_hi <= the next level's c_lo "
            "(c_lo rising), and i_lo <= i_hi <= the next level's i_lo"
        )
    if str(doc.get("name", "")) in STANDARDS:
        raise ValueError(f"name {doc['name']!r} is a built-in standard's; choose another")
    if not (isinstance(doc.get("unhealthy", 1), int) and float(doc.get("resolution", 0)) >= 0):
        raise ValueError("unhealthy must be a whole level number and resolution >= 0 µg/m³")


def _standard_from_doc(doc: dict, path: Path) -> Standard:
    rows = doc.get("level")
    if not isinstance(rows, list) or len(rows) < 2:
        raise ValueError("needs at least two [[level]] tables")
    for i, r in enumerate(rows):
        if not str(r.get("name", "")).strip():
            raise ValueError(f"level {i} has no name")
    c_lo = [float(r["c_lo"]) for r in rows]
    c_hi = [float(r["c_hi"]) for r in rows]
    i_lo = [float(r.get("i_lo", i)) for i, r in enumerate(rows)]
    i_hi = [float(r.get("i_hi", i + 1)) for i, r in enumerate(rows)]
    _check_levels(doc, list(zip(c_lo, c_hi, i_lo, i_hi, strict=True)))
    boundary = doc.get("boundary", "upper")
    if boundary not in ("upper", "lower"):
        raise ValueError("boundary must be 'upper' or 'lower'")
    unhealthy = int(doc.get("unhealthy", len(rows) // 2))
    if not 0 < unhealthy < len(rows):
        raise ValueError(f"unhealthy must be a level number between 1 and {len(rows) - 1}")
    return Standard(
        str(doc.get("name", path.stem)),
        str(doc.get("title", path.stem)),
        tuple(str(r["name"]) for r in rows),
        tuple(str(r.get("color", "#888888")) for r in rows),
        tuple(c_lo[1:]),
        tuple(zip(c_lo, c_hi, i_lo, i_hi, strict=True)),
        float(doc.get("resolution", 0.0)),
        boundary == "lower",
        unhealthy,
        False,
    )
