"""scipy's L-BFGS-B as an optimizer for a Keras model: full-batch, for small models and fine-tuning.

scipy works in float64 on one flat vector; the model in float32 variables. The boundary is explicit:
a `tf.function` computes (loss, flat gradient) in float32 for a float32 vector, and the wrapper casts
to and from float64 for scipy (`jac=True`: one call gives both). The objective is the same masked,
per-example mixed loss as the main loop, averaged over all windows, in inference mode (dropout off),
so the line search sees a deterministic function. The best iterate is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from aqi.losses import tf


@dataclass
class LbfgsResult:
    losses: list[float] = field(default_factory=list)  # objective after each iteration
    best_loss: float = np.inf
    iterations: int = 0
    seconds: float = 0.0
    message: str = ""


def flat_value_and_grad(model, loss, x: np.ndarray, y: np.ndarray):
    """A tf.function: flat float32 weights (P,) → (mean loss, flat gradient (P,))."""
    variables = model.trainable_variables
    shapes = [v.shape for v in variables]
    sizes = [int(np.prod(s)) for s in shapes]
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([sum(sizes)], tf.float32)])
    def value_and_grad(flat):
        for v, part, shape in zip(variables, tf.split(flat, sizes), shapes, strict=True):
            v.assign(tf.reshape(part, shape))
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss.call(yt, model(xt, training=False)))
        grads = tape.gradient(value, variables)
        return value, tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)

    return value_and_grad


def lbfgs_fit(
    model,
    loss,
    x: np.ndarray,
    y: np.ndarray,
    iterations: int,
    max_seconds: float | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
) -> LbfgsResult:
    """Minimise the mean loss over (x, y) with L-BFGS-B; the model ends at the best iterate."""
    fn = flat_value_and_grad(model, loss, x, y)
    w0 = np.concatenate([v.numpy().ravel() for v in model.trainable_variables]).astype(np.float64)
    res, best = LbfgsResult(), {"w": w0}
    started = time.perf_counter()

    def f(w64: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = fn(tf.constant(w64, tf.float32))
        return float(value), grad.numpy().astype(np.float64)

    def callback(intermediate_result) -> None:
        value = float(intermediate_result.fun)
        res.losses.append(value)
        if value < res.best_loss:
            res.best_loss, best["w"] = value, intermediate_result.x.copy()
        if on_iteration:
            on_iteration(len(res.losses), value)
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            raise StopIteration  # scipy ≥ 1.11 ends the run cleanly

    res.best_loss = f(w0)[0]
    out = minimize(
        f, w0, jac=True, method="L-BFGS-B", callback=callback, options={"maxiter": iterations}
    )
    fn(tf.constant(best["w"], tf.float32))  # leave the model at the best iterate
    res.iterations, res.message = len(res.losses), str(out.message)
    res.seconds = time.perf_counter() - started
    return res
