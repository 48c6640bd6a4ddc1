"""The smooth tanh-step AQI-level loss and the mixed loss that makes it trainable.

soft_level(c) = Σ_i (tanh((c - b_i) / tau_i) + 1) / 2 counts the breakpoints b_i below a concentration
c (µg/m³) differentiably. Far from every b_i its gradient vanishes (tanh saturates), so a pure level loss
leaves weights still; mixing in (1 - alpha)·|y - ŷ| / scale keeps a gradient of at least
(1 - alpha) / scale everywhere, and since soft_level is increasing both terms push the same way.

Losses return per-example values (batch,): the caller reduces them, dividing by the *global* batch size
under a distribution strategy. Targets that are NaN are masked (weight 0).
"""

from __future__ import annotations

from aqi.config import Config, LossConfig, median_index
from aqi.levels import Standard, get_standard
from aqi.tfboot import import_tf

tf = import_tf()
import keras  # noqa: E402


def breakpoint_taus(std: Standard, cfg: LossConfig) -> list[float]:
    """tau per breakpoint (µg/m³): cfg.tau, or cfg.tau_frac × the width of the band below it."""
    if cfg.tau_frac <= 0:
        return [cfg.tau] * len(std.edges)
    lows = (0.0, *std.edges)
    return [cfg.tau_frac * (b - a) for a, b in zip(lows, std.edges, strict=False)]


def soft_level(c, breakpoints, tau):
    """(...,) µg/m³ → (...,) soft level count in [0, len(breakpoints)]."""
    b = tf.constant(breakpoints, tf.float32)
    t = tf.cast(tau, tf.float32)
    return tf.reduce_sum((tf.tanh((c[..., None] - b) / t) + 1.0) / 2.0, axis=-1)


def hard_level(c, std: Standard):
    """In-graph twin of `levels.level`, by the same rule and arithmetic (float64): truncate to the
    standard's resolution, then count the edges a concentration reaches. NaN → -1."""
    return _hard_level(c, std.edges, std.resolution, std.upper_closed)


def _hard_level(c, edges, resolution: float, upper_closed: bool):
    c = tf.cast(c, tf.float64)
    t = tf.floor(c / resolution + 1e-9) * resolution if resolution else c
    e = tf.constant(edges, tf.float64)
    above = t[..., None] > e if upper_closed else t[..., None] >= e
    return tf.where(tf.math.is_nan(c), -1, tf.reduce_sum(tf.cast(above, tf.int32), axis=-1))


def _mask(y_true, *others):
    """Finite-target mask (batch, H) and NaN-free copies of the tensors, so gradients stay finite."""
    m = tf.math.is_finite(y_true)
    return tf.cast(m, tf.float32), [tf.where(m, t, tf.zeros_like(t)) for t in (y_true, *others)]


