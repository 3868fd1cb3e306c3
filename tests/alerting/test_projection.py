from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alerting.periods import elapsed_fraction, period_bounds
from alerting.projection import (
    ProjectionConfig,
    ProjectionResult,
    project_many,
    project_period_end,
    should_alert_forecast,
    utc_offsets,
)

NOW = datetime(2024, 3, 14, 12, 0, tzinfo=UTC)  # a Thursday


def grid(days: int, now: datetime = NOW) -> np.ndarray:
    """5-minute bucket starts covering `days` before `now`."""
    end = int(now.timestamp())
    return np.arange(end - days * 86400, end, 300, dtype=np.int64)


def test_linear_series_projects_the_straight_line() -> None:
    starts = grid(28)
    values = np.full(starts.size, 0.5)
    start, end = period_bounds("daily", NOW, "UTC")
    res = project_period_end(starts, values, start, end, NOW)
    assert res.method == "shape"
    assert res.spent == pytest.approx(72.0)
    assert res.projected == pytest.approx(0.5 * 288)
    assert res.low == pytest.approx(res.projected) and res.high == pytest.approx(res.projected)


def test_without_history_the_recent_rate_is_extrapolated() -> None:
    starts = grid(28)
    values = np.zeros(starts.size)
    values[-36:] = 1.0  # a new series, three hours old
    start, end = period_bounds("daily", NOW, "UTC")
    res = project_period_end(starts, values, start, end, NOW)
    assert res.method == "recent_rate"
    assert res.projected == pytest.approx(36 + 144 * 1.0)
    assert res.low <= res.projected <= res.high


def test_a_strong_daily_shape_beats_the_straight_line() -> None:
    starts = grid(28)
    hour = (starts // 3600) % 24
    values = np.where((hour >= 9) & (hour < 17), 1.0, 0.02)  # office hours
    start, end = period_bounds("daily", NOW, "UTC")
    actual = 8 * 12 * 1.0 + 16 * 12 * 0.02
    res = project_period_end(starts, values, start, end, NOW)
    straight = res.spent / elapsed_fraction(start, end, NOW)
    assert abs(res.projected - actual) < 0.05 * actual
    assert abs(res.projected - actual) < 0.2 * abs(straight - actual)


def test_monthly_projection_knows_how_many_weekends_are_left() -> None:
    starts = grid(42)
    weekday = ((starts // 86400) + 3) % 7  # Monday = 0
    values = np.where(weekday < 5, 1.0, 0.0)
    start, end = period_bounds("monthly", NOW, "UTC")
    res = project_period_end(starts, values, start, end, NOW)
    # From Thursday noon to April 1: 11.5 more weekdays (the rest of Thursday included).
    remaining_weekdays = 0.5 + 1 + 5 + 5 + 0  # Thu pm, Fri 15, week of 18th, week of 25th
    assert res.projected - res.spent == pytest.approx(remaining_weekdays * 288, rel=0.05)
    straight = res.spent / elapsed_fraction(start, end, NOW)
    assert abs(res.projected - (res.spent + remaining_weekdays * 288)) < abs(straight - res.projected)


def test_shape_is_learnt_in_the_budget_timezone() -> None:
    starts = grid(28)
    tz = "Asia/Kolkata"
    local_hour = ((starts + 19800) // 3600) % 24
    values = np.where((local_hour >= 9) & (local_hour < 17), 1.0, 0.0)
    now = NOW  # 17:30 in Kolkata: the office day is over
    start, end = period_bounds("daily", now, tz)
    res = project_period_end(starts, values, start, end, now, tz=tz)
    assert res.spent == pytest.approx(96.0)
    assert res.projected == pytest.approx(96.0, rel=0.05)


def test_project_many_is_row_wise_project_period_end() -> None:
    rng = np.random.default_rng(3)
    starts = grid(20)
    values = rng.gamma(2.0, 0.5, size=(5, starts.size))
    values[1] = 0.0  # silent series: no warnings, projection 0
    values[2, :-100] = 0.0  # young series
    start, end = period_bounds("weekly", NOW, "Europe/Berlin")
    batch = project_many(starts, values, start, end, NOW, tz="Europe/Berlin")
    assert batch.projected.shape == (5,) and len(batch) == 5
    assert batch[1].projected == 0.0
    assert batch.method[2] == "recent_rate"
    for i in range(5):
        one = project_period_end(starts, values[i], start, end, NOW, tz="Europe/Berlin")
        assert one.projected == pytest.approx(batch.projected[i])
        assert one.method == batch.method[i]


def test_total_and_finished_periods_project_what_was_spent() -> None:
    starts = grid(3)
    values = np.ones(starts.size)
    res = project_period_end(starts, values, NOW - timedelta(days=2), None, NOW)
    assert (res.method, res.projected) == ("no_end", 2 * 288)
    res = project_period_end(starts, values, NOW - timedelta(days=2), NOW - timedelta(days=1), NOW)
    assert (res.method, res.projected) == ("complete", 2 * 288)


def test_partial_current_bucket_counts_only_the_time_left() -> None:
    now = NOW + timedelta(minutes=2)  # 2 minutes into a bucket
    starts = grid(10, NOW + timedelta(minutes=5))
    values = np.full(starts.size, 1.0)
    values[-1] = 0.4  # the bucket still filling
    start, end = period_bounds("daily", now, "UTC")
    res = project_period_end(starts, values, start, end, now)
    assert res.projected == pytest.approx(288.0, rel=1e-3)


def test_forecast_alerts_wait_for_the_first_five_percent() -> None:
    result = ProjectionResult(projected=150.0, low=120.0, high=180.0, spent=5.0, method="shape")
    assert not should_alert_forecast(result, limit=100.0, elapsed_fraction=0.01)
    assert not should_alert_forecast(result, limit=100.0, elapsed_fraction=0.049)
    assert should_alert_forecast(result, limit=100.0, elapsed_fraction=0.05)
    assert not should_alert_forecast(result, limit=200.0, elapsed_fraction=0.5)
    cfg = ProjectionConfig(min_elapsed_fraction=0.2)
    assert not should_alert_forecast(result, 100.0, 0.1, cfg)


def test_bad_arrays_are_rejected() -> None:
    starts = grid(1)
    start, end = period_bounds("daily", NOW, "UTC")
    with pytest.raises(ValueError, match="must be"):
        project_many(starts, np.ones((2, starts.size + 1)), start, end, NOW)
    with pytest.raises(ValueError, match="contiguous"):
        project_many(starts * 2, np.ones((1, starts.size)), start, end, NOW)


def test_utc_offsets_match_zoneinfo_across_transitions() -> None:
    ts = np.arange(
        int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()), int(datetime(2024, 11, 30, tzinfo=UTC).timestamp()), 3607
    )
    offsets = utc_offsets(ts, "America/New_York")
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    expected = [datetime.fromtimestamp(int(t), UTC).astimezone(zone).utcoffset().total_seconds() for t in ts]  # type: ignore[union-attr]
    assert offsets.tolist() == expected
