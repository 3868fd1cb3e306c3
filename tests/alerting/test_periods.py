import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerting.periods import EPOCH, Period, elapsed_fraction, period_bounds, previous_periods


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(start: datetime, end: datetime | None) -> float:
    assert end is not None
    return (end - start).total_seconds() / 3600


@pytest.mark.parametrize(
    ("tz", "now", "start", "length"),
    [
        ("Europe/Berlin", utc(2024, 3, 31, 12), utc(2024, 3, 30, 23), 23),  # spring forward
        ("Europe/Berlin", utc(2024, 10, 27, 12), utc(2024, 10, 26, 22), 25),  # fall back
        ("America/New_York", utc(2024, 3, 10, 12), utc(2024, 3, 10, 5), 23),
        ("America/New_York", utc(2024, 11, 3, 12), utc(2024, 11, 3, 4), 25),
        ("Europe/Berlin", utc(2024, 7, 1, 12), utc(2024, 6, 30, 22), 24),
    ],
)
def test_daily_periods_follow_dst(tz: str, now: datetime, start: datetime, length: int) -> None:
    got_start, got_end = period_bounds("daily", now, tz)
    assert got_start == start
    assert hours(got_start, got_end) == length
    assert got_start.tzinfo is UTC


def test_a_day_whose_midnight_is_skipped_starts_at_the_jump() -> None:
    # Chile springs forward at 24:00 -> 01:00: 2023-09-03 00:00 never happens in Santiago.
    start, end = period_bounds("daily", utc(2023, 9, 3, 15), "America/Santiago")
    assert start == utc(2023, 9, 3, 4)  # 01:00 -03
    assert hours(start, end) == 23


def test_month_and_year_boundaries_are_local() -> None:
    # 23:30 UTC on Jan 31 is still January in New York.
    start, end = period_bounds(Period.MONTHLY, utc(2024, 1, 31, 23, 30), "America/New_York")
    assert (start, end) == (utc(2024, 1, 1, 5), utc(2024, 2, 1, 5))
    # ... and already February in Tokyo.
    start, end = period_bounds(Period.MONTHLY, utc(2024, 1, 31, 23, 30), "Asia/Tokyo")
    assert (start, end) == (utc(2024, 1, 31, 15), utc(2024, 2, 29, 15))
    # New Year reaches Berlin an hour before UTC.
    start, end = period_bounds(Period.YEARLY, utc(2024, 12, 31, 23, 30), "Europe/Berlin")
    assert (start, end) == (utc(2024, 12, 31, 23), utc(2025, 12, 31, 23))
    start, end = period_bounds(Period.MONTHLY, utc(2024, 12, 15), "UTC")
    assert (start, end) == (utc(2024, 12, 1), utc(2025, 1, 1))


@pytest.mark.parametrize(
    ("tz", "day_start", "hour_start"),
    [
        ("Asia/Kolkata", utc(2024, 5, 9, 18, 30), utc(2024, 5, 10, 11, 30)),  # +05:30
        ("Asia/Kathmandu", utc(2024, 5, 9, 18, 15), utc(2024, 5, 10, 11, 15)),  # +05:45
    ],
)
def test_quarter_hour_offsets_align_to_five_minute_buckets(tz: str, day_start: datetime, hour_start: datetime) -> None:
    now = utc(2024, 5, 10, 12)
    start, end = period_bounds("daily", now, tz)
    assert start == day_start
    assert hours(start, end) == 24
    h_start, h_end = period_bounds("hourly", now, tz)
    assert h_start == hour_start
    assert hours(h_start, h_end) == 1
    for t in (start, end, h_start, h_end):
        assert t is not None and int(t.timestamp()) % 300 == 0


