"""Import TensorFlow without its C++ start-up noise (cuInit on CPU-only machines, oneDNN notices).

These lines are written to file descriptor 2 before absl logging starts, so TF_CPP_MIN_LOG_LEVEL
does not hide them; stderr is pointed at /dev/null while TF loads and probes devices.
Set AQI_TF_VERBOSE=1 to see them.
"""

from __future__ import annotations

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
    return tf
