"""Checks of what a user asks for, made before any work: option ranges and the size of the work.

`validate` range-checks every user-settable field; `check_size` estimates the model's parameters
and the windows' memory from the config and the station's hours, so `--hidden 2000000` or
`--horizon 10000` fail at once with the option named, not after minutes or with an out-of-memory
kill.
"""

from __future__ import annotations

import math
import os

from aqi.config import MEDIAN, AqiError, Config
from aqi.levels import STANDARDS

# A network bigger than this is a typo, not a model: 50M parameters are 200 MB of float32 weights,
# 600 MB with Adam's two moments; the default network model has 0.7M.
MAX_PARAMS = 50_000_000
MEMORY_SHARE = 0.5  # of physical memory the windows of one training may take (x, y, float32)

CHOICES = {
    "arch": ("mlp", "gru"),
    "head": ("point", "quantile", "level"),
    "optimizer": ("adam", "adamw", "sgd", "nadam", "rmsprop", "lbfgs"),
    "schedule": ("cosine", "exponential", "constant"),
    "neighbours_by": ("correlation", "coordinates", "auto"),
    "level_loss": ("ordinal", "categorical"),
}


def parse_quantiles(text: str) -> tuple[float, ...]:
    """`--quantiles 0.1,0.5,0.9` → (0.1, 0.5, 0.9); validate() checks the values."""
    try:
        return tuple(float(q) for q in text.split(","))
    except ValueError:
        raise AqiError(f"--quantiles {text!r}: comma-separated numbers in (0, 1)") from None


def _quantiles_ok(qs: tuple[float, ...]) -> bool:
    """Increasing, distinct, inside (0, 1), at least two, the median among them."""
    return list(qs) == sorted(set(qs)) and all(0 < q < 1 for q in qs) and MEDIAN in qs and len(qs) >= 2


def validate(cfg: Config) -> Config:
    """Range checks of every user-settable field; AqiError names the command-line option (or the
    section.field a script sets)."""
    for opt, value, ok in _ranges(cfg):
        if not ok:
            raise AqiError(f"{opt} {value}: out of range")
    _choices(cfg)
    return _together(cfg)


def _ranges(cfg: Config) -> list[tuple[str, object, bool]]:
    w, m, lo, t, n = cfg.window, cfg.model, cfg.loss, cfg.train, cfg.network
    return [
        ("--lookback", w.lookback, w.lookback >= 1),
        ("--horizon", w.horizon, w.horizon >= 1),
        ("--max-gap", w.max_gap, w.max_gap >= 0),
        ("--stale-limit", w.stale_limit, w.stale_limit >= 0),
        ("--test-months", w.test_months, w.test_months is None or 0 <= w.test_months <= 1200),
        ("window.val_months", w.val_months, 1 <= w.val_months <= 1200),
        ("--gap-share", cfg.train.gap_share, 0 <= cfg.train.gap_share <= 1),
        ("--hidden", m.hidden, m.hidden >= 1),
        ("--level-hidden", m.level_hidden, m.level_hidden >= 0),
        ("--layers", m.layers, m.layers >= 1),
        ("--members", m.members, m.members >= 1),
        ("--dropout", m.dropout, 0 <= m.dropout < 1),
        ("model.level_dropout", m.level_dropout, m.level_dropout < 1),  # negative: the body's
        ("--alpha", lo.alpha, 0 <= lo.alpha <= 1),
        ("--tau", lo.tau, 0 < lo.tau < math.inf),
        ("--tau-frac", lo.tau_frac, lo.tau_frac >= 0),
        ("--tau-anneal", lo.tau_anneal, 1 <= lo.tau_anneal < math.inf),
        ("--scale", lo.scale, 0 < lo.scale < math.inf),
        ("--level-weight", lo.level_weight, 0 <= lo.level_weight < math.inf),
        ("--level-ramp", lo.level_ramp, 0 < lo.level_ramp < math.inf),
        ("--miss-cost", cfg.decision.miss_cost, 0 < cfg.decision.miss_cost < math.inf),
        ("--epochs", t.epochs, t.epochs >= 1),
        ("--batch-size", t.batch_size, t.batch_size >= 1),
        ("--lr", t.lr, 0 < t.lr < math.inf),
        ("--seed", t.seed, 0 <= t.seed < 2**32 - m.members),  # member k is seeded seed + k
        ("--patience", t.patience, t.patience >= 0),
        ("--clipnorm", t.clipnorm, t.clipnorm is None or t.clipnorm > 0),
        ("--finetune-lbfgs", t.finetune_lbfgs, t.finetune_lbfgs >= 0),
        ("--level-epochs", t.level_epochs, t.level_epochs >= 0),
        ("--ema", t.ema, 0 <= t.ema < 1),
        ("--quantiles", m.quantiles, _quantiles_ok(m.quantiles)),
        ("train.lr_floor", t.lr_floor, 0 <= t.lr_floor <= 1),  # a share of --lr
        ("network.min_overlap", n.min_overlap, n.min_overlap >= 1),
        ("network.cold_days", n.cold_days, n.cold_days >= 1),
        ("network.cold_overlap", n.cold_overlap, 1 <= n.cold_overlap <= 24 * n.cold_days),
        ("network.recency", n.recency, 0 <= n.recency < math.inf),  # days
    ]


