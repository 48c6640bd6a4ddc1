"""Import TensorFlow without its C++ start-up noise (cuInit on CPU-only machines, oneDNN notices).

These lines are written straight to file descriptor 2, some before absl logging starts and some later
as TF loads libraries lazily, so TF_CPP_MIN_LOG_LEVEL does not hide them. The `aqi` command therefore
points fd 2 at /dev/null and gives Python's sys.stderr a duplicate of the real stderr
(`route_native_stderr`): our messages, warnings and tracebacks still reach the terminal or log file.
Set AQI_TF_VERBOSE=1 to see TensorFlow's own lines.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager


@contextmanager
def quiet_stderr():
    if os.environ.get("AQI_TF_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tf():
    """`tensorflow`, imported and its devices probed with stderr silenced."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")  # retracing notices are for developers, not batch logs
    return tf


def route_native_stderr() -> None:
    """fd 2 → /dev/null for native libraries; sys.stderr → a duplicate of the original stderr."""
    if os.environ.get("AQI_TF_VERBOSE"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(saved, "w"), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
