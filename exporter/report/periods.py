"""Time ranges for reports: absolute dates and times, relative ages (`7d`), and named periods (UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


def parse_when(value: str, *, now: float) -> float:
    """Epoch seconds for `2026-11-01` (UTC midnight), an RFC 3339 time, `now`, or an age like `7d`/`12h`."""
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
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def period_range(name: str, *, now: float) -> tuple[float | None, float | None]:
    """`(since, until)` of a named period in UTC; None = unbounded."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    week = midnight - timedelta(days=midnight.weekday())
    month = midnight.replace(day=1)
    if name == "all":
        return None, None
    if name == "today":
        return midnight.timestamp(), None
    if name == "yesterday":
        return (midnight - timedelta(days=1)).timestamp(), midnight.timestamp()
    if name.startswith("last-") and name[5:] in ("24h", "7d", "30d"):
        return parse_when(name[5:], now=now), None
    if name == "this-week":
        return week.timestamp(), None
    if name == "last-week":
        return (week - timedelta(days=7)).timestamp(), week.timestamp()
    if name == "this-month":
        return month.timestamp(), None
    if name == "last-month":
        previous = (month - timedelta(days=1)).replace(day=1)
        return previous.timestamp(), month.timestamp()
    if name == "this-year":
        return midnight.replace(month=1, day=1).timestamp(), None
    raise ValueError(f"unknown period {name!r} (one of {', '.join(PERIODS)})")
