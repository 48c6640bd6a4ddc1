"""`aqi train --station all` (or A,B,C): one network model over many stations, saved once.

The stations' hourly inputs, with the network's PM2.5 as extra columns (`network.extra_columns`), are
written one station at a time to a temporary folder and streamed by tf.data (`stream.py`): memory holds
the network's PM2.5 grid, `cycle` stations and a shuffle buffer, never every window. One scaler is
fitted over every station's train rows; the station's identity is an embedding row. The model is a
`TrainedModel` in models/_network/, its record naming the stations, their rows and neighbours.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqi.checks import check_size, validate
from aqi.config import AqiError, Config, network_defaults
from aqi.datadir import check_station, exclusive, model_dir, network_dir
from aqi.devices import select_strategy
from aqi.features import N_FEATURES
from aqi.finetune import finetune_station, finetunes_by_default
from aqi.job import VAL_BATCH, Job, RunOptions, output_folder
from aqi.levels import get_standard
from aqi.loop import check_tensorboard
from aqi.losses import tf
from aqi.network import (
    NetworkPm25,
    coordinates,
    extra_columns,
    n_extra,
    nearest,
    neighbours,
    with_history,
    with_scale,
)
from aqi.store import load_manifest, read_station, station_timezone, stations
from aqi.stream import PARTS, StationFile, stream
from aqi.train import TRAIN_LOCK, train_stations
from aqi.trained import NETWORK, TrainedModel, live_meta, predict
from aqi.windows import Moments, Scaler, Split, hourly


@dataclass
class StreamData:
    """Many stations' windows for a Job: streamed for training, one station at a time to score."""

    files: list[StationFile]
    features: list[str]
    scaler: Scaler
    cfg: Config
    info: dict  # stations, neighbours, windows per split
    dates: Split
    timezone: str  # of the split dates

    @property
    def n_train(self) -> int:
        return sum(f.counts["train"] for f in self.files)

    @property
    def n_val(self) -> int:
        return sum(f.counts["val"] for f in self.files)

    def train_ds(self, batch: int, seed: int):
        return stream(self.files, "train", batch, self.cfg.network, True, seed)

    def val_ds(self):
        return stream(self.files, "val", VAL_BATCH, self.cfg.network, False, 0)

    def val_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(y, persistence), both (N, H) µg/m³; read once (the score asks every epoch)."""
        return self._targets

    @functools.cached_property
    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        y, last = [], []
        for f in self.files:
            d = f.load()
            k = d["part"] == PARTS.index("val")
            y.append(d["y"][k])
            last.append(d["last"][k])
        y, last = np.concatenate(y), np.concatenate(last)
        return y, np.repeat(last[:, None], y.shape[1], axis=1)

    def val_raw(self, model) -> np.ndarray:
        """Raw outputs for the validation windows in station order, predicted VAL_BATCH windows at
        a time across stations (one call per station costs ~1,400 eager calls on AirNow)."""
        out, xs, n = [], [], 0
        for f in self.files:
            xs.append(f.part("val")[0])
            n += len(xs[-1])
            if n >= VAL_BATCH:
                out.append(predict(model, np.concatenate(xs), VAL_BATCH))
                xs, n = [], 0
        if xs:
            out.append(predict(model, np.concatenate(xs), VAL_BATCH))
        return np.concatenate(out)

    def describe(self) -> dict:
        return {"features": self.features, "data": self.info}


def train_command(
    data_dir: Path, station: str, fields: dict, flags: tuple[bool, bool | None], shard, opts: RunOptions
) -> list[dict]:
    """`aqi train`: 'all' or a comma list → one network model (per station with `per_station`,
    or with a `shard`, which splits stations between jobs); one name → the network model fine-tuned
    on it (`finetune` True, or None where `finetunes_by_default`), else that station's own model."""
    per_station, finetune = flags
    one = station != "all" and "," not in station
    if opts.replace and (one or station == "all" or per_station or shard):
        raise AqiError("--replace: goes with a list of stations for one network model (A,B)")
    if finetune and not one:
        raise AqiError("--finetune: give one station (--station X)")
    if finetune and per_station:
        raise AqiError("--finetune starts from the network model, --per-station afresh: give one")
    if finetune is None:  # neither --finetune nor --no-finetune given
        finetune = one and not per_station and finetunes_by_default(data_dir, station, fields, opts.echo)
    if finetune:
        return [finetune_station(data_dir, station, fields, opts)]
    if one:
        return train_stations(data_dir, station, Config().with_fields(**fields), **_kw(opts, shard))
    names = (
        stations(data_dir)
        if station == "all"
        else list(dict.fromkeys(check_station(s.strip()) for s in station.split(",") if s.strip()))
    )
    if not names:
        raise AqiError(f"no stations in {Path(data_dir) / 'store'}; run `aqi ingest PATH` first")
    if per_station or shard:  # one model each; shards split 'all' between jobs
        cfg = Config().with_fields(**fields)
        if station == "all":
            return train_stations(data_dir, "all", cfg, **_kw(opts, shard))
        return [m for n in names for m in train_stations(data_dir, n, cfg, **_kw(opts, None))]
    cfg = network_defaults().with_fields(**fields)
    return [train_network(data_dir, names, cfg, opts, every=station == "all")]


