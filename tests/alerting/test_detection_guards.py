"""The detector's guards against what real tenant traffic does without being a spike (issue #21).

Found by the real-traffic evaluation (bench/eval_real_traffic.py, docs/detection-experiments.md): most false alarms
were windows far above the same time on previous days but not above what the tenant was spending in
the hours before (a busier day, an evening drop that did not come), or a size the tenant had already
reached at this hour on other days of the week.
"""

from __future__ import annotations

import numpy as np

from alerting.spikes.detection import DetectionConfig, Reason, detect_spikes
from tests.support.detection_series import CFG, PER_DAY, N, flat

WINDOW = 6


def _usually_quiet_now(series: np.ndarray) -> np.ndarray:
    """On previous days, the half hour around this time was at a fifth of the rest of the day."""
    quiet = np.zeros(N, dtype=bool)
    for day in range(1, 8):
        end = N - day * PER_DAY
        quiet[end - WINDOW - 3 : end + 3] = True
    return np.where(quiet, series / 5, series)


def test_an_evening_drop_that_did_not_come_is_not_a_spike() -> None:
    """Every day spend falls to a fifth at this hour; today it stayed where it was. Not sudden: no alert."""
    values = _usually_quiet_now(flat(5.0))
    res = detect_spikes(values[None, :], CFG)
    assert res.ratio[0] >= CFG.multiplier  # 5x the same time on previous days...
    assert not res.is_spike[0]  # ...but no more than it has spent all afternoon
    assert res.reason[0] == Reason.BELOW_RECENT_LEVEL
    assert detect_spikes(values[None, :], DetectionConfig(recent_guard=0.0)).is_spike[0]


def test_a_jump_over_the_recent_level_still_fires_on_a_busier_day() -> None:
    values = _usually_quiet_now(flat(5.0))
    values[-WINDOW:] *= 4  # and now 4x the afternoon's level
    res = detect_spikes(values[None, :], CFG)
    assert res.is_spike[0]
    assert res.reason[0] == Reason.SPIKE


def test_a_size_already_seen_at_this_hour_on_two_days_of_the_week_does_not_fire() -> None:
    """A weekly pattern (say Monday and Tuesday batch runs) is not a spike on its third day."""
    series = flat()
    for day in (0, 6, 7):  # today, and the same weekdays last week
        end = N - day * PER_DAY
        series[end - WINDOW : end] *= 6
    res = detect_spikes(series[None, :], CFG)
    assert res.ratio[0] >= CFG.multiplier  # the median day is calm: 6x it
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.NEAR_USUAL_PEAK
    once = flat()
    for day in (0, 7):  # seen only once before: a spike
        end = N - day * PER_DAY
        once[end - WINDOW : end] *= 6
    assert detect_spikes(once[None, :], CFG).is_spike[0]


def test_a_zero_baseline_never_fires() -> None:
    """Silent at this hour on every previous day and for hours before: no baseline, no alert."""
    values = flat()
    for day in range(0, 8):
        end = N - day * PER_DAY
        values[max(0, end - 60) : end + 6] = 0.0
    values[-2:] = 40.0
    res = detect_spikes(values[None, :], CFG)
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.SHORT_HISTORY


def _intermittent(active_days: tuple[int, ...]) -> np.ndarray:
    """Busy around this time only on `active_days` of the last week, nearly silent otherwise and before."""
    values = flat()
    for day in range(0, 8):
        end = N - day * PER_DAY
        values[max(0, end - 60) : end + 6] = 0.0
        if day in active_days:
            values[end - 6 : end + 6] = 1.0
    values[-24] = 1.0  # one call two hours ago
    values[-2:] = 40.0  # today it resumes, far above its level on the busy days
    return values


STEADY_ONLY = DetectionConfig(min_active_share=0.75)


def test_with_min_active_share_a_tenant_busy_at_this_hour_on_some_days_only_does_not_alert() -> None:
    """Active now on 4 of the last 7 days and quiet before: no level to be a multiple of (issue #21)."""
    values = _intermittent((1, 3, 4, 6))
    res = detect_spikes(values[None, :], STEADY_ONLY)
    assert res.baseline[0] > 0 and res.ratio[0] >= STEADY_ONLY.multiplier
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.SHORT_HISTORY
    assert detect_spikes(values[None, :], CFG).is_spike[0]  # off by default: the resumption alerts


def test_with_min_active_share_a_tenant_busy_at_this_hour_every_day_still_alerts() -> None:
    values = _intermittent((1, 2, 3, 4, 5, 6, 7))
    res = detect_spikes(values[None, :], STEADY_ONLY)
    assert res.is_spike[0]
    assert res.reason[0] == Reason.SPIKE
