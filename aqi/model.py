"""`build_model(cfg, n_features, pm25_scaling) -> keras.Model`, pure: same arguments, same graph.

Input (batch, L, F) scaled features; output (batch, H) PM2.5 in µg/m³, (batch, H, Q) quantiles, or
(batch, H, 1 + E) for the level head: the point forecast, then P(PM2.5 ≥ b_i) for the standard's E
breakpoints from a log-logistic distribution around the point forecast (`Exceedance`).
With `residual`, the network predicts a correction to persistence: ŷ = relu(c_t + σ·δ), c_t the
PM2.5 at the origin (µg/m³, un-scaled inside the graph) and σ the train-split PM2.5 standard deviation.
The quantile head adds non-negative (softplus) increments, bounded above, to the lowest quantile,
so quantiles never cross and the spread cannot diverge.
"""

from __future__ import annotations

import numpy as np

from aqi.config import Config
from aqi.features import PM25_FEATURE
from aqi.levels import get_standard
from aqi.tfboot import import_tf

import_tf()
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


@keras.saving.register_keras_serializable(package="aqi")
class Persistence(layers.Layer):
    """(batch, L, F) scaled inputs → (batch, 1) PM2.5 at the origin in µg/m³."""

    def __init__(self, mean: float, std: float, index: int = PM25_FEATURE, **kw):
        super().__init__(**kw)
        self.mean, self.std, self.index = float(mean), float(std), int(index)

    def call(self, x):
        return x[:, -1, self.index : self.index + 1] * self.std + self.mean

    def get_config(self):
        return super().get_config() | {"mean": self.mean, "std": self.std, "index": self.index}


@keras.saving.register_keras_serializable(package="aqi")
class MonotoneQuantiles(layers.Layer):
    """(batch, H·Q) raw → (batch, H, Q) increasing along Q: q_0 = raw_0, q_k = q_{k-1} + softplus."""

    def __init__(self, horizon: int, n_quantiles: int, **kw):
        super().__init__(**kw)
        self.horizon, self.n_quantiles = int(horizon), int(n_quantiles)

    def call(self, raw):
        r = ops.reshape(raw, (-1, self.horizon, self.n_quantiles))
        # increments bounded to (0, 50) in units of σ(PM2.5): a runaway spread cannot overflow
        steps = ops.concatenate([r[..., :1], ops.minimum(ops.softplus(r[..., 1:]), 50.0)], axis=-1)
        return ops.cumsum(steps, axis=-1)

    def get_config(self):
        return super().get_config() | {"horizon": self.horizon, "n_quantiles": self.n_quantiles}


