"""A budget's completed periods, summed from the rollups: "how did we do last month against the budget?".

Read-only. Each past period is summed with the live budget's scope filter, period boundaries (its
timezone's calendar) and unit, and judged against the budget's *current* definition: definitions are
not versioned, so a limit changed since is not the limit that period had. What a period's resets
forgave is not subtracted: history says what was spent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from alerting.budgets.definition import OTHER_INSTANCE, Budget
from alerting.budgets.spend import fold_instances, period_sums, unit_value
from alerting.periods import Period, previous_periods
from exporter.local_time import zone
from exporter.store.rollups import covering_range

DEFAULT_PERIODS = 3
"""`llmcost budgets show` lists this many completed periods unless `--periods` says otherwise."""
MAX_PERIODS = 100
"""At most this many: each period is one sum per rollup table (two years of months, four days of hours)."""

HISTORY_NOTE = (
    "past periods are summed from the rollups and judged against the budget's current definition "
    "(scope, key, period, timezone, unit, limit: definitions are not versioned); resets are not subtracted"
)
FOLDED_NOTE = (
    "not known: retention (retention.rollups_days) folded this period's 5-minute rollups into whole UTC hours, "
    "and the period {edge} inside one, so its calls cannot be told from the neighbouring period's"
)


class HistoryError(ValueError):
    """A number of periods that cannot be used (the message names `what` and the reason)."""


def parse_periods(value: Any, what: str) -> int:
    """A number of periods from the command line or a query string; `what` names the option in errors."""
    given = str(value).strip()
    # ASCII digits only: int() alone also reads `1_0` as 10, `-0` as 0 and other scripts' digits.
    if not (given.isascii() and given.isdigit()) or int(given) > MAX_PERIODS:
        raise HistoryError(f"{what}: must be a whole number from 0 to {MAX_PERIODS}, got {str(value)[:32]!r}")
    return int(given)


def first_bucket(conn: Connection) -> int | None:
    """The earliest rollup bucket in the store (either table), or None for a store without calls."""
    found = [
        conn.execute(text(f"SELECT MIN(bucket) FROM {table}")).scalar()
        for table in ("usage_rollup", "usage_rollup_hourly")
    ]
    starts = [int(v) for v in found if v is not None]
    return min(starts) if starts else None


def _local(moment: datetime, budget: Budget) -> str:
    return moment.astimezone(zone(budget.timezone)).isoformat()


def _amounts(budget: Budget, key: str, sums: tuple[int, int, int]) -> dict[str, Any]:
    spent = unit_value(budget, *sums)
    ratio = spent / budget.limit
    # `state` by the budget's thresholds, as its alerts would have said at the period's end (`exceeded` from
    # the limit itself); `over_limit` only when more than the limit was spent.
    return {
        "key": key,
        "spent": spent,
        "ratio": round(ratio, 4),
        "state": budget.state(ratio),
        "over_limit": spent > budget.limit,
    }


def history(conn: Connection, budget: Budget, now: float, periods: int) -> list[dict[str, Any]]:
    """The last `periods` completed periods of `budget`, newest first, each against the current limit.

    Periods that end before the store's first call are left out (no empty history before any data);
    one with no calls after it shows 0. A period whose bound cuts an hour retention folded shows
    `spent: null` and a note: its calls cannot be split from the neighbouring period's. A `total`
    budget has no completed period.
    """
    if periods <= 0 or Period(budget.period) is Period.TOTAL:
        return []
    oldest = first_bucket(conn)
    if oldest is None:
        return []
    out: list[dict[str, Any]] = []
    for start, end in reversed(
        previous_periods(budget.period, datetime.fromtimestamp(now, UTC), budget.timezone, periods)
    ):
        first, until = int(start.timestamp()), int(end.timestamp())
        if until <= oldest:
            break  # before the store's first call: nothing to say, and nothing older either
        entry: dict[str, Any] = {
            "period_start": _local(start, budget),
            "period_end": _local(end, budget),
            "unit": budget.unit,
            "limit": budget.limit,
        }
        # A bound inside an hour retention folded is one the rollups cannot draw: `covering_range` widens it.
        covered = covering_range(conn, first, until)
        cut = [edge for edge, moved in (("starts", covered[0] != first), ("ends", covered[1] != until)) if moved]
        if cut:
            entry.update(spent=None, ratio=None, state=None, over_limit=None)
            entry["note"] = FOLDED_NOTE.format(edge=" and ".join(cut))
            out.append(entry)
            continue
        rows = period_sums(conn, budget, first, until)
        if budget.key != "*":
            sums = rows[0][1:] if rows else (0, 0, 0)
            amounts = _amounts(budget, budget.key if budget.label else "", sums)
            del amounts["key"]
            entry.update(amounts)
        else:
            if len(rows) > budget.max_instances:
                rows = [(str(k), int(c), int(t), int(r)) for k, c, t, r in fold_instances(rows, budget.max_instances)]
            instances = sorted((_amounts(budget, k, (c, t, r)) for k, c, t, r in rows), key=lambda i: -i["ratio"])
            counted = [i for i in instances if i["key"] != OTHER_INSTANCE]
            worst = counted[0] if counted else _amounts(budget, "*", (0, 0, 0))
            entry.update({k: v for k, v in worst.items() if k != "key"}, worst_key=worst["key"], instances=instances)
        out.append(entry)
    return out
