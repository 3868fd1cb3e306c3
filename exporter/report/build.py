"""Assemble a report: the breakdown with its top rows and the rest summed, per-model ratios, hints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.events import nanos_to_usd
from exporter.pricing import PriceBook
from exporter.report.hints import Hint, all_hints
from exporter.report.query import Row, Totals, breakdown, bucket_range, report_bounds
from exporter.store import Store

DEFAULT_BY = ("provider", "model", "project")


@dataclass
class Report:
    """Everything `llmcost report` prints, in any format."""

    since: float | None
    until: float | None
    by: tuple[str, ...]
    rows: list[Row]
    rest: Row | None
    rest_groups: int
    total: Totals
    models: list[Row]
    hints: list[Hint] = field(default_factory=list)
    requested_since: float | None = None
    """The `since` asked for, before it was rounded down to a whole 5-minute bucket or folded hour (`since`)."""
    requested_until: float | None = None
    """The `until` asked for, before it was rounded up to a whole 5-minute bucket or folded hour (`until`)."""
    timezone: str = "UTC"
    """The zone the range was asked in (`--timezone`): named periods and bare dates are its days, and the
    table and Markdown show the bounds in it."""

    @property
    def widened(self) -> bool:
        """True when the bounds used differ from those asked for (see `report_bounds`)."""
        return (self.since, self.until) != (self.requested_since, self.requested_until)

    @property
    def widened_to_hours(self) -> bool:
        """True when an end was widened past its 5-minute bucket, to a whole hour the pruner folded."""
        first, end = bucket_range(self.requested_since, self.requested_until)
        return (self.since is not None and self.since != first) or (self.until is not None and self.until != end)

    def to_json(self) -> dict[str, Any]:
        """JSON form: `rows` and `total_cost_usd` as before, plus the rest, per-model ratios and hints.

        `since`/`until` are the bounds the figures cover (whole 5-minute buckets, or whole hours where the
        pruner folded them); `requested_since` and `requested_until` what was asked for; `timezone` the zone
        they were asked in.
        """
        return {
            "since": self.since,
            "until": self.until,
            "requested_since": self.requested_since,
            "requested_until": self.requested_until,
            "timezone": self.timezone,
            "by": list(self.by),
            "rows": [row_json(self.by, row) for row in self.rows],
            "rest": None if self.rest is None else {**row_json(self.by, self.rest), "groups": self.rest_groups},
            "total": totals_json(self.total),
            "total_cost_usd": nanos_to_usd(self.total.cost_nanousd),
            "models": [row_json(("provider", "model"), row) for row in self.models],
            "hints": [hint.to_json() for hint in self.hints],
        }


def totals_json(t: Totals) -> dict[str, Any]:
    """A row's counters, money in dollars, with its cache-hit and output/input ratios."""
    return {
        "requests": t.requests,
        "input_tokens": t.input_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "output_tokens": t.output_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "cost_usd": nanos_to_usd(t.cost_nanousd),
        "unpriced_requests": t.unpriced_requests,
        "cache_hit_ratio": t.cache_hit_ratio,
        "output_input_ratio": t.output_input_ratio,
    }


def row_json(by: Sequence[str], row: Row) -> dict[str, Any]:
    """A row as a flat JSON object: its labels by dimension name, then its counters."""
    return {**dict(zip(by, row.labels, strict=True)), **totals_json(row.totals)}


def build_report(
    store: Store,
    prices: PriceBook,
    *,
    since: float | None,
    until: float | None,
    by: Sequence[str] = DEFAULT_BY,
    top: int = 20,
    now: float,
    hints: bool = True,
    events_cutoff: float | None = None,
    timezone: str = "UTC",
) -> Report:
    """Read the rollups over [since, until) and build the report (hints priced at the range's end).

    The range is widened to whole 5-minute buckets, or folded hours (`report_bounds`); the report carries
    both the bounds used and those asked for. `events_cutoff`: raw events before it were pruned
    (`RetentionConfig.events_cutoff`): the unpriced hint's reprice command starts after it.
    """
    by = tuple(by)
    requested_since, requested_until = since, until
    since, until = report_bounds(store, since, until)
    rows = breakdown(store, by, since, until)
    total = Totals()
    for row in rows:
        total.add(row.totals.values())
    kept, extra = rows[:top], rows[top:]
    rest = None
    if extra:
        rest = Row(tuple("(other)" for _ in by))
        for row in extra:
            rest.totals.add(row.totals.values())
    models = breakdown(store, ("provider", "model"), since, until)
    report = Report(
        since,
        until,
        by,
        kept,
        rest,
        len(extra),
        total,
        models,
        requested_since=requested_since,
        requested_until=requested_until,
        timezone=timezone,
    )
    if hints:
        at = now if requested_until is None else min(requested_until, now)
        per_model_project = breakdown(store, ("provider", "model", "project"), since, until)
        report.hints = all_hints(store, per_model_project, models, prices, at, since, until, events_cutoff)
    return report


def ratio_text(value: float | None) -> str:
    """A ratio as a percentage for tables ('-' when undefined)."""
    return "-" if value is None or math.isnan(value) else f"{value:.1%}"
