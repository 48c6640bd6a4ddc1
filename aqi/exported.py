"""A trained model's forward pass as a LiteRT flatbuffer (`model.tflite`), run without TensorFlow.

Forecasting needs only the forward pass, and importing TensorFlow costs 4-5 s of a 2-core batch
job's start (more than reading 1,000 stations). Keras exports the same graph in the LiteRT format
(`model.export(format="litert")`) and `ai_edge_litert` runs it in ~0.1 s of import; the Keras
file stays the model of record (fine-tuning, the checks of `TrainedModel.save`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aqi.config import AqiError
from aqi.cpus import budget
from aqi.tfboot import quiet_stderr

LITE_FILE = "model.tflite"
PROBE = 64  # windows the export is checked on: the same outputs as Keras, or it is not kept
TOLERANCE = 1e-5  # of the outputs' scale (1 + their largest |value|): float32 reordering only


def export(model, path: Path) -> str | None:
    """Write `model`'s inference graph (batch axis free) to `path` and check it on random windows
    against the Keras model itself: None, or why not (the file removed; such a model predicts
    through Keras, so a finished training is never lost to its export). The converter's log goes
    to the silenced fd 2; a full disk is an error like any other write's."""
    x = np.random.default_rng(0).normal(size=(PROBE, *model.input_shape[1:])).astype(np.float32)
    # positive: a network model's last columns are its PM2.5 scale and station row (any model: harmless)
    x[:, -1, -3:] = np.abs(x[:, -1, -3:]) + 1.0
    want = np.asarray(model(x, training=False))
    try:
        with quiet_stderr():
            _unrolled(model).export(str(path), format="litert", verbose=False)
        got = Runner(path)(x)
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - the converter and the runtime raise many kinds
        path.unlink(missing_ok=True)
        return f"the LiteRT export failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    scale = 1.0 + float(np.abs(want).max())
    if got.shape != want.shape or not np.allclose(got, want, atol=TOLERANCE * scale):
        path.unlink()
        return "the LiteRT export does not reproduce the Keras model"
    return None


def _unrolled(model):
    """A copy of `model` (the same weights) with recurrent layers unrolled over the L hours: a GRU's
    while-loop needs TensorFlow's own ops in LiteRT, its 24 unrolled steps only builtin ones."""
    import keras

    def clone(layer):
        config = layer.get_config()
        return layer.__class__.from_config(config | {"unroll": True} if "unroll" in config else config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


class Runner:
    """`runner(x)`: (N, L, F) float32 scaled windows → the model's output, batched."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=budget())
        except (ValueError, RuntimeError) as e:
            raise AqiError(f"{path}: cannot be loaded ({type(e).__name__}); retrain") from None
        self.input = self.interpreter.get_input_details()[0]["index"]
        out = self.interpreter.get_output_details()[0]
        self.output, self.shape = out["index"], tuple(out["shape_signature"][1:])  # (H,) (H, Q)…
        self.rows = -1  # the batch size the tensors are allocated for

    def __call__(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        if not len(x):
            return np.zeros((0, *self.shape), np.float32)
        return np.concatenate([self._run(x[i : i + batch]) for i in range(0, len(x), batch)])

    def _run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if len(x) != self.rows:  # a new batch size: resize, then re-plan the tensors
            it.resize_tensor_input(self.input, x.shape, strict=False)
            it.allocate_tensors()
            self.rows = len(x)
        it.set_tensor(self.input, x)
        it.invoke()
        return it.get_tensor(self.output).copy()
