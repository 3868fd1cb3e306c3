"""Benchmark: one spike-detection pass over 10,000 series (target: <= 1 s).

Two shapes:

* hourly: 10,000 series x 30 days of hourly buckets (720 columns), a 60-minute window, the last
  7 days as baseline (detection reads only the columns it needs);
* 5-minute: 10,000 series x the columns the default config reads (7 days + a few hours of 5-minute
  buckets, ~2,070 columns), windows of 5, 15 and 30 minutes, the current bucket partly filled.

Synthetic gamma-distributed spend with a daily cycle; 1 % of the series carry a spike. Prints the
median of a few passes. Run: `.venv/bin/python bench/bench_detection.py`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.spikes.detection import DetectionConfig, detect_spikes

N_SERIES = 10_000
REPEATS = 5


def make(n_series: int, n_buckets: int, per_day: int, rng: np.random.Generator) -> np.ndarray:
    level = rng.lognormal(0.0, 1.0, size=(n_series, 1))
    phase = np.arange(n_buckets) % per_day / per_day
    daily = 1.0 + 0.6 * np.sin(2 * np.pi * phase)
    values = rng.gamma(4.0, 0.25, size=(n_series, n_buckets)) * level * daily
    spiked = rng.random(n_series) < 0.01
    values[spiked, -1] *= 5.0
    return values


def bench(name: str, values: np.ndarray, cfg: DetectionConfig, now_fraction: float) -> float:
    times = []
    res = None
    for _ in range(REPEATS):
        started = time.perf_counter()
        res = detect_spikes(values, cfg, now_fraction=now_fraction)
        times.append(time.perf_counter() - started)
    assert res is not None
    best = statistics.median(times)
    print(
        f"{name}: {values.shape[0]:,} series x {values.shape[1]:,} buckets -> "
        f"{1000 * best:.0f} ms per pass (median of {REPEATS}; min {1000 * min(times):.0f} ms), "
        f"{int(res.is_spike.sum())} firing  [{'OK' if best <= 1.0 else 'SLOWER THAN 1 s'}]"
    )
    return best


def main() -> int:
    rng = np.random.default_rng(42)
    hourly_cfg = DetectionConfig(
        bucket_seconds=3600, window_minutes=60, short_windows_minutes=(), seasonal_spread_minutes=0
    )
    hourly = make(N_SERIES, 30 * 24, 24, rng)
    t_hourly = bench("hourly, 30 days", hourly, hourly_cfg, 1.0)
    del hourly

    cfg = DetectionConfig()
    five = make(N_SERIES, cfg.buckets_needed, 288, rng)
    t_five = bench("5-minute, default config", five, cfg, 0.4)
    return 0 if max(t_hourly, t_five) <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
