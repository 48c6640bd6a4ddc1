"""The chronological split of a station's windows: the last target hour of train, validation, test."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aqi.config import TEST_MONTHS, AqiError, WindowConfig


@dataclass(frozen=True)
class Split:
    """Last target hour of the train, validation and test splits: local, tz-aware, inclusive."""

    train_end: pd.Timestamp
    val_end: pd.Timestamp
    test_end: pd.Timestamp

    @classmethod
    def resolve(cls, cfg: WindowConfig, data_end: pd.Timestamp, tz: str) -> Split:
        """Dates from the config; unset ones: the last `test_months` of data are test and the
        `val_months` before them validation."""
        months = TEST_MONTHS if cfg.test_months is None else cfg.test_months
        if cfg.val_end and cfg.test_months is not None:
            raise AqiError(f"--test-months {months} with --val-end: give one of them")
        test_end = _local(cfg.test_end, tz) if cfg.test_end else data_end.tz_convert(tz)
        val_end = _local(cfg.val_end, tz) if cfg.val_end else _before(test_end, months)
        train_end = _local(cfg.train_end, tz) if cfg.train_end else _before(val_end, cfg.val_months)
        if not train_end < val_end <= test_end:
            given = "" if cfg.val_end else f" (validation ends --test-months {months} before test)"
            raise AqiError(
                f"--train-end / --val-end / --test-end out of order: train ≤ {train_end}, "
                f"val ≤ {val_end}{given}, test ≤ {test_end}: each must be after the one before"
            )
        return cls(train_end, val_end, test_end)

    def to_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, str], tz: str) -> Split:
        return cls(*(pd.Timestamp(d[k]).tz_convert(tz) for k in ("train_end", "val_end", "test_end")))

    def labels(self, target_first: pd.DatetimeIndex, target_last: pd.DatetimeIndex) -> np.ndarray:
        """'train' | 'val' | 'test' per window by its first and last target time; '' where they
        straddle two splits."""
        first, last = (
            target_first.tz_convert(self.train_end.tz),
            target_last.tz_convert(self.train_end.tz),
        )
        out = np.full(len(first), "", dtype=object)
        out[last <= self.train_end] = "train"
        out[(first > self.train_end) & (last <= self.val_end)] = "val"
        out[(first > self.val_end) & (last <= self.test_end)] = "test"
        return out.astype(str)


def _before(end: pd.Timestamp, months: int) -> pd.Timestamp:
    """The last hour `months` calendar months before the hour after `end` (23:00 of Feb 29 → 23:00
    of Aug 31 for 6)."""
    hour = pd.Timedelta(hours=1)
    return end + hour - pd.DateOffset(months=months) - hour


def _local(s: str, tz: str) -> pd.Timestamp:
    """A split end in local time; a date alone means its whole day (its last hour, 23:00)."""
    try:
        t = pd.Timestamp(s)
    except ValueError:
        raise AqiError(f"--train-end/--val-end/--test-end {s!r}: not a date") from None
    if DATE_ONLY.fullmatch(str(s).strip()):
        t += pd.Timedelta(hours=23)
    return t.tz_localize(tz) if t.tzinfo is None else t.tz_convert(tz)


DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")  # e.g. 2014-12-31: the whole day