def _choices(cfg: Config) -> None:
    """Every option with a fixed set of values holds one of them (CHOICES)."""
    m, t = cfg.model, cfg.train
    chosen = {"arch": m.arch, "head": m.head, "optimizer": t.optimizer, "schedule": t.schedule}
    chosen |= {"neighbours_by": cfg.network.neighbours_by, "level_loss": cfg.loss.level_loss}
    for name, value in chosen.items():
        if value not in CHOICES[name]:
            option = "--" + name.replace("_", "-")
            raise AqiError(f"{option} {value!r}: use one of {', '.join(CHOICES[name])}")


def _together(cfg: Config) -> Config:
    """Options that are in range alone and not together."""
    t, m = cfg.train, cfg.model
    if t.level_epochs and not (m.head == "level" and m.detach_level):
        raise AqiError(f"--level-epochs {t.level_epochs}: needs a detached level head (network models)")
    if cfg.network.level_days and not (cfg.network.days and m.head == "level" and m.level_hidden):
        raise AqiError("network.level_days: needs network.days > 0 and --level-hidden > 0")
    term = cfg.loss.term_standard
    if term and term not in STANDARDS and not term.endswith(".toml"):
        raise AqiError(f"--term-standard {term!r}: use one of {', '.join(STANDARDS)} or a .toml file")
    for name in ("level_anchor", "level_persist"):
        if getattr(m, name) and m.head != "level":
            raise AqiError(f"model.{name}: needs --head level (not {m.head!r})")
    return cfg


def n_params(cfg: Config, n_features: int, n_edges: int = 6) -> int:
    """Trainable parameters of one member, estimated from the config: the body's dense (or GRU)
    layers and the head; embeddings and biases are negligible beside them."""
    m, w = cfg.model, cfg.window
    per_h = {"point": 1, "quantile": len(m.quantiles), "level": 1 + n_edges}[m.head]
    if m.arch == "gru":
        body = 3 * (n_features + m.hidden) * m.hidden + 3 * 2 * m.hidden**2 * (m.layers - 1)
    else:
        body = w.lookback * n_features * m.hidden + m.hidden**2 * (m.layers - 1)
    tower = m.level_hidden if m.head == "level" else 0  # the level head's own MLP
    tower_params = (w.lookback * n_features + tower * (m.layers - 1)) * tower
    return body + tower_params + (m.hidden + tower) * w.horizon * per_h


def physical_memory() -> int:
    """Bytes of RAM of this machine (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_size(cfg: Config, n_features: int, hours: int, what: str) -> None:
    """AqiError naming the option when the model or the windows of `hours` hours of `what` (a
    station, a network) cannot be built: too many parameters, a window longer than the data, or
    windows (N, L, F) + (N, H) float32 larger than MEMORY_SHARE of the machine's memory."""
    w, m = cfg.window, cfg.model
    params = n_params(cfg, n_features)
    if params > MAX_PARAMS:
        opt = "--hidden" if m.hidden * m.hidden > w.horizon * w.lookback else "--horizon"
        raise AqiError(
            f"{opt} {getattr(w if opt == '--horizon' else m, opt[2:])}: the model would have "
            f"{params:.2g} parameters (at most {MAX_PARAMS:.0e}); use a smaller value"
        )
    if w.lookback + w.horizon > hours:
        raise AqiError(
            f"--lookback {w.lookback} + --horizon {w.horizon}: longer than the {hours} hours of "
            f"{what}; use shorter windows"
        )
    need = 4 * (hours - w.lookback - w.horizon + 1) * (w.lookback * n_features + w.horizon)
    have = physical_memory() * MEMORY_SHARE
    if have and need > have:
        raise AqiError(
            f"--lookback {w.lookback} / --horizon {w.horizon}: the windows of {what} need "
            f"{need / 2**30:.1f} GiB, over {MEMORY_SHARE:.0%} of this machine's memory; "
            "use shorter windows"
        )
