"""aqi: PM2.5 air-quality forecasting with an AQI-level-aware loss."""

import os
from importlib.metadata import PackageNotFoundError, version

# TensorFlow's C++ start-up logs (cuInit on CPU-only machines, oneDNN notices) stay out of the user's
# terminal unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    __version__ = version("aqi")  # one source of truth: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
