"""Detector behaviour on the shapes behind its false alarms and misses on real tenant traffic (issue #21).

Each test rebuilds, on a synthetic series, one kind of case the real-traffic evaluation
(bench/eval_real_traffic.py, docs/detection-experiments.md) kept finding: a few busy minutes after a lull, a daily
job arriving early, a tenant that started an hour ago at an hour it is always silent, a burst after
which the tenant went quiet, and a spike on a tenant whose last hours were a steep (daily) ramp.
"""

from __future__ import annotations

import numpy as np

from alerting.spikes.detection import DetectionConfig, Reason, detect_spikes
from tests.support.detection_series import CFG, PER_DAY, N, flat

LAST = N - 1


def test_a_burst_after_a_lull_with_the_half_hour_below_usual_is_not_a_spike() -> None:
    """25 silent minutes, then 5 busy ones: the 5-minute window is 5x, the half hour below its usual."""
    lull = flat()
    lull[-6:-1] = 0.0
    lull[-1] = 5.5
    res = detect_spikes(lull[None, :], CFG)
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.BELOW_MULTIPLIER
    burst = flat()
    burst[-1] = 5.5  # the same 5 minutes on top of the usual half hour: caught within minutes
    fast = detect_spikes(burst[None, :], CFG)
    assert fast.is_spike[0] and fast.window_minutes[0] == 5


def _daily_job(today: bool) -> np.ndarray:
    """A 10x job in one bucket 20 minutes after this time on every previous day; today it came now."""
    values = flat()
    for day in range(1, 8):
        values[LAST - day * PER_DAY + 4] = 10.0
    if today:
        values[-1] = 10.0
    return values


def test_a_daily_job_arriving_20_minutes_early_is_not_a_spike_on_the_short_windows() -> None:
    res = detect_spikes(_daily_job(today=True)[None, :], CFG)
    assert res.ratio[0] >= CFG.multiplier  # 10x the same 5 minutes on previous days...
    assert not res.is_spike[0]  # ...but the size it reaches every day within the half hour around now
    assert res.reason[0] == Reason.NEAR_USUAL_PEAK
    new = flat()
    new[-1] = 10.0  # never seen around this time: a spike
    assert detect_spikes(new[None, :], CFG).is_spike[0]


def test_a_tenant_started_100_minutes_ago_at_an_hour_it_is_always_silent_does_not_alert() -> None:
    """The half hour has no baseline (silent now on every previous day and for most of the hours
    before), so the 5-minute window, whose recent windows are just busy enough, does not alert alone."""
    values = flat()
    for day in range(1, 8):
        end = LAST - day * PER_DAY
        values[end - 60 : end + 12] = 0.0
    values[-60:-20] = 0.0
    values[-1] = 20.0
    res = detect_spikes(values[None, :], CFG)
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.SHORT_HISTORY
    short_alone = DetectionConfig(window_minutes=5, short_windows_minutes=())
    assert detect_spikes(values[None, :], short_alone).is_spike[0]  # what the 5-minute window saw


def _after_a_steep_daily_ramp(factor: float) -> np.ndarray:
    """Spend climbs 20x over the three hours before now, every day alike; today the last half hour
    is `factor` x the level the ramp reaches."""
    values = flat()
    ramp = np.linspace(0.1, 2.0, 36)
    for day in range(0, 8):
        end = LAST - day * PER_DAY
        values[end - 41 : end - 5] *= ramp
        values[end - 5 : end + 1] *= 2.0 * (factor if day == 0 else 1.0)
    return values


def test_a_spike_after_a_steep_daily_ramp_fires() -> None:
    """The recent windows vary widely because of the ramp, not because the tenant is erratic: a
    3.5x jump on top of it is a spike (the ramp's spread once made the robust score disagree)."""
    res = detect_spikes(_after_a_steep_daily_ramp(3.5)[None, :], CFG)
    assert res.is_spike[0]
    assert res.reason[0] == Reason.SPIKE
    assert not detect_spikes(_after_a_steep_daily_ramp(1.0)[None, :], CFG).is_spike[0]  # the usual ramp


def test_a_burst_after_which_the_tenant_went_quiet_starts_no_alert() -> None:
    """15 busy minutes, then nothing for 15: the half hour still holds 3x its usual, but it is over."""
    over = flat()
    over[-6:-3] *= 7.0
    over[-3:] = 0.0
    res = detect_spikes(over[None, :], CFG)
    assert res.ratio[0] >= CFG.multiplier
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.BELOW_MULTIPLIER
    held = detect_spikes(over[None, :], CFG, previously_firing=np.array([True]))
    assert held.is_spike[0] and held.reason[0] == Reason.HELD  # an alert already up stays up
    going = flat()
    going[-6:-3] *= 7.0  # the same burst, with the tenant still spending as usual: a spike
    assert detect_spikes(going[None, :], CFG).is_spike[0]