@keras.saving.register_keras_serializable(package="aqi")
class Exceedance(layers.Layer):
    """P(PM2.5 ≥ b_i) around the point forecast: a log-logistic distribution, σ((log1p(ŷ) + δ -
    log1p(b_i)) / s) with shift δ and spread s > 0 per example and horizon, plus a free correction
    per breakpoint that keeps the probabilities decreasing in i (each logit steps down from the
    previous by a softplus that equals the log-logistic step when the correction is 0).

    This is the soft level count made probabilistic: (tanh((c - b)/tau) + 1)/2 = σ(2(c - b)/tau), so
    Σ_i P(PM2.5 ≥ b_i) is the expected level, with a tau the network learns per hour ahead instead of
    a fixed one. Inputs: ŷ (batch, H) µg/m³, raw (batch, (2 + E)·H).

    `anchored`: raw has H more columns, a gate g = σ(r - 2) per example and hour (≈ 0.12 at the
    start), and the centre moves from log1p(ŷ) toward log1p(c_t), c_t (batch, 1) µg/m³ the PM2.5 at
    the origin: loc = (1 - g)·log1p(ŷ) + g·log1p(c_t) + δ.
    `persist` (resolution, upper_closed) of the standard: raw has H more columns, a weight w = σ(r - 2)
    per example and hour, and P(≥ b_i) = (1 - w)·P(≥ b_i) + w·1[level(c_t) > i]: a mixture with a
    point mass on persistence's level, which a distribution around ŷ cannot put there."""

    def __init__(self, breakpoints, anchored: bool = False, persist=None, **kw):
        super().__init__(**kw)
        self.breakpoints = [float(b) for b in breakpoints]
        self.anchored = bool(anchored)
        self.persist = None if persist is None else [float(persist[0]), bool(persist[1])]

    def call(self, point, raw, origin=None):
        h, e = ops.shape(point)[-1], len(self.breakpoints)
        shift, spread = raw[:, :h], ops.softplus(raw[:, h : 2 * h] - 1.0) + 0.02  # s starts ≈ 0.33
        free = ops.reshape(raw[:, 2 * h : (2 + e) * h], (-1, h, e))
        loc = ops.log1p(ops.stop_gradient(point))  # the point stays an MAE-trained forecast
        if self.anchored:
            gate = ops.sigmoid(raw[:, (2 + e) * h :] - 2.0)  # (batch, H)
            loc = loc + gate * (ops.log1p(ops.relu(origin)) - loc)
        loc = loc + shift
        b = ops.log1p(ops.convert_to_tensor(self.breakpoints))
        first = (loc - b[0]) / spread + free[..., 0]  # (batch, H)
        gap = (b[1:] - b[:-1]) / spread[..., None]  # (batch, H, E - 1) > 0: the log-logistic steps
        steps = ops.softplus(gap + ops.log(-ops.expm1(-gap)) + free[..., 1:])  # = gap at free 0
        logits = ops.concatenate([first[..., None], first[..., None] - ops.cumsum(steps, -1)], -1)
        p = ops.sigmoid(logits)  # (batch, H, E)
        if self.persist is None:
            return p
        at = (2 + e + self.anchored) * h
        w = ops.sigmoid(raw[:, at : at + h] - 2.0)[..., None]  # (batch, H, 1)
        return (1.0 - w) * p + w * self._reached(origin)[:, None, :]

    def _reached(self, c):
        """(batch, 1) µg/m³ → (batch, E) 1[level(c) > i], by `levels.level`'s rule: truncate to the
        standard's resolution, then b_i reached (≥, or > where the table's ranges are upper-closed)."""
        resolution, upper_closed = self.persist
        # c comes back from float32 scaled inputs (x·σ + mean), ~1e-5 µg/m³ off a breakpoint it
        # sits on: rounded to 1e-3 µg/m³ in float64 first, so it is counted as it was read
        c = ops.round(ops.cast(c, "float64") * 1000.0) / 1000.0
        t = ops.floor(c / resolution + 1e-9) * resolution if resolution else c
        b = ops.convert_to_tensor(self.breakpoints, "float64")
        return ops.cast(t > b if upper_closed else t >= b, "float32")

    def get_config(self):
        own = {"breakpoints": self.breakpoints, "anchored": self.anchored, "persist": self.persist}
        return super().get_config() | own


@keras.saving.register_keras_serializable(package="aqi")
class StationDropout(layers.Layer):
    """(batch,) station rows → the same, each set to 0 ('unknown') with probability `rate` while
    training: the unknown row learns the network's typical station, which a new station gets."""

    def __init__(self, rate: float, seed: int = 0, **kw):
        super().__init__(**kw)
        self.rate, self.seed = float(rate), int(seed)
        # --seed's (a fixed 0 ignored it), shared by the members: at seed 0 the draw the network
        # figures in the README were measured with (another draw: "How much the draw matters")
        self.seeds = keras.random.SeedGenerator(self.seed)

    def call(self, index, training=False):
        if not training or not self.rate:
            return index
        keep = keras.random.uniform(ops.shape(index), seed=self.seeds) >= self.rate
        return ops.where(keep, index, ops.zeros_like(index))

    def get_config(self):
        return super().get_config() | {"rate": self.rate, "seed": self.seed}