def _kw(opts: RunOptions, shard: str | None) -> dict:
    return {
        "echo": opts.echo,
        "quiet": opts.quiet,
        "tensorboard": opts.tensorboard,
        "resume": opts.resume,
        "shard": shard,
    }


def train_network(
    data_dir: Path, names: list[str], cfg: Config, opts: RunOptions, every: bool = False
) -> dict:
    """Train one network model over `names` (>= 2 stations); returns its meta.json."""
    validate(cfg)
    if len(names) < 2:
        raise AqiError("--station: a network model needs at least 2 stations; use --per-station")
    if cfg.train.optimizer == "lbfgs" or cfg.train.finetune_lbfgs or cfg.train.gap_share:
        raise AqiError(
            "--optimizer lbfgs / --finetune-lbfgs / --gap-share: one-station models only (--per-station)"
        )
    if opts.tensorboard:
        check_tensorboard(opts.tensorboard)
    net = NetworkPm25.read(data_dir, names)  # an unknown station fails before anything is made
    guard = not every and not opts.replace  # checked now, and again under the lock (_train_in)
    if guard:
        _keeps_coverage(data_dir, names)
    if every:  # `--station all`: the stations a model can learn from, the others left out
        dates = Split.resolve(cfg.window, net.times[-1], station_timezone(data_dir, names[0]))
        kept = with_history(net, cfg.window, dates.train_end)
        if len(kept) < len(names):
            left = len(names) - len(kept)
            opts.echo(
                f"{left} station(s) without a complete window before {dates.train_end:%Y-%m-%d %H:%M}"
            )
            names, net = kept, net.only(kept)
        if len(names) < 2:
            raise AqiError(
                f"--station all: {len(names)} station(s) can train a network model; use --per-station"
            )
    check_size(
        cfg,
        N_FEATURES + n_extra(cfg.network),
        len(net.times),
        "the network",
    )
    with output_folder(data_dir, _ckpt(data_dir), opts, "network") as (out, opts):
        return _train_in(data_dir, out, names, cfg, net, opts, guard)


def _keeps_coverage(data_dir: Path, names: list[str]) -> None:
    """A list of stations must not silently drop stations the live network model forecasts: a
    batch job cannot be asked, so it is refused unless --replace says so."""
    meta = live_meta(network_dir(data_dir)) or {}  # a torn model is replaced: nothing whole to keep
    dropped = [st for st in meta.get("data", {}).get("stations", []) if st not in names]
    if dropped:
        raise AqiError(
            f"--station: the network model in {network_dir(data_dir)} also forecasts "
            f"{len(dropped)} station(s) not listed ({', '.join(dropped[:5])}"
            f"{', …' if len(dropped) > 5 else ''}); list them too, or add --replace to replace it"
        )


def _ckpt(data_dir: Path) -> Path:
    return network_dir(data_dir) / "ckpt"


