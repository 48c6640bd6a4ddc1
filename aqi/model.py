"""`build_model(cfg, n_features, pm25_scaling) -> keras.Model`, pure: same arguments, same graph.

Input (batch, L, F) scaled features; output (batch, H) PM2.5 in µg/m³, or (batch, H, Q) quantiles.
With `residual`, the network predicts a correction to persistence: ŷ = relu(c_t + σ·δ), c_t the
PM2.5 at the origin (µg/m³, un-scaled inside the graph) and σ the train-split PM2.5 standard deviation.
The quantile head adds non-negative (softplus) increments, bounded above, to the lowest quantile,
so quantiles never cross and the spread cannot diverge.
"""

from __future__ import annotations

from aqi.config import Config
from aqi.tfboot import import_tf
from aqi.windows import PM25_FEATURE

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


def build_model(cfg: Config, n_features: int, pm25_scaling: tuple[float, float]) -> keras.Model:
    """cfg.model.arch 'mlp' (flattened window) or 'gru' (stacked GRU over the hours)."""
    m, L, H = cfg.model, cfg.window.lookback, cfg.window.horizon
    q = len(m.quantiles) if m.head == "quantile" else 1
    x = keras.Input((L, n_features), name="window")
    h = _mlp_body(x, m) if m.arch == "mlp" else _gru_body(x, m)
    # small initial outputs: training starts at persistence (residual) or near the mean
    raw = layers.Dense(
        H * q, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3), name="head"
    )(h)
    mean, std = pm25_scaling
    if q > 1:
        delta = MonotoneQuantiles(H, q, name="quantiles")(raw) * std  # (batch, H, Q) µg/m³
        base = ops.expand_dims(Persistence(mean, std)(x), -1) if m.residual else mean
    else:
        delta = raw * std  # (batch, H) µg/m³
        base = Persistence(mean, std, name="persistence")(x) if m.residual else mean
    out = layers.ReLU(name="pm25")(delta + base)  # concentrations are non-negative
    return keras.Model(x, out, name=f"aqi_{m.arch}")


def _mlp_body(x, m):
    h = layers.Flatten()(x)
    for i in range(m.layers):
        h = layers.Dense(m.hidden, activation="gelu", name=f"dense_{i}")(h)
        h = layers.Dropout(m.dropout)(h) if m.dropout else h
    return h


def _gru_body(x, m):
    h = x
    for i in range(m.layers):
        h = layers.GRU(m.hidden, return_sequences=i < m.layers - 1, name=f"gru_{i}")(h)
    h = layers.Dropout(m.dropout)(h) if m.dropout else h
    # the origin hour itself, unsqueezed: the GRU state alone blurs the latest observation
    return layers.Concatenate()([h, layers.Flatten()(x[:, -1:, :])])