def test_weeks_start_on_monday() -> None:
    # Sunday 2024-01-07 20:00 UTC: still that week in UTC, already Monday in Tokyo.
    sunday = utc(2024, 1, 7, 20)
    assert period_bounds("weekly", sunday, "UTC") == (utc(2024, 1, 1), utc(2024, 1, 8))
    start, end = period_bounds("weekly", sunday, "Asia/Tokyo")
    assert start == utc(2024, 1, 7, 15)  # Monday 2024-01-08 00:00 +09
    assert start.astimezone(ZoneInfo("Asia/Tokyo")).weekday() == 0
    assert hours(start, end) == 7 * 24


def test_week_containing_dst_change_is_one_hour_short() -> None:
    start, end = period_bounds("weekly", utc(2024, 3, 31, 12), "Europe/Berlin")
    assert start == utc(2024, 3, 24, 23)
    assert hours(start, end) == 7 * 24 - 1


def test_hourly_periods_tile_across_fall_back() -> None:
    t = utc(2024, 10, 26, 22)
    bounds = []
    for _ in range(6):
        start, end = period_bounds("hourly", t, "Europe/Berlin")
        bounds.append((start, end))
        t += timedelta(hours=1)
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert end == start
    assert all(hours(s, e) == 1 for s, e in bounds)


@pytest.mark.parametrize(
    ("first", "short"),
    [
        # Lord Howe Island shifts by half an hour. Spring: 02:00 +10:30 becomes 02:30 +11:00, so the
        # hour from 02:30 to 03:00 local lasts 30 minutes. Fall: 02:00 +11:00 becomes 01:30 +10:30, so
        # 01:30 to 02:00 local (the second time) does.
        (utc(2026, 10, 3, 13), (utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 16))),
        (utc(2026, 4, 4, 13), (utc(2026, 4, 4, 15), utc(2026, 4, 4, 15, 30))),
    ],
)
def test_hourly_periods_tile_across_a_half_hour_dst_shift(first: datetime, short: tuple[datetime, datetime]) -> None:
    """Every instant is in exactly one hour: the status of an hourly budget showed a period_start half an
    hour inside the previous hour (which had not ended), so the two hours overlapped."""
    seen = sorted({period_bounds("hourly", first + timedelta(minutes=5 * i), "Australia/Lord_Howe") for i in range(60)})
    for (_, end), (start, _) in itertools.pairwise(seen):
        assert end == start
    assert short in seen
    assert all(hours(s, e) == 1 for s, e in seen if (s, e) != short)


def test_total_has_no_end_and_a_configurable_start() -> None:
    assert period_bounds("total", utc(2024, 1, 1), "Europe/Berlin") == (EPOCH, None)
    start = utc(2023, 6, 1)
    assert period_bounds("total", utc(2024, 1, 1), total_start=start) == (start, None)
    assert previous_periods("total", utc(2024, 1, 1), "UTC", 3) == []


def test_previous_periods_are_contiguous_and_oldest_first() -> None:
    now = utc(2024, 3, 15, 12)
    months = previous_periods("monthly", now, "America/New_York", 3)
    assert [m[0].astimezone(UTC).month for m in months] == [12, 1, 2]
    assert months[-1][1] == period_bounds("monthly", now, "America/New_York")[0]
    for (_, end), (start, _) in itertools.pairwise(months):
        assert end == start
    days = previous_periods("daily", utc(2024, 11, 4, 12), "America/New_York", 3)
    assert [hours(s, e) for s, e in days] == [24, 24, 25]


def test_elapsed_fraction() -> None:
    start, end = utc(2024, 1, 1), utc(2024, 1, 2)
    assert elapsed_fraction(start, end, utc(2024, 1, 1, 6)) == 0.25
    assert elapsed_fraction(start, end, utc(2023, 12, 31)) == 0.0
    assert elapsed_fraction(start, end, utc(2024, 1, 3)) == 1.0
    assert elapsed_fraction(start, None, utc(2024, 1, 3)) == 0.0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds("daily", datetime(2024, 1, 1), "UTC")
    with pytest.raises(ValueError, match="unknown timezone"):
        period_bounds("daily", utc(2024, 1, 1), "Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        period_bounds("fortnightly", utc(2024, 1, 1), "UTC")
