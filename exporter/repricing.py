"""`llmcost reprice`: price stored events again after a price-table update or a new override.

Which events: those priced from the table (`priced`) or left without a price (`unpriced`) since a
date, optionally for one model; a cost the caller supplied is never touched. Each changed event gets
its new cost and provenance, and the difference is carried, in the same bounded transaction, to:

- its 5-minute rollup bucket (reports, projections, detection and budget rebuilds read these);
- budget spend, through the store's write hooks (the same code an ingest runs), so every budget
  period that counted the event is corrected (a call a budget reset had counted is corrected in the
  reset's record instead: the hooks get each event's ingest time; a period the budget never counted,
  before it existed, gets no row);
- its series' correction counters, `cost_adjust_up_nanousd` / `cost_adjust_down_nanousd`, and
  `unpriced_adjust_requests` (signed) when it was priced or left unpriced by the new prices.

The series' `cost_nanousd`, behind the `llm_cost_usd_total` counter, is left as first recorded:
a Prometheus counter must never go down, and `increase()` over a drop would read as a reset and
count the whole total again. Corrections are exported as `llm_cost_adjustment_usd_total{direction}`
instead (see docs/pricing.md for the PromQL). Likewise `llm_unpriced_requests_total` keeps counting
calls that arrived without a price; the rollups' unpriced counts, which reports read, and the series'
`unpriced_adjust_requests`, which the console reads (calls unpriced now), are corrected.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text

from exporter.events import (
    AUDIO_FIELDS,
    CITATION_TOKENS,
    FILE_SEARCHES,
    IMAGE_FIELDS,
    INFERENCE_GEO,
    SERVICE_TIER,
    VIDEO_FIELDS,
    WEB_SEARCHES,
    nanos_to_usd,
    priced_extras,
)
from exporter.pricing import PriceBook
from exporter.pricing.book import NO_MEDIA, NO_MEDIA_PARTS, MediaParts
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS, HOUR_SECONDS, LABEL_COLUMNS
from exporter.store.writer import SeriesKey, WriteResult, log_rollup_backfill

_SELECT = (
    "SELECT e.id, e.ts, e.series_id, e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, "
    "e.output_tokens, e.reasoning_tokens, e.cache_write_1h_tokens, e.cost_nanousd, e.cost_source, "
    "e.price_source, e.price_from, " + ", ".join(f's."{c}"' for c in LABEL_COLUMNS) + ", "
    "e.meta_json, e.ingested_at "
    "FROM usage_events e JOIN usage_series s ON s.id = e.series_id "
    "WHERE e.id > :last AND e.ts >= :since AND e.ts < :until AND e.cost_source IN ('priced', 'unpriced')"
)

_META_AT = 13 + len(LABEL_COLUMNS)
"""Where `meta_json` is in a `_SELECT` row (`ingested_at` follows it)."""


def stored_media(meta_json: str | None) -> MediaParts:
    """The audio, image and video parts an event was priced with, kept in its metadata (`events.MEDIA_FIELDS`)."""
    if not meta_json or not ("audio_tokens" in meta_json or "image_tokens" in meta_json or "video_tokens" in meta_json):
        return NO_MEDIA_PARTS
    metadata = orjson.loads(meta_json)
    parts: list[tuple[int, int, int]] = []
    for fields in (AUDIO_FIELDS, IMAGE_FIELDS, VIDEO_FIELDS):
        counts = [metadata.get(part, 0) for part, _ in fields]
        if not any(counts) or not all(type(n) in (int, float) and n >= 0 and n == int(n) for n in counts):
            parts.append(NO_MEDIA)  # validated when the event was stored: only a caller's own metadata key differs
        else:
            parts.append((int(counts[0]), int(counts[1]), int(counts[2])))
    return parts[0], parts[1], parts[2]


_EXTRA_KEYS = (
    WEB_SEARCHES,
    SERVICE_TIER,
    FILE_SEARCHES,
    INFERENCE_GEO,
    CITATION_TOKENS,
    "num_search_queries",
    '"speed"',
)
"""Text one of which the stored metadata holds when it names searches or a tier (`priced_extras`)."""


def stored_extras(meta_json: str | None, output_room: int = 0) -> tuple[int, str, int, str, int]:
    """The searches, tier, inference geo and citation tokens an event was priced with, from its stored metadata.

    `output_room`: the event's output tokens less its reasoning tokens (citation tokens are a part of them).
    """
    if not meta_json or not any(key in meta_json for key in _EXTRA_KEYS):
        return 0, "", 0, "", 0
    metadata = orjson.loads(meta_json)
    return priced_extras(metadata, output_room) if isinstance(metadata, dict) else (0, "", 0, "", 0)


@dataclass
class ModelDifference:
    """What repricing changed for one provider/model."""

    provider: str
    model: str
    events: int = 0
    changed: int = 0
    before_nanousd: int = 0
    after_nanousd: int = 0
    newly_priced: int = 0
    newly_unpriced: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form, money in dollars."""
        return {
            "provider": self.provider,
            "model": self.model,
            "events": self.events,
            "changed": self.changed,
            "before_usd": nanos_to_usd(self.before_nanousd),
            "after_usd": nanos_to_usd(self.after_nanousd),
            "difference_usd": nanos_to_usd(self.after_nanousd - self.before_nanousd),
            "newly_priced": self.newly_priced,
            "newly_unpriced": self.newly_unpriced,
        }


