"""The rows of a report: usage and spend per combination of dimensions over a time range.

Series labels (`provider`, `model`, `project`, `user`, `service`, `status`) come from the rollups,
never from a scan of raw events, so a report over a year costs what one over a day does, and stays
the same after pruning. The range resolves to 5-minute buckets (whole hours where those were pruned:
`report_bounds`).
`session` is not a series label: it is read from the raw events' indexed `session` column
(`event_session`). Raw events are kept only `retention.events_days`: what the rollups count in the
range beyond the raw events still held is one `(pruned)` session row (`PRUNED_SESSION`), so a
breakdown by session totals what every other breakdown does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text

from exporter.store import Store
from exporter.store.rollups import covering_range, rollups_in_range
from exporter.store.schema import BUCKET_SECONDS, COUNTER_COLUMNS, usage_series

SERIES_DIMENSIONS = ("provider", "model", "project", "user", "service", "status")
PRUNED_SESSION = "(pruned)"
"""The session of calls whose raw events the retention deleted: their session is no longer known."""
DIMENSIONS = (*SERIES_DIMENSIONS, "session")
FAR_FUTURE = 2**62


def event_session(session: str | None) -> str:
    """The session an event belongs to, as stored in its `session` column ("" when it has none).

    The column holds the event's `session` field, else its `metadata.session_id` (`exporter.events.session_of`).
    """
    return session or ""


@dataclass
class Totals:
    """Counters of one report row (COUNTER_COLUMNS, in nano-dollars for cost)."""

    requests: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int = 0
    unpriced_requests: int = 0

    def add(self, values: Iterable[Any]) -> None:
        """Add counters given in COUNTER_COLUMNS order."""
        for name, value in zip(COUNTER_COLUMNS, values, strict=True):
            setattr(self, name, getattr(self, name) + int(value or 0))

    def values(self) -> tuple[int, ...]:
        """The counters in COUNTER_COLUMNS order."""
        return tuple(getattr(self, name) for name in COUNTER_COLUMNS)

    @property
    def all_input(self) -> int:
        """Every input token: uncached, cache reads and cache writes."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def tokens(self) -> int:
        """Input of every kind plus output."""
        return self.all_input + self.output_tokens

    @property
    def cache_hit_ratio(self) -> float | None:
        """Share of input tokens read from a prompt cache (None without input)."""
        return self.cache_read_tokens / self.all_input if self.all_input else None

    @property
    def output_input_ratio(self) -> float | None:
        """Output tokens per input token (None without input)."""
        return self.output_tokens / self.all_input if self.all_input else None


@dataclass
class Row:
    """One group of the breakdown."""

    labels: tuple[str, ...]
    totals: Totals = field(default_factory=Totals)


def bucket_range(since: float | None, until: float | None) -> tuple[int, int]:
    """The buckets a range covers: [first bucket, end) in epoch seconds, 5-minute aligned."""
    first = 0 if since is None else int(since // BUCKET_SECONDS) * BUCKET_SECONDS
    end = FAR_FUTURE if until is None else math.ceil(until / BUCKET_SECONDS) * BUCKET_SECONDS
    return first, end


def report_bounds(store: Store, since: float | None, until: float | None) -> tuple[float | None, float | None]:
    """The range a report actually covers: `since` down and `until` up to whole 5-minute buckets.

    The rollups hold whole buckets, so a range that cuts one is widened to contain it (nothing
    recorded inside the requested range is left out), and to a whole hour where it cuts an hour the
    pruner folded (`covering_range`); every breakdown, the session one read from raw events included,
    uses these bounds, so the same range gives the same totals whatever the `by`. None (unbounded)
    stays None.
    """
    first, end = bucket_range(since, until)
    if since is not None or until is not None:
        with store.reading() as conn:
            first, end = covering_range(conn, first, end)
    return (None if since is None else float(first)), (None if until is None else float(end))


def breakdown(store: Store, by: Sequence[str], since: float | None, until: float | None) -> list[Row]:
    """Totals per distinct combination of `by` over [since, until), largest cost first."""
    unknown = [name for name in by if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)} (choose from {', '.join(DIMENSIONS)})")
    if "session" in by:
        rows = _breakdown_from_events(store, by, since, until)
    else:
        rows = _breakdown_from_rollups(store, by, since, until)
    rows.sort(key=lambda r: (-r.totals.cost_nanousd, -r.totals.requests, r.labels))
    return rows


