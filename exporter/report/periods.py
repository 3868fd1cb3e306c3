"""Time ranges for reports: absolute dates and times, relative ages (`7d`), and named periods.

Named periods and bare dates are read in a timezone (UTC unless asked), calendar-aligned as the
budgets' periods are: a month in America/Los_Angeles starts at its local midnight, whatever DST does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from exporter.local_time import start_of_local_day, zone

PERIODS = (
    "today",
    "yesterday",
    "last-24h",
    "last-7d",
    "last-30d",
    "this-week",
    "last-week",
    "this-month",
    "last-month",
    "this-year",
    "all",
)
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_FIRST_DAY = datetime(1, 1, 1, tzinfo=UTC).timestamp()
"""The earliest time a date can name; an age reaching further back is refused."""


def parse_when(value: str, *, now: float, tz: str = "UTC") -> float:
    """Epoch seconds for `2026-11-01` (midnight in `tz`), an RFC 3339 time, `now`, or an age like `7d`/`12h`.

    A time without an offset is read in `tz` too; `ValueError` for an unknown zone.
    """
    z = zone(tz)
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        moment = now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        # An age may reach before any date (`99999999999999999d`): the 5-minute bucket of such a time
        # does not fit a 64-bit integer column, and the query failed with a traceback.
        if moment < _FIRST_DAY:
            raise ValueError(f"{value!r} is out of range: reaches before the year 1")
        return moment
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"not a date, time or age: {value!r} (try 2026-11-01, 2026-11-01T09:00:00Z or 7d)") from None
    if parsed.tzinfo is None:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return start_of_local_day(parsed.date(), z).timestamp()
        parsed = parsed.replace(tzinfo=z)
    return parsed.timestamp()


def period_range(name: str, *, now: float, tz: str = "UTC") -> tuple[float | None, float | None]:
    """`(since, until)` of a named period, its days calendar-aligned in `tz`; None = unbounded."""
    z = zone(tz)
    today = datetime.fromtimestamp(now, UTC).astimezone(z).date()

    def start(day: date) -> float:
        return start_of_local_day(day, z).timestamp()

    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    if name == "all":
        return None, None
    if name == "today":
        return start(today), None
    if name == "yesterday":
        return start(today - timedelta(days=1)), start(today)
    if name.startswith("last-") and name[5:] in ("24h", "7d", "30d"):
        return parse_when(name[5:], now=now), None
    if name == "this-week":
        return start(week), None
    if name == "last-week":
        return start(week - timedelta(days=7)), start(week)
    if name == "this-month":
        return start(month), None
    if name == "last-month":
        return start((month - timedelta(days=1)).replace(day=1)), start(month)
    if name == "this-year":
        return start(today.replace(month=1, day=1)), None
    raise ValueError(f"unknown period {name!r} (one of {', '.join(PERIODS)})")
