"""The input features of a window, by name, and their scaling (fitted on the train split only).

Which columns a window has (`feature_frame` in windows.py builds them), which of them are continuous
and scaled, and the one fact every stage needs: the linear PM2.5 input is column PM25_FEATURE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aqi.config import MEASURES, POLLUTANTS

LOG_COLS = tuple(c for c in POLLUTANTS if c != "pm25")  # heavy-tailed µg/m³: log1p before scaling
PLAIN_COLS = ("pm25", *LOG_COLS, "temp", "pres", "dewp", "rain", "wspm")
PM25_FEATURE = PLAIN_COLS.index("pm25")  # feature column of the linear PM2.5 input (µg/m³, scaled)
MEASURED = tuple(c for c in MEASURES if c != "wd_deg")
# Missing-value indicators per hour: PM2.5 only; those of the other measures are almost always 0 and
# only added inputs to overfit.
INDICATED = ("pm25",)
# columns of `feature_frame`: the plain ones, log PM2.5, wind sin/cos, hour/dow/month sin/cos, flags
N_FEATURES = len(PLAIN_COLS) + 1 + 2 + 6 + len(INDICATED)


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray  # (F,) float32, fitted on the train split only
    std: np.ndarray  # (F,)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))

    def pm25(self) -> tuple[float, float]:
        """(mean, std) µg/m³ of the PM2.5 input: the model un-scales persistence with them."""
        return float(self.mean[PM25_FEATURE]), float(self.std[PM25_FEATURE])


class Moments:
    """Running count, sum and sum of squares of the continuous features over train rows, so one
    scaler can be fitted over many stations without holding their rows together."""

    def __init__(self, columns: list[str]):
        # log1p PM2.5 inputs of the station and of the network are scaled like PM2.5's own log
        self.cont = np.array([c in PLAIN_COLS or c.startswith("log_") for c in columns])
        self.n = self.s = self.s2 = np.zeros(len(columns))

    def add(self, f: np.ndarray) -> Moments:
        ok = np.isfinite(f)
        v = np.where(ok, f, 0.0).astype(np.float64)
        self.n, self.s, self.s2 = self.n + ok.sum(0), self.s + v.sum(0), self.s2 + (v * v).sum(0)
        return self

    def merge(self, other: Moments) -> Moments:
        out = Moments.__new__(Moments)
        out.cont, out.n, out.s, out.s2 = (
            self.cont,
            self.n + other.n,
            self.s + other.s,
            self.s2 + other.s2,
        )
        return out

    def scaler(self) -> Scaler:
        """Mean/std of the continuous columns; indicators and sin/cos left as they are (0, 1)."""
        n = np.maximum(self.n, 1)
        mean = self.s / n
        std = np.sqrt(np.maximum(self.s2 / n - mean**2, 0.0))
        mean = np.where(self.cont & (self.n > 0), mean, 0.0)
        std = np.where(self.cont & (std > 1e-6), std, 1.0)
        return Scaler(mean.astype(np.float32), std.astype(np.float32))


def fit_scaler(feats: pd.DataFrame, rows: np.ndarray) -> Scaler:
    """The scaler of one station's train rows `rows`."""
    return Moments(list(feats.columns)).add(feats.to_numpy()[rows]).scaler()
