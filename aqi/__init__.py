"""aqi: PM2.5 air-quality forecasting with an AQI-level-aware loss."""

import os

# TensorFlow's C++ start-up logs (cuInit on CPU-only machines, oneDNN notices) stay out of the user's
# terminal unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