def reseed(model: keras.Model, seed: int) -> None:
    """Draw every random layer's state (dropout, station dropout) from `seed`: model.keras keeps
    no generator state, and a loaded model's Dropout layers draw theirs from Python's unseeded
    `random` when it is read, so without this a fine-tune would not repeat itself."""
    states = [v for v in model.non_trainable_variables if v.path.endswith("/seed_generator_state")]
    draws = np.random.default_rng(seed).integers(1, 2**31 - 1, len(states))
    for v, d in zip(states, draws, strict=True):
        v.assign(ops.cast([int(d), 0], v.dtype))


def build_model(cfg: Config, n_features: int, pm25_scaling: tuple[float, float]) -> keras.Model:
    """cfg.model.arch 'mlp' (flattened window) or 'gru' (stacked GRU over the hours); the head of
    cfg.model.head. Small initial outputs: training starts at persistence (residual) or the mean.
    A network model (cfg.network.stations > 0) reads its last three input columns as the station's
    PM2.5 scale (mean, std µg/m³) and embedding row (`network.STATION_COLUMNS`): each station's
    inputs are scaled by its own train split, and so is the correction the network predicts."""
    m, L, H = cfg.model, cfg.window.lookback, cfg.window.horizon
    x = keras.Input((L, n_features), name="window")
    feats, index, offset, scaling = x, None, None, pm25_scaling
    if cfg.network.stations:
        feats, index = x[..., :-3], _station(x, cfg)
        scaling = (x[:, -1, -3:-2], x[:, -1, -2:-1])  # (batch, 1) each, µg/m³
    emb = None if index is None else _rows(cfg, cfg.network.embed, "station_embedding", index)
    tower_feats = feats
    if cfg.network.stations and cfg.network.level_days and cfg.network.days:  # `log_day*` last
        feats = feats[..., : -cfg.network.days]
    h = _mlp_body(feats, m, emb) if m.arch == "mlp" else _gru_body(feats, m, emb)
    if index is not None and cfg.network.station_heads:
        h, offset = _station_heads(h, index, cfg)
    if m.head == "point":
        out = _point_head(x, h, H, m.residual, scaling, offset)
    elif m.head == "level":  # (batch, H, 1 + E): the point forecast, then P(PM2.5 ≥ b_i)
        point = _point_head(x, h, H, m.residual, scaling, offset)
        std = get_standard(cfg.loss.standard)
        edges = std.edges
        small = keras.initializers.RandomNormal(stddev=1e-3)
        body = ops.stop_gradient(h) if m.detach_level else h
        if m.level_hidden:  # (batch, hidden + level_hidden)
            tower = _mlp_body(tower_feats, m, emb, "level_", m.level_hidden, m.level_dropout)
            body = layers.Concatenate()([body, tower])
        width = (2 + len(edges) + m.level_anchor + m.level_persist) * H
        raw = layers.Dense(width, kernel_initializer=small, name="level_head")(body)
        if index is not None and cfg.network.level_station:  # (batch, width), zero at the start
            raw = raw + _rows(cfg, width, "station_level", index, "zeros")
        anchors = m.level_anchor or m.level_persist
        origin = _base(x, True, scaling, name="level_origin") if anchors else None
        persist = (std.resolution, std.upper_closed) if m.level_persist else None
        p = Exceedance(edges, m.level_anchor, persist, name="exceedance")(point, raw, origin)
        out = ops.concatenate([point[..., None], p], axis=-1)
    else:
        out = _quantile_head(x, h, H, len(m.quantiles), m.residual, scaling)
    return keras.Model(x, out, name=f"aqi_{m.arch}")


def _base(x, residual: bool, scaling, name=None):
    """(batch, 1) µg/m³ the forecast is a correction to: PM2.5 at the origin (residual), else the
    train mean; `scaling` is (mean, std), floats or (batch, 1) tensors of a network model."""
    mean, std = scaling
    if not residual:
        return mean
    if isinstance(mean, float | int):
        return Persistence(mean, std, name=name)(x)
    return x[:, -1, PM25_FEATURE : PM25_FEATURE + 1] * std + mean


