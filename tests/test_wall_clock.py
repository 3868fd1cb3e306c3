"""The test suite's own wall-clock helpers (`tests.support.wall_clock`), at the times of day they exist for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerting.periods import period_bounds as product_bounds
from tests.support.clock import FakeClock
from tests.support.wall_clock import clear_of_period_end, period_bounds, stamp_in_period


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def no_wait(seconds: float) -> None:
    pytest.fail(f"waited {seconds} s, clear of the period's end")


def test_a_minute_back_at_half_a_minute_past_midnight_is_still_today() -> None:
    # `time.time() - 60` against a daily budget at 00:00:30 UTC is yesterday's call: $0.00 spent today.
    now = at("2026-12-09T00:00:30+00:00")
    assert now - 60 < at("2026-12-09T00:00:00+00:00")
    assert stamp_in_period(60, "daily", now=now) == at("2026-12-09T00:00:00+00:00")
    assert stamp_in_period(60, "daily", now=at("2026-12-09T12:00:00+00:00")) == at("2026-12-09T11:59:00+00:00")
    # Kolkata's hours start at half past in UTC.
    assert stamp_in_period(600, "hourly", "Asia/Kolkata", now=at("2026-12-09T10:32:00+00:00")) == at(
        "2026-12-09T10:30:00+00:00"
    )


def test_ten_seconds_before_midnight_a_two_minute_test_waits_for_the_next_day() -> None:
    clock = FakeClock(at("2026-12-08T23:59:50+00:00"))
    started = clear_of_period_end("daily", 120, clock=clock, sleep=clock.advance)
    assert started == at("2026-12-09T00:00:01+00:00")
    # Clear of the end: no wait at all.
    clock.set(at("2026-12-09T12:00:00+00:00"))
    assert clear_of_period_end("daily", 120, clock=clock, sleep=no_wait) == clock.now


@pytest.mark.parametrize("period", ["hourly", "daily", "weekly", "monthly", "yearly"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize(
    "moment", ["2026-12-31T23:59:59+00:00", "2027-02-28T18:30:00+00:00", "2026-11-01T06:00:00+00:00"]
)
def test_the_bounds_agree_with_the_budget_periods(period: str, tz: str, moment: str) -> None:
    # Computed independently of alerting.periods, they must still be the periods the budgets count in.
    start, end = product_bounds(period, datetime.fromisoformat(moment), tz)
    assert end is not None
    assert period_bounds(period, at(moment), tz) == (start.astimezone(UTC).timestamp(), end.timestamp())
