"""Keeping a test on the real clock inside one budget period, whatever the time of day it runs at.

Real `llmcost` processes and the CLI read the wall clock: the test cannot hand them a `FakeClock`. A call
stamped "a minute ago" against a daily budget is yesterday's call from 00:00 to 00:01 UTC, and a test that
spends, then reads the spend a few seconds later, reads $0.00 if midnight fell in between. Two remedies:

- `stamp_in_period`: a time `seconds_ago` back, but never before the start of the current period;
- `clear_of_period_end` (or the `within_period` marker, which calls it before the test): if the period ends
  within the next `seconds`, wait until it has ended, so the test runs wholly inside the next one.

Period bounds are computed here by calendar arithmetic of their own, not by the code under test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def period_bounds(period: str, now: float, tz: str = "UTC") -> tuple[float, float]:
    """The `[start, end)` of the `period` (hourly … yearly) containing `now`, as Unix timestamps.

    Local calendar boundaries of `tz` (whole-hour offsets and half-hour ones such as Asia/Kolkata's; a
    DST day is as long as the zone makes it).
    """
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    if period == "hourly":
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 3600
    day = local.date()
    if period == "daily":
        first, following = day, day + timedelta(days=1)
    elif period == "weekly":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif period == "monthly":
        first = day.replace(day=1)
        following = (first + timedelta(days=31)).replace(day=1)
    elif period == "yearly":
        first, following = day.replace(month=1, day=1), day.replace(year=day.year + 1, month=1, day=1)
    else:
        raise ValueError(f"period: no bounds for {period!r}")

    def midnight(d: date) -> float:
        return datetime.combine(d, datetime.min.time(), zone).timestamp()

    return midnight(first), midnight(following)


def stamp_in_period(seconds_ago: float, period: str = "daily", tz: str = "UTC", now: float | None = None) -> float:
    """`now - seconds_ago`, or the start of `now`'s period if that is later: a past call this period counts."""
    now = time.time() if now is None else now
    start, _ = period_bounds(period, now, tz)
    return max(start, now - seconds_ago)


def clear_of_period_end(
    period: str = "daily",
    seconds: float = 120.0,
    tz: str = "UTC",
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """If `period` ends within `seconds`, wait until it has ended (one second past); the time it returns at.

    What follows then has at least `seconds` of one period before it, if `seconds` is shorter than a period.
    """
    now = clock()
    _, end = period_bounds(period, now, tz)
    if end - now < seconds:
        sleep(end - now + 1)
        now = clock()
    return now
