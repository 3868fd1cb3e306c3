"""Budget periods, calendar-aligned in a budget's IANA timezone.

A period starts at a local calendar boundary (top of the hour, midnight, Monday, the 1st, January 1st)
and ends where the next one starts, so DST days last 23 or 25 hours (and an hour cut by a half-hour
DST shift, as on Lord Howe Island, 30 minutes). Every datetime returned is in UTC.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from exporter.local_time import start_of_local_day, zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = 3600


class Period(enum.StrEnum):
    """A budget period, as written in config (`period: monthly`)."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"
    TOTAL = "total"


def period_bounds(
    period: Period | str, now: datetime, tz: str = "UTC", *, total_start: datetime | None = None
) -> tuple[datetime, datetime | None]:
    """The `[start, end)` of the period containing `now`, in UTC; `end` is None for `total`.

    `total` runs from `total_start` (default the Unix epoch) with no end.
    """
    p = Period(period)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if p is Period.TOTAL:
        return (total_start or EPOCH).astimezone(UTC), None
    z = zone(tz)
    now_utc = now.astimezone(UTC)
    if p is Period.HOURLY:
        # Floor in local wall-clock time with the offset in force at `now` (+05:45 hours start at :15 UTC).
        offset = _offset(now_utc, z)
        local_seconds = (now_utc - EPOCH + offset).total_seconds()
        start = now_utc - timedelta(seconds=local_seconds % _HOUR)
        end = start + timedelta(hours=1)
        # A DST shift of half an hour (Australia/Lord_Howe) moves the clock off the whole hour: the hour
        # it cuts short ends at the shift and the next starts there, so consecutive hours never overlap.
        if _offset(start, z) != offset:
            start = _transition(start, now_utc, z)
        if _offset(end - timedelta(seconds=1), z) != offset:
            end = _transition(now_utc, end, z)
        return start, end
    today = now_utc.astimezone(z).date()
    if p is Period.DAILY:
        first, following = today, today + timedelta(days=1)
    elif p is Period.WEEKLY:
        first = today - timedelta(days=today.weekday())
        following = first + timedelta(days=7)
    elif p is Period.MONTHLY:
        first = today.replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        first, following = date(today.year, 1, 1), date(today.year + 1, 1, 1)
    return start_of_local_day(first, z), start_of_local_day(following, z)


# Not strftime's %B, which follows the process's locale.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def period_label(period: Period | str, start: datetime, end: datetime | None, tz: str = "UTC") -> str:
    """The period `[start, end)` as people name it, on its own calendar: "2026-12-07", "November 2026".

    Hourly "2026-12-07 23:00 to 00:00", weekly "2026-11-30 to 2026-12-06" (its last day), yearly "2026";
    a `total` period, which never ends, "since 1970-01-01". Times are read in `tz`, the budget's timezone
    (the caller names it: "2026-12-07 in Europe/Paris").
    """
    p = Period(period)
    z = zone(tz)
    first = start.astimezone(z)
    if p is Period.TOTAL or end is None:
        return f"since {first:%Y-%m-%d}"
    last = end.astimezone(z)
    if p is Period.HOURLY:
        return f"{first:%Y-%m-%d %H:%M} to {last:%H:%M}"
    if p is Period.DAILY:
        return f"{first:%Y-%m-%d}"
    if p is Period.WEEKLY:
        return f"{first:%Y-%m-%d} to {(last - timedelta(days=1)):%Y-%m-%d}"
    if p is Period.MONTHLY:
        return f"{_MONTHS[first.month - 1]} {first.year}"
    return str(first.year)


def previous_periods(
    period: Period | str, now: datetime, tz: str = "UTC", n: int = 1
) -> list[tuple[datetime, datetime]]:
    """The `n` complete periods just before the one containing `now`, oldest first (none for `total`)."""
    if Period(period) is Period.TOTAL:
        return []
    start, _ = period_bounds(period, now, tz)
    out: list[tuple[datetime, datetime]] = []
    for _ in range(n):
        prev_start, prev_end = period_bounds(period, start - timedelta(microseconds=1), tz)
        assert prev_end is not None
        out.append((prev_start, prev_end))
        start = prev_start
    out.reverse()
    return out


def elapsed_fraction(start: datetime, end: datetime | None, now: datetime) -> float:
    """How much of `[start, end)` has passed at `now`, clipped to 0..1 (0 for a period without end)."""
    if end is None:
        return 0.0
    total = (end - start).total_seconds()
    return min(1.0, max(0.0, (now - start).total_seconds() / total))


def _offset(moment: datetime, z: ZoneInfo) -> timedelta:
    return moment.astimezone(z).utcoffset() or timedelta(0)


def _transition(lo: datetime, hi: datetime, z: ZoneInfo) -> datetime:
    """The instant (to the second) in `(lo, hi]` at which the offset changes from the one in force at `lo`."""
    before = _offset(lo, z)
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _offset(mid, z) == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)