def _breakdown_from_rollups(store: Store, by: Sequence[str], since: float | None, until: float | None) -> list[Row]:
    first, end = bucket_range(since, until)
    rollups = rollups_in_range(first, end)
    cols = [usage_series.c[name] for name in by]
    sums = [func.sum(rollups.c[name]) for name in COUNTER_COLUMNS]
    stmt = (
        select(*cols, *sums)
        .select_from(rollups.join(usage_series, usage_series.c.id == rollups.c.series_id))
        .group_by(*cols)
    )
    out = []
    with store.reading() as conn:
        for record in conn.execute(stmt):
            row = Row(tuple(str(v) for v in record[: len(cols)]))
            row.totals.add(record[len(cols) :])
            out.append(row)
    return out


def _breakdown_from_events(store: Store, by: Sequence[str], since: float | None, until: float | None) -> list[Row]:
    series_labels = [name for name in by if name != "session"]
    label_sql = "".join(f', s."{name}"' for name in series_labels)
    sql = text(
        "SELECT e.session, e.cost_source, e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, "
        f"e.output_tokens, e.reasoning_tokens, e.cost_nanousd{label_sql} "
        "FROM usage_events e JOIN usage_series s ON s.id = e.series_id WHERE e.ts >= :since AND e.ts < :until"
    )
    groups: dict[tuple[str, ...], Row] = {}
    params = {"since": since if since is not None else 0.0, "until": until if until is not None else float(FAR_FUTURE)}
    # The same range holds the same calls in the rollups as in the raw events (whole buckets), except
    # the events the retention pruned: per group of the other labels, the rollups less the events.
    pruned = {row.labels: row.totals for row in _breakdown_from_rollups(store, series_labels, since, until)}
    with store.reading() as conn:
        for record in conn.execute(sql, params):
            labels_of = dict(zip(series_labels, (str(v) for v in record[8:]), strict=True))
            labels_of["session"] = event_session(record[0])
            key = tuple(labels_of[name] for name in by)
            row = groups.get(key)
            if row is None:
                row = groups[key] = Row(key)
            counters = (1, *record[2:8], record[1] == "unpriced")
            row.totals.add(counters)
            rest = pruned.get(tuple(labels_of[name] for name in series_labels))
            if rest is not None:
                rest.add(-int(value) for value in counters)
    for labels, totals in pruned.items():
        if totals.requests > 0:
            labels_of = dict(zip(series_labels, labels, strict=True)) | {"session": PRUNED_SESSION}
            groups[tuple(labels_of[name] for name in by)] = Row(tuple(labels_of[name] for name in by), totals)
    return list(groups.values())


def first_unpriced_bucket(
    store: Store, provider: str, model: str, since: float | None, until: float | None
) -> int | None:
    """The start (epoch seconds) of the first bucket in [since, until) holding unpriced calls of the model."""
    first, end = bucket_range(since, until)
    rollups = rollups_in_range(first, end)
    stmt = (
        select(func.min(rollups.c.bucket))
        .select_from(rollups.join(usage_series, usage_series.c.id == rollups.c.series_id))
        .where(usage_series.c.provider == provider, usage_series.c.model == model, rollups.c.unpriced_requests > 0)
    )
    with store.reading() as conn:
        found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def unpriced_calls(store: Store, provider: str, model: str, since: float | None, until: float | None) -> int:
    """How many calls of the model in the buckets of [since, until) are stored unpriced (at $0)."""
    first, end = bucket_range(since, until)
    rollups = rollups_in_range(first, end)
    stmt = (
        select(func.sum(rollups.c.unpriced_requests))
        .select_from(rollups.join(usage_series, usage_series.c.id == rollups.c.series_id))
        .where(usage_series.c.provider == provider, usage_series.c.model == model)
    )
    with store.reading() as conn:
        found = conn.execute(stmt).scalar()
    return int(found or 0)


def total_cost_between(store: Store, by: Sequence[str], since: float, until: float) -> dict[tuple[str, ...], int]:
    """Cost in nano-dollars per combination of `by` over [since, until) (for week-over-week growth)."""
    return {row.labels: row.totals.cost_nanousd for row in _breakdown_from_rollups(store, by, since, until)}
