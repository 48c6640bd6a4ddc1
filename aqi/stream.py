"""Windows of many stations streamed through tf.data, never all in memory at once.

Each station's hourly inputs (`windows.Hourly`: T x F floats, 24x smaller than its windows), scaled
by the station's own scaler, are written once to one .npz file (`StationFile`). An epoch shuffles the
stations, interleaves `cycle` of them at a time, reads `chunk` windows from each in turn (sliced from
the hourly array) and mixes them in a shuffle buffer: peak memory is `cycle` stations' hourly arrays
plus the buffer, whatever the number of stations (1,000 stations x 4 years of hours would be ~80 GB
of (L, F) windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqi.config import NetworkConfig
from aqi.tfboot import import_tf
from aqi.windows import Hourly, Scaler

tf = import_tf()

PARTS = ("", "train", "val", "test")  # split labels stored as their index (uint8)


@dataclass(frozen=True)
class StationFile:
    """One station's hourly inputs on disk, with its windows' origins, targets and split labels."""

    station: str
    path: Path
    counts: dict[str, int]  # windows per split

    @classmethod
    def write(cls, station: str, h: Hourly, scaler: Scaler, path: Path) -> StationFile:
        """Holes in the scaled features → 0, the train mean, as in one station's windows."""
        part = np.array([PARTS.index(s) for s in h.split], np.uint8)
        scaled = np.nan_to_num(scaler.apply(h.feats))
        np.savez(
            path, scaled=scaled, origins=h.origins, y=h.y, last=h.last_pm25, part=part,
            lookback=h.lookback,
        )  # fmt: skip
        return cls(station, path, {p: int((part == i).sum()) for i, p in enumerate(PARTS) if p})

    def load(self) -> dict[str, np.ndarray]:
        """Every array, read once (an NpzFile re-reads a member at each access)."""
        with np.load(self.path) as z:
            return {k: z[k] for k in z.files}

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x (n, L, F) scaled, y (n, H) µg/m³, persistence (n,) µg/m³) of one split, in time order."""
        d = self.load()
        k = np.flatnonzero(d["part"] == PARTS.index(split))
        return _windows(d, k), d["y"][k], d["last"][k]


def _windows(d: dict, k: np.ndarray) -> np.ndarray:
    return d["scaled"][d["origins"][k, None] + np.arange(-int(d["lookback"]) + 1, 1)]


def recency_weights(origins: np.ndarray, half_life: float) -> np.ndarray:
    """(n,) probabilities of drawing each window, halving every `half_life` days of age before the
    latest (`origins`: hours on the station's complete hourly grid)."""
    w = 0.5 ** ((origins.max() - origins) / (24.0 * half_life))
    return w / w.sum()


def stream(
    files: list[StationFile],
    split: str,
    batch: int,
    net: NetworkConfig,
    shuffle: bool,
    seed: int,
):
    """tf.data.Dataset of (x (batch, L, F), y (batch, H)) over the `split` windows of `files`, in
    one order per `seed` (a trainer gives each epoch its own)."""
    with np.load(files[0].path) as d0:
        shape_x = (None, int(d0["lookback"]), d0["scaled"].shape[1])
        shape_y = (None, d0["y"].shape[1])

    def chunks(i):
        d = files[int(i)].load()
        k = np.flatnonzero(d["part"] == PARTS.index(split))
        if shuffle:
            rng = np.random.default_rng([seed, int(i)])
            if net.recency:  # with replacement, toward the latest windows
                k = rng.choice(k, len(k), p=recency_weights(d["origins"][k], net.recency))
            else:
                k = rng.permutation(k)
        for c in range(0, len(k), net.chunk):
            part = k[c : c + net.chunk]
            yield _windows(d, part), d["y"][part]

    signature = (
        tf.TensorSpec(shape_x, tf.float32),
        tf.TensorSpec(shape_y, tf.float32),
    )
    ids = tf.data.Dataset.range(len(files))
    if shuffle:
        ids = ids.shuffle(len(files), seed=seed, reshuffle_each_iteration=False)
    ds = ids.interleave(
        lambda i: tf.data.Dataset.from_generator(chunks, args=(i,), output_signature=signature),
        cycle_length=max(1, min(net.cycle, len(files))),
        block_length=1,
    ).unbatch()
    if shuffle:
        ds = ds.shuffle(net.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)