def _quantile_head(x, h, horizon: int, q: int, residual: bool, scaling):
    """(batch, H, Q) µg/m³, increasing along Q, non-negative."""
    std = scaling[1] if isinstance(scaling[1], float | int) else ops.expand_dims(scaling[1], -1)
    raw = layers.Dense(
        horizon * q, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3), name="head"
    )(h)
    delta = MonotoneQuantiles(horizon, q, name="quantiles")(raw) * std
    base = _base(x, residual, scaling)
    base = base if isinstance(base, float | int) else ops.expand_dims(base, -1)  # (batch, 1, 1)
    return layers.ReLU(name="pm25")(delta + base)


def _point_head(x, h, horizon: int, residual: bool, scaling, offset=None):
    """(batch, H) µg/m³: persistence + σ·δ (or the train mean + σ·δ), non-negative; `offset`
    (batch, H), a network model's per-station correction to δ."""
    raw = layers.Dense(
        horizon, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3), name="head"
    )(h)
    raw = raw if offset is None else raw + offset
    base = _base(x, residual, scaling, name="persistence")
    return layers.ReLU(name="pm25")(raw * scaling[1] + base)


def _station(x, cfg: Config):
    """(batch,) int the station's row in its tables; row 0 is 'unknown' (and, while training, a
    `station_dropout` share of the windows)."""
    index = ops.cast(ops.round(x[:, -1, -1]), "int32")
    outside = (index < 0) | (index > cfg.network.stations)  # not in the table: a station never seen
    index = ops.where(outside, 0, index)
    return StationDropout(cfg.network.station_dropout, cfg.train.seed, name="station_dropout")(index)


def _rows(cfg: Config, width: int, name: str, index, init="uniform"):
    """(batch, width) the station's row of a learned table of stations + 1 rows."""
    table = layers.Embedding(cfg.network.stations + 1, width, embeddings_initializer=init, name=name)
    return table(index)


def _station_heads(h, index, cfg: Config):
    """Per-station FiLM of the last hidden layer, h·(1 + γ_s) + β_s, and a per-station, per-hour
    correction to the forecast: what a station's own model learns first, zero at the start."""
    width = h.shape[-1]
    film = _rows(cfg, 2 * width, "station_film", index, "zeros")
    h = h * (1.0 + film[:, :width]) + film[:, width:]
    return h, _rows(cfg, cfg.window.horizon, "station_offset", index, "zeros")


def _mlp_body(x, m, emb=None, prefix: str = "", hidden: int | None = None, dropout: float = -1.0):
    rate = m.dropout if dropout < 0 else dropout
    h = layers.Flatten()(x)
    h = layers.Concatenate()([h, emb]) if emb is not None else h
    for i in range(m.layers):
        h = layers.Dense(hidden or m.hidden, activation="gelu", name=f"{prefix}dense_{i}")(h)
        h = layers.Dropout(rate)(h) if rate else h
    return h


def _gru_body(x, m, emb=None):
    h = x
    for i in range(m.layers):
        h = layers.GRU(m.hidden, return_sequences=i < m.layers - 1, name=f"gru_{i}")(h)
    h = layers.Dropout(m.dropout)(h) if m.dropout else h
    # the origin hour itself, unsqueezed: the GRU state alone blurs the latest observation
    last = layers.Flatten()(x[:, -1:, :])
    return layers.Concatenate()([h, last] + ([emb] if emb is not None else []))


def ensemble(models: list) -> keras.Model:
    """One model averaging the members' outputs (µg/m³); a single member is returned as it is."""
    if len(models) == 1:
        return models[0]
    x = keras.Input(models[0].input_shape[1:], name="window")
    for i, m in enumerate(models):
        m.name = f"member_{i}"
    return keras.Model(
        x, keras.layers.Average(name="pm25_mean")([m(x) for m in models]), name="aqi_ensemble"
    )
