"""Spend totals per user, project, model, service, provider (from the rollups) or session (through an index).

Label totals never read raw events: the rollups joined to their series answer them, so a summary
costs the same at a million events as at ten; `since`/`until` are taken to whole buckets (`since`
rounded down, `until` up, so a call recorded a moment ago is in the answer). Where retention folded
the 5-minute buckets into whole hours, a bound inside such an hour widens to it, as in the report
(`exporter.store.rollups.covering_range`), and `since`/`until` in the answer say so. Sessions are
not a series label (unbounded), so they are summed from the events through the partial indexes on
`usage_events.session` (migration exporter_0003_sessions): a range of time walks `(ts, session)` over
the events that have a session, one session walks `(session, ts)`. Raw events are kept only
`retention.events_days`: a session summary reaching back past that says so (`events_since`, `note`)
rather than answer for less than was asked without a word.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import text

from exporter.events import nanos_to_usd
from exporter.store import Store
from exporter.store.rollups import ROLLUPS_IN_RANGE_SQL, covering_range
from exporter.store.schema import BUCKET_SECONDS

LABELS = ("user", "project", "model", "service", "provider")
BY = (*LABELS, "session")
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Summary:
    """Totals per value of `by` between `since` and `until` (epoch seconds), highest cost first."""

    by: str
    since: float
    until: float
    rows: list[dict[str, Any]]
    source: str  # "rollups" or "events"
    total_nanousd: int  # the whole range's cost, rows beyond `limit` included
    total_unpriced: int = 0  # calls in the range stored at $0 for want of a price, rows beyond `limit` included
    events_since: float | None = None  # a session summary reaching past the raw events kept: from when they are

    def to_json(self) -> dict[str, Any]:
        """The JSON answer of `GET /v1/usage/summary`."""
        return {
            "by": self.by,
            "since": self.since,
            "until": self.until,
            "source": self.source,
            "rows": self.rows,
            "total_cost_usd": nanos_to_usd(self.total_nanousd),
            "total_unpriced_requests": self.total_unpriced,
            **({"events_since": self.events_since, "note": self.note} if self.events_since is not None else {}),
        }

    @property
    def note(self) -> str:
        """What a session summary reaching past the raw-event retention leaves out (empty otherwise)."""
        if self.events_since is None:
            return ""
        return (
            f"raw events before {_iso(self.events_since)} are past retention.events_days and were pruned: "
            "sessions are summed from raw events, so the rows and totals cover only the calls since then "
            "(by=user, project, model, service or provider, from the rollups, still count the whole range)"
        )


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _row(by: str, value: str, requests: Any, cost: Any, tokens: list[Any], unpriced: Any) -> dict[str, Any]:
    counts = {name: int(v or 0) for name, v in zip(TOKENS, tokens, strict=True)}
    return {
        by: value,
        "requests": int(requests or 0),
        "cost_usd": nanos_to_usd(int(cost or 0)),
        **counts,
        "tokens": sum(counts.values()),
        # Counted at $0 in cost_usd: a total with unpriced calls is short by what they cost.
        "unpriced_requests": int(unpriced or 0),
    }


def _order(store: Store, label: str) -> str:
    """Highest cost first, then most requests, then the name (the `label` expression) in code point order.

    Without the tie-breaks, rows of equal cost came in whatever order the database grouped them:
    SQLite and PostgreSQL disagreed, and a `limit` kept arbitrary ones. `COLLATE "C"` makes
    PostgreSQL compare bytes, as SQLite does, whatever the database's locale.
    """
    collate = ' COLLATE "C"' if store.dialect == "postgresql" else ""
    return f"3 DESC, 2 DESC, {label}{collate}"


def summarize(
    store: Store,
    by: str,
    since: float,
    until: float,
    *,
    session: str | None = None,
    limit: int = 1000,
    events_cutoff: float | None = None,
) -> Summary:
    """Totals per `by` value in [since, until); `session` narrows a session summary to that one.

    `events_cutoff`: raw events before this are pruned (`RetentionConfig.events_cutoff`); a session
    summary whose range starts before it carries it as `events_since`, with a note.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    limit = max(1, min(limit, MAX_ROWS))
    if by == "session":
        sessions = _sessions(store, since, until, session, limit)
        if events_cutoff is not None and since < events_cutoff:
            return replace(sessions, events_since=events_cutoff)
        return sessions
    first = int(since // BUCKET_SECONDS) * BUCKET_SECONDS
    # Up, not down: the newest bucket holds what was recorded a moment ago, and rounding `until` down
    # answered "nothing yet" for up to five minutes after a call was recorded.
    last = math.ceil(until / BUCKET_SECONDS) * BUCKET_SECONDS
    columns = ("requests", "cost_nanousd", *TOKENS, "unpriced_requests")
    inner = ", ".join(f"SUM({c}) AS {c}" for c in columns)
    outer = ", ".join(f"SUM(t.{c})" for c in columns)
    order = _order(store, f's."{by}"')
    # Summed per series first (the rollup rows of the range, once), then per label over the few series.
    # Both rollup tables: the pruner folds 5-minute buckets older than `retention.rollups_days` into
    # whole hours, and a summary reading only the 5-minute table lost those months (the report reads both).
    sql = text(
        f'SELECT s."{by}", {outer} FROM (SELECT series_id, {inner} FROM {ROLLUPS_IN_RANGE_SQL} r '
        "GROUP BY series_id) t "
        f'JOIN usage_series s ON s.id = t.series_id GROUP BY s."{by}" ORDER BY {order} LIMIT :limit'
    )
    total = text(f"SELECT SUM(cost_nanousd), SUM(unpriced_requests) FROM {ROLLUPS_IN_RANGE_SQL} r")
    with store.reading() as conn:
        first, last = covering_range(conn, first, last)
        found = conn.execute(sql, {"first": first, "end": last, "limit": limit}).all()
        whole, unpriced = conn.execute(total, {"first": first, "end": last}).one()
    rows = [_row(by, r[0], r[1], r[2], list(r[3:7]), r[7]) for r in found]
    return Summary(by, float(first), float(last), rows, "rollups", int(whole or 0), int(unpriced or 0))


def _sessions(store: Store, since: float, until: float, session: str | None, limit: int) -> Summary:
    tokens = ", ".join(f"SUM({c})" for c in TOKENS)
    unpriced = "SUM(CASE WHEN cost_source = 'unpriced' THEN 1 ELSE 0 END)"
    where = "session IS NOT NULL AND ts >= :since AND ts < :until"
    params: dict[str, Any] = {"since": since, "until": until, "limit": limit}
    if session is not None:
        where += " AND session = :session"
        params["session"] = session
    order = _order(store, "session")
    sql = text(
        f"SELECT session, COUNT(*), SUM(cost_nanousd), {tokens}, MIN(ts), MAX(ts), {unpriced} FROM usage_events "
        f"WHERE {where} GROUP BY session ORDER BY {order} LIMIT :limit"
    )
    total = text(f"SELECT SUM(cost_nanousd), {unpriced} FROM usage_events WHERE {where}")
    with store.reading() as conn:
        found = conn.execute(sql, params).all()
        whole, unpriced_calls = conn.execute(total, {k: v for k, v in params.items() if k != "limit"}).one()
    rows = []
    for r in found:
        row = _row("session", r[0], r[1], r[2], list(r[3:7]), r[9])
        row.update(first_ts=float(r[7]), last_ts=float(r[8]))
        rows.append(row)
    return Summary("session", since, until, rows, "events", int(whole or 0), int(unpriced_calls or 0))