@keras.saving.register_keras_serializable(package="aqi")
class LevelLoss(keras.losses.Loss):
    """Mixed loss alpha·|S(y) - S(ŷ)| + (1 - alpha)·|y - ŷ| / scale, averaged over horizons (missing
    targets count zero). `y_scale`, `y_shift` un-scale predictions made in scaled units inside the
    graph: ŷ µg/m³ = y_pred·y_scale + y_shift."""

    # Defaults: LossConfig's, on its standard's breakpoints, with no level head (level_weight 0);
    # `from_standard` is the way in from a Config, these serve tests and Keras' config round trip.
    def __init__(
        self,
        breakpoints=None,
        tau=LossConfig.tau,
        alpha=LossConfig.alpha,
        scale=LossConfig.scale,
        y_scale=1.0,
        y_shift=0.0,
        quantiles=(),
        level_weight=0.0,
        level_ramp=LossConfig.level_ramp,
        level_head=False,
        level_loss=LossConfig.level_loss,
        resolution=0.0,
        upper_closed=False,
        head_breakpoints=None,
        name="level_loss",
        reduction="sum_over_batch_size",
    ):
        super().__init__(name=name, reduction=reduction)
        bs = get_standard(LossConfig.standard).edges if breakpoints is None else breakpoints
        self.breakpoints = [float(b) for b in bs]
        self.tau = [float(t) for t in tau] if isinstance(tau, list | tuple) else float(tau)
        self.alpha, self.scale = float(alpha), float(scale)
        self.y_scale, self.y_shift = float(y_scale), float(y_shift)
        self.quantiles = [float(q) for q in quantiles]  # set: y_pred is (batch, H, Q) quantiles
        # > 0: y_pred is the level head's (batch, H, 1 + E), the point then P(y ≥ b_i); the hard
        # level of y (resolution, upper_closed as in levels.level) gives the binary targets
        self.level_weight = float(level_weight)
        self.level_head = bool(level_head)
        self.level_ramp = float(level_ramp)  # weight of the last horizon's log loss vs the first's
        self.level_loss = str(level_loss)  # "ordinal" | "categorical" (LossConfig.level_loss)
        self.resolution, self.upper_closed = float(resolution), bool(upper_closed)
        # the level head's breakpoints (its standard's); None: the level term's
        hb = self.breakpoints if head_breakpoints is None else head_breakpoints
        self.head_breakpoints = [float(b) for b in hb]
        self.tau_scale = tf.Variable(1.0, trainable=False, name="tau_scale")  # see `anneal`

    def anneal(self, factor: float) -> None:
        """Scale every tau by `factor` (≥ 1) from the next step on: the continuation schedule."""
        self.tau_scale.assign(float(factor))

    @classmethod
    def for_model(cls, std: Standard, cfg: Config) -> LevelLoss:
        """The loss a model of `cfg` trains with: its head decides the loss's form."""
        m = cfg.model
        qs = m.quantiles if m.head == "quantile" else ()
        return cls.from_standard(std, cfg.loss, m.head, quantiles=qs)

    @classmethod
    def from_standard(cls, std: Standard, cfg: LossConfig, head: str = "point", **kw) -> LevelLoss:
        if head == "level":
            kw |= {"level_weight": cfg.level_weight, "level_ramp": cfg.level_ramp, "level_head": True}
            kw |= {"level_loss": cfg.level_loss}
            kw |= {"resolution": std.resolution, "head_breakpoints": std.edges}
            kw |= {"upper_closed": std.upper_closed}
        term = get_standard(cfg.term_standard) if cfg.term_standard else std
        return cls(term.edges, breakpoint_taus(term, cfg), cfg.alpha, cfg.scale, **kw)

    def terms(self, y_true, y_pred):
        """(level term, MAE term, mask), each (batch, H), before alpha weighting."""
        y_pred = tf.cast(y_pred, tf.float32) * self.y_scale + self.y_shift
        mask, (y, p) = _mask(tf.cast(y_true, tf.float32), y_pred)
        tau = tf.constant(self.tau, tf.float32) * self.tau_scale
        lvl = tf.abs(soft_level(y, self.breakpoints, tau) - soft_level(p, self.breakpoints, tau))
        return lvl * mask, tf.abs(y - p) / self.scale * mask, mask

    def call(self, y_true, y_pred):
        if self.level_head:
            point = y_pred[..., 0]
        else:
            point = y_pred[..., median_index(self.quantiles)] if self.quantiles else y_pred
        lvl, mae, _ = self.terms(y_true, point)
        per_h = self.alpha * lvl + (1.0 - self.alpha) * mae
        if self.quantiles:
            per_h += self.pinball(y_true, y_pred)
        if self.level_head and self.level_weight:
            ramp = tf.linspace(1.0, self.level_ramp, tf.shape(per_h)[-1])  # (H,), mean 1 below
            weight = self.level_weight * ramp / tf.reduce_mean(ramp)
            per_h += weight * self.level_log_loss(y_true, y_pred[..., 1:])
        return tf.reduce_mean(per_h, axis=-1)  # (batch,)

    def level_log_loss(self, y_true, p_exceed):
        """(batch, H) log loss of the level head's P(y ≥ b_i) (batch, H, E) against the observed
        level k (`level_loss`); missing targets 0.
        "ordinal": Σ_i binary cross-entropy of P(y ≥ b_i) against whether y reached b_i, the
        log-score counterpart of the soft level count (E[level] = Σ_i P(y ≥ b_i)).
        "categorical": -log P(level = k) = -log(P(y ≥ b_k) - P(y ≥ b_k+1)), the probability of the
        one level the most-probable decision publishes."""
        y = tf.cast(y_true, tf.float32)
        k = _hard_level(y, self.head_breakpoints, self.resolution, self.upper_closed)  # (batch, H)
        p = tf.clip_by_value(tf.cast(p_exceed, tf.float32), 1e-6, 1.0 - 1e-6)
        if self.level_loss == "categorical":
            ones, zeros = tf.ones_like(p[..., :1]), tf.zeros_like(p[..., :1])
            levels = tf.concat([ones, p], -1) - tf.concat([p, zeros], -1)  # (batch, H, E + 1)
            hit = tf.gather(levels, tf.maximum(k, 0), batch_dims=2)
            loss = -tf.math.log(tf.maximum(hit, 1e-6))
        else:
            reached = tf.cast(k[..., None] > tf.range(len(self.head_breakpoints)), tf.float32)
            bce = -(reached * tf.math.log(p) + (1.0 - reached) * tf.math.log(1.0 - p))
            loss = tf.reduce_sum(bce, axis=-1)
        return tf.where(tf.math.is_finite(y), loss, 0.0)

    def pinball(self, y_true, y_pred):
        """(batch, H): pinball loss averaged over the quantiles, / scale; missing targets 0."""
        q = tf.constant(self.quantiles, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32) * self.y_scale + self.y_shift
        y = tf.cast(y_true, tf.float32)
        m = tf.math.is_finite(y)
        err = tf.where(m, y, 0.0)[..., None] - y_pred  # (batch, H, Q)
        loss = tf.reduce_mean(tf.maximum(q * err, (q - 1.0) * err), axis=-1) / self.scale
        return tf.where(m, loss, 0.0)

    def get_config(self):
        return {
            "breakpoints": self.breakpoints,
            "tau": self.tau,
            "alpha": self.alpha,
            "scale": self.scale,
            "y_scale": self.y_scale,
            "y_shift": self.y_shift,
            "quantiles": self.quantiles,
            "level_weight": self.level_weight,
            "level_ramp": self.level_ramp,
            "level_head": self.level_head,
            "level_loss": self.level_loss,
            "resolution": self.resolution,
            "upper_closed": self.upper_closed,
            "head_breakpoints": self.head_breakpoints,
            "name": self.name,
            "reduction": self.reduction,
        }
