from dataclasses import replace

import numpy as np
import pytest

from alerting.spikes.detection import DetectionConfig, Reason, bucket_layout, detect_spikes
from tests.support.detection_series import CFG, PER_DAY, N, flat

WINDOW = 6  # buckets in the 30-minute window


def last_window(series: np.ndarray, factor: float, buckets: int = WINDOW) -> np.ndarray:
    out = series.copy()
    out[-buckets:] *= factor
    return out


def run(*rows: np.ndarray, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    res = detect_spikes(np.vstack(rows), CFG, **kwargs)  # type: ignore[arg-type]
    return res.is_spike, res.reason


def test_flat_series_with_a_4x_spike_fires() -> None:
    fired, reason = run(last_window(flat(), 4.0))
    assert fired.tolist() == [True]
    assert reason[0] == Reason.SPIKE


def test_2x_does_not_fire() -> None:
    fired, reason = run(last_window(flat(), 2.0))
    assert not fired[0]
    assert reason[0] == Reason.BELOW_MULTIPLIER


def test_tiny_spend_never_fires() -> None:
    fired, reason = run(last_window(flat(0.001), 10.0))  # 6 cents in the window, 10x
    assert not fired[0]
    assert reason[0] == Reason.LOW_SPEND


def test_new_series_without_history_never_fires() -> None:
    new = np.zeros(N)
    new[-WINDOW:] = 50.0
    fired, reason = run(new)
    assert not fired[0]
    assert reason[0] == Reason.SHORT_HISTORY
    short = detect_spikes(new[None, -20:], CFG)  # an array far shorter than a baseline
    assert not short.is_spike[0]


def test_silent_and_empty_series_raise_no_warnings() -> None:
    res = detect_spikes(np.zeros((3, N)), CFG)
    assert not res.is_spike.any()
    assert (res.ratio == 0).all()
    assert detect_spikes(np.zeros((0, N)), CFG).is_spike.shape == (0,)


def test_the_usual_busy_hour_does_not_fire_but_the_same_spend_elsewhere_does() -> None:
    series = flat()
    busy = np.zeros(N, dtype=bool)
    for day in range(0, 8):  # every day, the half hour ending now is 5x busier (a 09:00 rush)
        end = N - day * PER_DAY
        busy[max(0, end - WINDOW) : end] = True
    seasonal = np.where(busy, series * 5, series)
    fired, reason = run(seasonal)
    assert not fired[0]
    assert reason[0] == Reason.BELOW_MULTIPLIER
    # The same 5x half hour at a time of day that is usually quiet is a spike.
    fired, _ = run(last_window(series, 5.0))
    assert fired[0]


def test_a_daily_job_a_few_minutes_early_does_not_fire() -> None:
    series = flat()
    job = np.zeros(N, dtype=bool)
    for day in range(1, 8):  # a 20-minute job that usually starts 10 minutes from now
        start = N - day * PER_DAY + 2
        job[start : start + 4] = True
    job[N - 1] = True  # today it started early: the last bucket is already in it
    values = np.where(job, series * 8, series)[None, :]
    res = detect_spikes(values, CFG)
    assert not res.is_spike[0]
    assert res.reason[0] == Reason.NEAR_USUAL_PEAK
    assert res.ratio[0] >= CFG.multiplier  # the multiplier alone would have fired
    # Both guards know the job: the usual peak (median of the days) and the second-busiest day.
    assert not detect_spikes(values, DetectionConfig(shift_guard=0.0)).is_spike[0]
    assert detect_spikes(values, DetectionConfig(shift_guard=0.0, repeat_guard=0.0)).is_spike[0]


def test_an_outlier_day_does_not_inflate_the_baseline() -> None:
    clean = last_window(flat(), 4.0)
    outlier = clean.copy()
    yesterday = N - PER_DAY
    outlier[yesterday - 24 : yesterday + 24] *= 20  # yesterday this hour was a 20x incident
    a = detect_spikes(clean[None, :], CFG)
    b = detect_spikes(outlier[None, :], CFG)
    assert a.is_spike[0] and b.is_spike[0]
    assert b.baseline[0] == pytest.approx(a.baseline[0], rel=0.1)


def test_a_quieter_day_is_compared_at_its_own_level() -> None:
    series = flat()
    series[-100:] *= 0.5  # today has been running at half the usual for hours (a weekend)
    spike = last_window(series, 4.0)  # 4x today's level, 2x a usual day
    fired, _ = run(spike)
    assert fired[0]


def test_a_quiet_spell_lowers_the_baseline_by_half_at_most() -> None:
    """A lull before the usual busy hour does not make the usual volume a spike (issue #21).

    On real traffic, baselines cut to a quarter after a quiet spell were a common false alarm.
    """
    series = flat()
    series[-100:] *= 0.2  # three hours at a fifth...
    back = last_window(series, 5.0)  # ...then the usual volume again: 5x today's level
    res = detect_spikes(back[None, :], CFG)
    assert not res.is_spike[0]
    assert res.baseline[0] == pytest.approx(0.5 * detect_spikes(flat()[None, :], CFG).baseline[0], rel=0.1)
    assert detect_spikes(back[None, :], replace(CFG, max_level_drop=4.0)).is_spike[0]  # the old bound paged
    assert detect_spikes(last_window(series, 10.0)[None, :], CFG).is_spike[0]  # 2x a usual day still fires


def test_hysteresis_keeps_a_spike_until_it_falls_below_the_resolve_multiplier() -> None:
    series = flat()
    falling = last_window(series, 2.0)  # was 4x, now 2x: above 1.5x
    fired, reason = run(falling, previously_firing=np.array([True]))
    assert fired[0]
    assert reason[0] == Reason.HELD
    fired, _ = run(falling, previously_firing=np.array([False]))
    assert not fired[0]  # 2x never starts an alert
    fired, _ = run(last_window(series, 1.2), previously_firing=np.array([True]))
    assert not fired[0]  # below 1.5x: resolved


def test_many_series_at_once() -> None:
    base = [flat(level, seed) for seed, level in enumerate([1.0, 2.0, 0.5, 8.0])]
    rows = [last_window(base[0], 4.0), base[1], last_window(base[2], 10.0), last_window(base[3], 1.5)]
    res = detect_spikes(np.vstack(rows), CFG)
    assert res.is_spike.tolist() == [True, False, True, False]
    for arr in (res.window_spend, res.baseline, res.ratio, res.score, res.reason, res.window_minutes):
        assert arr.shape == (4,)


def test_a_sharp_spike_fires_on_a_short_window_within_minutes() -> None:
    series = last_window(flat(), 10.0, buckets=1)  # 10x for the last 5 minutes only
    res = detect_spikes(series[None, :], CFG)
    assert res.is_spike[0]
    assert res.window_minutes[0] in (5, 15)
    only_30 = DetectionConfig(short_windows_minutes=())
    assert not detect_spikes(series[None, :], only_30).is_spike[0]  # (9 + 6) / 6 = 2.5x


def test_the_bucket_still_filling_is_not_mistaken_for_a_drop() -> None:
    series = flat()
    series[-1] *= 0.2  # one minute into the bucket: a fifth of its usual spend so far
    res = detect_spikes(series[None, :], CFG, now_fraction=0.2)
    assert res.ratio[0] == pytest.approx(1.0, abs=0.2)
    partial_spike = series.copy()
    partial_spike[-1] = 0.2 * 40  # 40x in that minute
    assert detect_spikes(partial_spike[None, :], CFG, now_fraction=0.2).is_spike[0]


def test_bucket_layout_tells_the_caller_what_to_load() -> None:
    boundary = 1_700_000_100  # a multiple of 300
    layout = bucket_layout(boundary + 60.0, CFG)
    assert layout.n_buckets == N
    assert layout.now_fraction == pytest.approx(0.2)
    assert layout.first_bucket_start + (N - 1) * 300 == boundary
    on_boundary = bucket_layout(float(boundary), CFG)
    assert on_boundary.now_fraction == 1.0
    assert on_boundary.first_bucket_start + (N - 1) * 300 == boundary - 300


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        detect_spikes(np.ones(N), CFG)
    with pytest.raises(ValueError, match="now_fraction"):
        detect_spikes(np.ones((1, N)), CFG, now_fraction=0.0)
    with pytest.raises(ValueError, match="previously_firing"):
        detect_spikes(np.ones((2, N)), CFG, previously_firing=np.array([True]))
    with pytest.raises(ValueError) as err:
        DetectionConfig(window_minutes=7, recent_minutes=0)
    assert "7 min" in str(err.value) and "0 min" in str(err.value)


def test_min_active_share_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="min_active_share"):
        DetectionConfig(min_active_share=1.5)
