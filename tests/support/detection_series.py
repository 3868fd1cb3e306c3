"""Series the detector's unit tests build on: the default config's history length and a calm series.

Used by `tests/alerting/test_detection.py`, `test_detection_guards.py` and
`test_detection_real_traffic_cases.py`.
"""

from __future__ import annotations

import numpy as np

from alerting.spikes.detection import DetectionConfig

CFG = DetectionConfig()
N = CFG.buckets_needed
"""Buckets a full default baseline reads (the last one holds now)."""
PER_DAY = 288
"""5-minute buckets in a day."""


def flat(level: float = 1.0, seed: int = 0, n: int = N) -> np.ndarray:
    """One series of spend per 5-minute bucket around `level`, a little noisy."""
    return level * np.random.default_rng(seed).gamma(50.0, 1 / 50.0, n)