@dataclass
class RepriceReport:
    """The outcome of a repricing run, per model."""

    dry_run: bool
    since: float
    models: dict[tuple[str, str], ModelDifference] = field(default_factory=dict)
    batches: int = 0

    @property
    def difference_nanousd(self) -> int:
        """New minus old cost over every event looked at."""
        return sum(m.after_nanousd - m.before_nanousd for m in self.models.values())

    def to_json(self) -> dict[str, Any]:
        """JSON form (the CLI's `--format json`)."""
        return {
            "dry_run": self.dry_run,
            "since": self.since,
            "models": [m.to_json() for m in self.sorted_models()],
            "difference_usd": nanos_to_usd(self.difference_nanousd),
        }

    def sorted_models(self) -> list[ModelDifference]:
        """Largest absolute change first."""
        return sorted(
            self.models.values(), key=lambda m: (-abs(m.after_nanousd - m.before_nanousd), m.provider, m.model)
        )


class Repricer:
    """Recomputes the cost of stored priced and unpriced events in bounded transactions."""

    def __init__(self, store: Store, prices: PriceBook, *, batch_size: int = 2000) -> None:
        self.store = store
        self.prices = prices
        self.batch_size = batch_size

    def run(
        self,
        since: float,
        *,
        until: float = math.inf,
        model: str | None = None,
        dry_run: bool = False,
        progress: Callable[[RepriceReport], None] | None = None,
    ) -> RepriceReport:
        """Reprice events with `since <= ts < until` (and `model`, if given); returns the differences."""
        report = RepriceReport(dry_run, since)
        sql = _SELECT + (' AND s."model" = :model' if model is not None else "") + " ORDER BY e.id LIMIT :n"
        # PostgreSQL: lock the batch's events, so two runs at once cannot both apply the same correction
        # (SQLite's write transaction already runs alone).
        locked = sql + (" FOR UPDATE OF e" if self.store.dialect == "postgresql" else "")
        params: dict[str, Any] = {
            "since": since,
            "until": until if math.isfinite(until) else 2.0**62,
            "n": self.batch_size,
        }
        if model is not None:
            params["model"] = model
        last = -1
        while True:
            params["last"] = last
            if dry_run:
                with self.store.reading() as conn:
                    rows = list(conn.execute(text(sql), params))
                    self._reprice(rows, report, None)
            else:
                with self.store.transaction() as conn:
                    rows = list(conn.execute(text(locked), params))
                    results = self._reprice(rows, report, conn)
                self.store.run_after_commit(WriteResult([], hook_results=results))
            if not rows:
                return report
            report.batches += 1
            last = rows[-1][0]
            if progress is not None:
                progress(report)

    def _reprice(self, rows: list[Any], report: RepriceReport, conn: Any) -> list[Any]:
        """Price each row again; with `conn`, write the changes; returns the write hooks' results."""
        quote = self.prices.quote
        updates: list[dict[str, Any]] = []
        rollup_deltas: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        corrections: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
        labels: dict[int, SeriesKey] = {}
        series_up: dict[int, int] = defaultdict(int)
        series_unpriced: dict[int, int] = defaultdict(int)  # signed: -1 a call priced, +1 one made unpriced
        series_down: dict[int, int] = defaultdict(int)
        for row in rows:
            event_id, ts, sid, inp, read, write, out, reasoning, write_1h, old_cost, old_kind, old_src, old_from = row[
                :13
            ]
            provider, model = row[13], row[14]
            media = stored_media(row[_META_AT])
            searches, tier, file_searches, geo, citations = stored_extras(row[_META_AT], out - reasoning)
            cost, source, effective = quote(
                provider,
                model,
                ts,
                inp,
                read,
                write,
                out,
                reasoning,
                write_1h or 0,
                *media,
                searches,
                tier,
                file_searches,
                geo,
                citations,
            )
            kind = "unpriced" if cost is None else "priced"
            new_cost = cost or 0
            diff = report.models.get((provider, model))
            if diff is None:
                diff = report.models[(provider, model)] = ModelDifference(provider, model)
            diff.events += 1
            diff.before_nanousd += old_cost
            diff.after_nanousd += new_cost
            if (new_cost, kind, source, effective) == (old_cost, old_kind, old_src or "", old_from or ""):
                continue
            diff.changed += 1
            diff.newly_priced += old_kind == "unpriced" and kind == "priced"
            diff.newly_unpriced += old_kind == "priced" and kind == "unpriced"
            updates.append({"id": event_id, "c": new_cost, "k": kind, "s": source, "f": effective})
            bucket_key = (sid, int(ts // BUCKET_SECONDS) * BUCKET_SECONDS)
            delta = rollup_deltas[bucket_key]
            delta[0] += new_cost - old_cost
            if new_cost != old_cost:
                # When it was counted: a budget reset since then had counted it (alerting.budgets.spend).
                corrections[bucket_key].append((float(row[_META_AT + 1]), new_cost - old_cost))
            delta[1] += (kind == "unpriced") - (old_kind == "unpriced")
            series_unpriced[sid] += (kind == "unpriced") - (old_kind == "unpriced")
            labels[sid] = (row[13], row[14], row[15], row[16], row[17], row[18])
            if new_cost > old_cost:
                series_up[sid] += new_cost - old_cost
            elif new_cost < old_cost:
                series_down[sid] += old_cost - new_cost
        if conn is None or not updates:
            return []
        conn.execute(
            text(
                "UPDATE usage_events SET cost_nanousd = :c, cost_source = :k, price_source = :s, price_from = :f "
                "WHERE id = :id"
            ),
            updates,
        )
        for (sid, bucket), (cost_delta, unpriced_delta) in sorted(rollup_deltas.items()):
            params = {"sid": sid, "b": bucket, "c": cost_delta, "u": unpriced_delta}
            changed = conn.execute(
                text(
                    "UPDATE usage_rollup SET cost_nanousd = cost_nanousd + :c, "
                    "unpriced_requests = unpriced_requests + :u WHERE series_id = :sid AND bucket = :b"
                ),
                params,
            ).rowcount
            if not changed:  # folded into its hour by the pruner already
                params["b"] = bucket // HOUR_SECONDS * HOUR_SECONDS
                conn.execute(
                    text(
                        "UPDATE usage_rollup_hourly SET cost_nanousd = cost_nanousd + :c, "
                        "unpriced_requests = unpriced_requests + :u WHERE series_id = :sid AND bucket = :b"
                    ),
                    params,
                )
        conn.execute(
            text(
                "UPDATE usage_series SET cost_adjust_up_nanousd = cost_adjust_up_nanousd + :up, "
                "cost_adjust_down_nanousd = cost_adjust_down_nanousd + :down, "
                "unpriced_adjust_requests = unpriced_adjust_requests + :u WHERE id = :sid"
            ),
            [
                {"sid": sid, "up": series_up.get(sid, 0), "down": series_down.get(sid, 0), "u": series_unpriced[sid]}
                for sid in sorted(labels)
            ],
        )
        if rollup_deltas:  # the spike detector's cached buckets re-read from the oldest corrected one
            cursor = conn.connection.cursor()
            oldest = min(bucket for _sid, bucket in rollup_deltas)
            log_rollup_backfill(cursor, self.store.dialect == "postgresql", oldest, time.time())
        hook_rollups = {key: [0, 0, 0, 0, 0, 0, value[0], value[1]] for key, value in rollup_deltas.items() if value[0]}
        return self.store.run_write_hooks(conn, hook_rollups, labels, corrections) if hook_rollups else []
