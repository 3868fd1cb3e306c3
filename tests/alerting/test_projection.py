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


# The level over a short window as well (1/12 of the level window, at least an hour): see _follow_short_window.
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
BURST = datetime(2026, 11, 8, 10, 0, tzinfo=UTC)  # a Sunday; 10:00-14:00, $300


def at(now: datetime, per_day: float, extra: dict[tuple[datetime, datetime], float], days: int = 35) -> np.ndarray:
    """`per_day` spread over 5-minute buckets for `days` before `now`, plus each `extra` amount spread over its span."""
    starts = grid(days, now)
    values = np.full(starts.size, per_day / 288)
    for (a, b), amount in extra.items():
        inside = (starts >= a.timestamp()) & (starts < b.timestamp())
        if inside.any():
            values[inside] += amount / inside.sum()
    return np.vstack([starts, values])


def project(series: np.ndarray, period: str, now: datetime, **cfg: int) -> ProjectionResult:
    start, end = period_bounds(period, now, "UTC")
    return project_period_end(series[0].astype(np.int64), series[1], start, end, now, config=ProjectionConfig(**cfg))


def test_a_steady_series_projects_as_it_did_over_one_window() -> None:
    now = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    series = at(now, 10.0, {})
    res = project(series, "monthly", now)
    assert res.projected == pytest.approx(300.0)
    assert res.projected == pytest.approx(
        project(series, "monthly", now, short_level_window_seconds=7 * 86400).projected
    )
    assert res.low == pytest.approx(res.projected) and res.high == pytest.approx(res.projected)


def test_after_a_burst_the_projection_follows_the_pace_within_the_short_window() -> None:
    """$10 a day, a $300 job on Nov 8th 10:00-14:00: over the 7-day window alone the month read ~$1,500
    of $1,000 until the 15th; the 14-hour window lets go 14 hours after the job, at the ~$600 it ends at."""
    job = {(BURST, BURST + timedelta(hours=4)): 300.0}
    for hours_after, over in ((0, True), (13, True), (15, False), (24 * 3, False), (24 * 6, False)):
        now = BURST + timedelta(hours=4 + hours_after)
        res = project(at(now, 10.0, job), "monthly", now)
        assert (res.projected > 1000) is over, hours_after
        assert res.low <= res.projected <= res.high
        if not over:
            assert res.projected == pytest.approx(600, rel=0.02)
        long_only = project(at(now, 10.0, job), "monthly", now, short_level_window_seconds=7 * 86400)
        assert long_only.projected > 1000  # over one window: over the limit for the whole week
        assert (res.low, res.high) == (pytest.approx(long_only.low), pytest.approx(long_only.high))


def test_a_sustained_doubling_still_forecasts_no_later_than_over_one_window() -> None:
    """$25 a day, then $50 a day from Nov 10th: the month heads for ~$1,300 of $1,000."""

    def first_over(**cfg: int) -> int:
        for hour in range(24 * 10):
            now = datetime(2026, 11, 10, tzinfo=UTC) + timedelta(hours=hour)
            series = at(now, 25.0, {(datetime(2026, 11, 10, tzinfo=UTC), now): 25.0 * hour / 24})
            if project(series, "monthly", now, **cfg).projected > 1000:
                return hour
        raise AssertionError("never forecast")

    both, long_only = first_over(), first_over(short_level_window_seconds=7 * 86400)
    assert both <= long_only <= 24 * 4


def test_a_daily_budget_measures_two_hours_and_an_hourly_one_at_least_an_hour() -> None:
    day = datetime(2026, 11, 11, tzinfo=UTC)
    job = {(day + timedelta(hours=9), day + timedelta(hours=10)): 80.0}  # $80 in an hour, $2 an hour else
    still = project(at(day + timedelta(hours=11, minutes=30), 48.0, job), "daily", day + timedelta(hours=11.5))
    assert still.projected > 150  # the job ended 1.5 hours ago: inside the 2-hour window
    now = day + timedelta(hours=12, minutes=30)
    after = project(at(now, 48.0, job), "daily", now)
    assert after.projected == pytest.approx(25 + 80 + 2 * 11.5, rel=0.02)
    # Hourly: level window 3 hours, short window 1 hour (not 15 minutes): $8 at 12:00-12:10 on $4 an hour.
    now = day + timedelta(hours=12, minutes=30)
    blip = {(day + timedelta(hours=12), day + timedelta(hours=12, minutes=10)): 8.0}
    res = project(at(now, 96.0, blip, days=10), "hourly", now)
    assert res.spent == pytest.approx(10.0)
    assert res.projected == pytest.approx(10.0 + 20.0 / 3 / 2, rel=0.01)  # 3-hour rate; 15 minutes: 12.0