def _train_in(data_dir: Path, out: Path, names, cfg: Config, net: NetworkPm25, opts, guard) -> dict:
    """Read the stations from `data_dir`, write the model, its checkpoints and the streamed
    inputs under `out` (the data folder, or a worker's scratch folder); `guard`: the coverage
    check again, under the lock, since a `--station all` may have saved since the first one."""
    folder = network_dir(out)
    busy = f"{folder}: another `aqi train` is writing the network model"
    with (
        exclusive(folder, TRAIN_LOCK, busy),
        tempfile.TemporaryDirectory(dir=folder, prefix=".stream-") as work,
    ):
        if guard and out == Path(data_dir):  # the chief's folder: a worker's scratch holds no model
            _keeps_coverage(data_dir, names)
        return _train_locked(data_dir, out, names, cfg, net, opts, Path(work))


def _train_locked(data_dir, out, names, cfg: Config, net: NetworkPm25, opts, work: Path) -> dict:
    cfg, data = prepare(data_dir, names, cfg, net, work)
    std = get_standard(cfg.loss.standard)
    strategy, device = select_strategy(cfg.train.device)
    tf.config.experimental.enable_op_determinism()
    job = Job(cfg, data, strategy, std, _ckpt(out), opts)
    model, run = job.run(f"network of {len(names)} stations", device)
    info = run | {"kind": "network"}
    tm = TrainedModel(NETWORK, model, cfg, data.scaler, data.dates, data.timezone, std, info)
    meta = tm.save(out).meta()
    shutil.rmtree(_ckpt(out), ignore_errors=True)  # saved: a later --resume starts afresh
    tuned = [st for st in names if _finetuned(model_dir(out, st))]
    if tuned:  # they go on forecasting their stations, from the network model this one replaced
        opts.echo(
            "note: models fine-tuned from the previous network model stay live for "
            f"{', '.join(tuned)}; `aqi train --station X` fine-tunes X from this one"
        )
    return meta


def _finetuned(folder: Path) -> bool:
    return (live_meta(folder) or {}).get("kind") == "finetuned"  # a torn one: reported when loaded


def by_distance(rule: str, coords: dict | None) -> dict | None:
    """The coordinates the neighbours are chosen by (`NetworkConfig.neighbours_by`), None for
    correlation."""
    if rule == "coordinates" and coords is None:
        raise AqiError(
            "--neighbours-by coordinates: some stations have no coordinates in the store; "
            "add them with `aqi stations --locations FILE` or use --neighbours-by correlation"
        )
    return None if rule == "correlation" else coords


def prepare(data_dir: Path, names: list[str], cfg: Config, net: NetworkPm25, work: Path):
    """(cfg resolved for these stations, StreamData): each station's hourly inputs written to
    `work`, one station in memory at a time, and the scaler pooled over their train rows."""
    entries = load_manifest(data_dir)["stations"]  # read once
    zones = {st: e["timezone"] for st, e in entries.items()}
    tz = zones[names[0]]  # split dates are read in the first station's zone
    dates = Split.resolve(cfg.window, net.times[-1], tz)
    coords = by_distance(cfg.network.neighbours_by, coordinates(entries, names))
    n, start, end = cfg.network, net.times[0], dates.train_end
    if coords:
        nb = nearest(coords, names, n.neighbours)
    else:
        nb = neighbours(net, start, end, n.neighbours, set(names), n.min_overlap)
    cfg = cfg.replace(network={"stations": len(names)}, window=dates.to_dict())
    files, moments, firsts, scalers = [], None, [], {}
    for i, st in enumerate(names, 1):
        extra = extra_columns(net, st, nb[st], i, cfg.network, cfg.window.max_gap)
        h = hourly(read_station(data_dir, st), cfg.window, zones[st], dates, extra)
        if not (h.split == "train").any():
            raise AqiError(f"station {st}: no complete window in the train split; leave it out")
        own = Moments(h.features).add(h.train_rows())
        moments = moments.merge(own) if moments else own
        h = with_scale(h, own.scaler())
        files.append(StationFile.write(st, h, own.scaler(), work / f"{i}.npz"))
        firsts.append(h.times[h.origins[0]])
        scalers[st] = own.scaler().to_dict()
    info = {
        "first_origin": str(min(firsts)),
        "stations": list(names),
        "neighbours": nb,
        "neighbours_by": "coordinates" if coords else "correlation",
        "coordinates": coords,
        "scalers": scalers,
        "windows": {p: {f.station: f.counts[p] for f in files} for p in ("train", "val", "test")},
    }
    data = StreamData(files, h.features, moments.scaler(), cfg, info, dates, tz)
    return cfg, data
