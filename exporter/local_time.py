"""Calendar days in an IANA timezone: the zone by name, and the first instant of a local day.

Shared by the report's named periods (`exporter.report.periods`) and the budgets' periods
(`alerting.periods`), so a month in Los Angeles starts at the same second in `llmcost report` as in a
monthly budget kept in that zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=256)
def zone(tz: str) -> ZoneInfo:
    """The `ZoneInfo` for an IANA name; `ValueError` naming the zone when it is unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: ZoneInfo opens the name as a file under tzdata, so "America" (a folder) or a name
        # longer than a file name can be fails there rather than as not found.
        raise ValueError(f"unknown timezone {tz[:64]!r}") from exc


def start_of_local_day(day: date, z: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in `z` is `day`.

    Midnight can be ambiguous (take the first one) or skipped by a DST jump (America/Santiago, Havana:
    the day then starts at the transition).
    """
    wall = datetime(day.year, day.month, day.day)
    candidates = [wall.replace(tzinfo=z, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [c for c in candidates if c.astimezone(z).replace(tzinfo=None) == wall]
    if real:
        return min(real)
    # Midnight falls in a gap: the transition lies between the two readings; find it to the second.
    lo, hi = min(candidates), max(candidates)
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(z).date() >= day:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)