def test_a_young_series_recent_rate_follows_the_short_window_too() -> None:
    day = datetime(2026, 11, 11, tzinfo=UTC)
    now = day + timedelta(hours=13)
    job = {(day + timedelta(hours=9), day + timedelta(hours=10)): 60.0}
    res = project(at(now, 48.0, job, days=1), "daily", now)  # a day and 13 hours of history: no shape yet
    assert res.method == "recent_rate"
    assert res.projected == pytest.approx(26 + 60 + 2 * 11, rel=0.02)  # over the last day: 26 + 60 + 4.5 x 11


# A series that spends in bursts: its period is an amount, not a rate (see _at_most_a_usual_period).
def batch_days(now: datetime, amount: float, days: int = 21) -> np.ndarray:
    """`amount` in a 10-minute batch from 9:00 UTC on each of the last `days` days and today, nothing else."""
    today = now.replace(hour=0, minute=0)
    batches = {}
    for d in range(days + 1):
        at9 = today - timedelta(days=d) + timedelta(hours=9)
        batches[(at9, at9 + timedelta(minutes=10))] = amount
    return at(now, 0.0, batches, days=days)


def test_a_daily_batch_is_not_projected_again_over_the_rest_of_its_hour() -> None:
    """ServeGen's chunk-20 spends its day in a 9:00 batch: at 9:10 the last 24 hours' rate carried over
    the rest of the hour projected $1,762 for its usual $1,000 day, a forecast over 1.5 x its day."""
    day = datetime(2026, 11, 25, tzinfo=UTC)
    for minutes in (10, 20, 45, 90, 600):
        now = day + timedelta(hours=9, minutes=minutes)
        res = project(batch_days(now, 1000.0), "daily", now)
        assert res.spent == pytest.approx(1000.0)
        assert res.projected == pytest.approx(1000.0, rel=0.05), minutes
        assert not should_alert_forecast(res, 1500.0, elapsed_fraction(*period_bounds("daily", now, "UTC"), now))
        assert res.low <= res.projected <= res.high


def test_a_bursty_series_still_projects_a_day_with_more_bursts() -> None:
    """A second batch yesterday at 15:00: the last 24 hours say a day is two batches, and today is projected so."""
    day = datetime(2026, 11, 25, tzinfo=UTC)
    now = day + timedelta(hours=9, minutes=10)
    extra = day - timedelta(hours=9)
    series = batch_days(now, 1000.0)
    series[1][(series[0] >= extra.timestamp()) & (series[0] < (extra + timedelta(minutes=10)).timestamp())] += 500.0
    res = project(series, "daily", now)
    assert res.spent == pytest.approx(1000.0)
    assert res.projected > 1500.0


def test_no_forecast_while_nothing_is_spent_in_the_period() -> None:
    # ServeGen's chunk-28 on day 3: a late burst yesterday, nothing yet today, and at 01:30 the level of
    # the last hours projected the day over its limit: a forecast with $0.00 spent, on a day that ended at $0.
    now = datetime(2024, 3, 14, 1, 30, tzinfo=UTC)
    starts = grid(28, now)
    values = np.full(starts.size, 0.1)  # $28.80 a day
    late = (starts >= int((now - timedelta(hours=3, minutes=30)).timestamp())) & (starts < int(now.timestamp()) - 5400)
    values[late] = 20.0  # 22:00-24:00 yesterday
    values[starts >= int(now.timestamp()) - 5400] = 0.0  # nothing since midnight
    start, end = period_bounds("daily", now, "UTC")
    res = project_period_end(starts, values, start, end, now)
    assert res.spent == 0.0 and res.projected > 1.5 * 28.8  # the projection alone would warn
    assert not should_alert_forecast(res, 1.5 * 28.8, elapsed_fraction(start, end, now))
    spent_since_midnight = project_period_end(starts, np.where(starts == starts[-1], 0.5, values), start, end, now)
    assert should_alert_forecast(spent_since_midnight, 1.5 * 28.8, elapsed_fraction(start, end, now))
