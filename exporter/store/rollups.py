"""Reading rollups across both resolutions: 5-minute buckets (recent) and whole UTC hours (older).

The pruner folds 5-minute buckets older than `retention.rollups_days` into `usage_rollup_hourly` and
deletes them in the same transaction, so at any moment every recorded call is counted in exactly one
of the two tables. A reader adds both in one statement (one snapshot): its sums stay exact across a
pruning run. Inside the hourly part a range resolves to whole hours: an hour row counts when its hour
starts in the range. Calendar periods in UTC or any whole-hour timezone begin on an hour, so their
sums stay exact; with the default 400 days of 5-minute rollups every yearly period is still in
5-minute buckets anyway, whatever its timezone. A reader that takes any range a person gives (a report,
the usage summary) first widens it with `covering_range`, so an hour it cuts is counted whole and the
bounds it shows are the ones its sums cover.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, union_all
from sqlalchemy.engine import Connection

from exporter.store.schema import COUNTER_COLUMNS, HOUR_SECONDS, usage_rollup, usage_rollup_hourly

_COLUMNS_SQL = ", ".join(("series_id", "bucket", *COUNTER_COLUMNS))

ROLLUPS_IN_RANGE_SQL = (
    f"(SELECT {_COLUMNS_SQL} FROM usage_rollup WHERE bucket >= :first AND bucket < :end "
    f"UNION ALL SELECT {_COLUMNS_SQL} FROM usage_rollup_hourly WHERE bucket >= :first AND bucket < :end)"
)
"""A derived table of both rollup tables' rows in [:first, :end) (text SQL; alias it after use)."""


def rollups_in_range(first: Any, end: Any) -> Any:
    """Both rollup tables' rows with `first <= bucket < end`, as one subquery named `r` (Core)."""
    parts: list[Select[Any]] = []
    for table in (usage_rollup, usage_rollup_hourly):
        parts.append(
            select(table.c.series_id, table.c.bucket, *(table.c[name] for name in COUNTER_COLUMNS)).where(
                table.c.bucket >= first, table.c.bucket < end
            )
        )
    return union_all(*parts).subquery("r")


def covering_range(conn: Connection, first: int, end: int) -> tuple[int, int]:
    """`[first, end)` (whole 5-minute buckets) widened to the whole hour at each end that cuts a folded hour.

    A folded hour is one row per series in `usage_rollup_hourly` and cannot be split. Counted only when
    it starts in the range, a range starting inside one lost that hour's calls (and one ending inside one
    counted calls past its end) while its bounds claimed 5-minute precision. Widened, nothing recorded in
    the range asked for is left out, and the bounds say what the sums cover. Two index lookups.
    """
    h = usage_rollup_hourly.c

    def folded(hour: int) -> bool:
        return conn.execute(select(h.bucket).where(h.bucket == hour).limit(1)).first() is not None

    if first % HOUR_SECONDS and folded(first - first % HOUR_SECONDS):
        first -= first % HOUR_SECONDS
    if end % HOUR_SECONDS and folded(end - end % HOUR_SECONDS):
        end += HOUR_SECONDS - end % HOUR_SECONDS
    return first, end
