"""Ingest pipeline: raw records → canonical events → priced events → store.

The HTTP API and `llmcost ingest` share this code, so both apply the same validation, pricing and
idempotency. A bad record becomes a `Rejection` naming its index and the problem; it never stops the
good records beside it. A well-formed record of no call to count (`SkippedRecord`: a request LiteLLM's proxy
refused before any provider) is skipped: neither stored nor rejected, counted by reason.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

from exporter.body_records import TooManyValues, check_lines, iter_records
from exporter.canonical_lines import canonical_event, canonical_events
from exporter.config import OtlpConfig
from exporter.events import MAX_METADATA_BYTES, InvalidEvent, SkippedRecord, UsageEvent, parse_event, shed_metadata
from exporter.json_budget import values_bound
from exporter.normalize import to_canonical
from exporter.pricing import PriceBook
from exporter.pricing.book import NO_MEDIA_PARTS, MediaParts
from exporter.readers import json_line
from exporter.store import Store

log = logging.getLogger(__name__)

FAST_PATH_TRIES = 32
"""Lines of another form `prepare_lines` tries on its fast path before giving up on it for the rest."""


class EventTooOld(InvalidEvent):
    """An event older than the raw-event retention (`retention.events_days`), refused by `IngestPipeline.too_old`."""


@dataclass(frozen=True)
class Rejection:
    """One record that was not stored, and why."""

    index: int
    error: str
    too_old: bool = False
    """Refused as older than the retention: `llmcost ingest` says how to load such history after all."""

    def to_json(self) -> dict[str, Any]:
        """The API's `{"index": i, "error": "..."}` form."""
        return {"index": self.index, "error": self.error}


class Prepared(NamedTuple):
    """What `prepare` made of some records: priced events, rejections, and skipped records by reason."""

    events: list[UsageEvent]
    rejected: list[Rejection]
    skipped: Counter[str]


@dataclass
class IngestOutcome:
    """Counts for a request or a file: accepted (new), duplicates (already stored), rejected (invalid), skipped.

    `skipped` counts by reason (`exporter.events.SKIP_REASONS`) the records of no call to count.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: IngestOutcome) -> None:
        """Fold another outcome into this one."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)
        self.skipped.update(other.skipped)

    def to_json(self, *, max_rejections: int = 1000) -> dict[str, Any]:
        """The API response body; a huge list of rejections is cut with a count of the rest."""
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.to_json() for r in self.rejected[:max_rejections]],
        }
        if len(self.rejected) > max_rejections:
            body["rejected_truncated"] = len(self.rejected) - max_rejections
        if self.skipped:  # only then: the answer to a batch of calls stays the one clients have always read
            body["skipped"] = dict(self.skipped)
        return body


class IngestPipeline:
    """Validates and prices records; `ingest` also writes them (for callers without a commit queue)."""

    def __init__(
        self,
        store: Store,
        prices: PriceBook,
        *,
        clock: Callable[[], float] = time.time,
        max_future_skew: float = 300.0,
        max_event_age: float | None = None,
        max_metadata_bytes: int = MAX_METADATA_BYTES,
        max_batch_events: int = 100_000,
        max_json_values: int = 2_000_000,
        otlp: OtlpConfig | None = None,
    ) -> None:
        self.store = store
        # The `otlp:` attribution rule, for span records posted or read from files as for `POST /v1/traces`.
        self.otlp = otlp or OtlpConfig()
        self.prices = prices
        self.clock = clock
        self.max_future_skew = max_future_skew
        # The raw-event retention in seconds: an older event is refused (see `too_old`).
        self.max_event_age = max_event_age
        self.max_metadata_bytes = max_metadata_bytes
        # Per request body (`prepare_body`): ingest.max_batch_events and ingest.max_json_values.
        self.max_batch_events = max_batch_events
        self.max_json_values = max_json_values

    def _oldest(self, now: float) -> float:
        return -math.inf if self.max_event_age is None else now - self.max_event_age

    def too_old(self) -> EventTooOld:
        """The rejection of an event older than the raw-event retention.

        Pruned events are gone, and with them the record of their `request_id`: storing such an event
        could count a call twice (a replayed file, a client retry), so it is refused instead.
        """
        days = (self.max_event_age or 0) / 86_400
        return EventTooOld(
            "timestamp",
            f"is older than the raw-event retention ({days:g} days, retention.events_days): events that old "
            "are pruned, so a repeat of this one could not be recognised as a duplicate",
        )

    def prepare(self, records: Iterable[tuple[int, Any]]) -> Prepared:
        """Turn `(index, raw record or InvalidEvent)` pairs into priced events, rejections and skipped counts."""
        return self._prepare(records, shed=False)

    def _prepare(self, records: Iterable[tuple[int, Any]], *, shed: bool) -> Prepared:
        # `shed`: keep only the stored form of each event's metadata (`shed_metadata`).
        now = self.clock()
        skew = self.max_future_skew
        oldest = self._oldest(now)
        meta_bytes = self.max_metadata_bytes
        price = self.price
        otlp = self.otlp
        events: list[UsageEvent] = []
        rejected: list[Rejection] = []
        skipped: Counter[str] = Counter()
        first_error: tuple[int, Exception] | None = None
        errors = 0
        for index, raw in records:
            if isinstance(raw, InvalidEvent):
                rejected.append(Rejection(index, str(raw)))
                continue
            try:
                event = parse_event(
                    to_canonical(raw, otlp), now=now, max_future_skew=skew, max_metadata_bytes=meta_bytes
                )
                if event.timestamp < oldest:
                    raise self.too_old()
                price(event)
            except SkippedRecord as exc:
                skipped[exc.reason] += 1
                continue
            except InvalidEvent as exc:
                # Say where the record is, when its reader knows: which span of an OTLP export (its line's
                # index is shared by its spans), the line a CSV row starts on: readers.PlacedRecord.
                where = getattr(raw, "where", "")
                too_old = isinstance(exc, EventTooOld)
                rejected.append(Rejection(index, f"{where}: {exc}" if where else str(exc), too_old))
                continue
            except Exception as exc:  # a bug in one mapping must not drop the batch
                if first_error is None:
                    first_error = (index, exc)
                errors += 1
                rejected.append(Rejection(index, f"internal error while reading this record: {type(exc).__name__}"))
                continue
            if shed:
                shed_metadata(event)
            events.append(event)
        if first_error is not None:
            # One line per batch, never a traceback per record: a hostile request must not flood the log.
            first_index, first_exc = first_error
            log.error(
                "%d record(s) raised an unexpected error and were rejected; the first, record %d: %s: %.200s",
                errors,
                first_index,
                type(first_exc).__name__,
                first_exc,
            )
            log.debug("the first unexpected error", exc_info=first_exc)
        return Prepared(events, rejected, skipped)

    def prepare_lines(self, first_index: int, lines: Sequence[bytes]) -> Prepared:
        """`prepare` for lines of a JSON-lines file, the first being line `first_index` (from 0).

        Plain canonical lines are decoded straight into events (`canonical_event`); every other line,
        with its rejection if any, takes `prepare`'s path. Events keep the order of their lines.
        """
        now = self.clock()
        skew = self.max_future_skew
        oldest = self._oldest(now)
        price = self.price
        prepared = Prepared([], [], Counter())
        events = prepared.events
        others: list[tuple[int, Any]] = []  # records for `prepare`, handed over in runs to keep the order
        hits = misses = 0
        for offset, line in enumerate(lines):
            # A file of another form misses every time: once misses outrun hits, stop trying.
            if misses <= hits + FAST_PATH_TRIES:
                event = canonical_event(line, now=now, max_future_skew=skew, max_metadata_bytes=self.max_metadata_bytes)
                if event is not None and event.timestamp >= oldest:  # too old: `prepare` says why
                    hits += 1
                    if others:
                        self._prepare_into(others, prepared)
                    price(event)
                    events.append(event)
                    continue
                misses += 1
            record = json_line(first_index + offset, line)
            if record is not None:
                others.append(record)
        if others:
            self._prepare_into(others, prepared)
        return prepared

    def prepare_body(self, body: bytes, *, ndjson: bool) -> Prepared:
        """The priced events and the rejections of one request body (a JSON object, an array, or NDJSON).

        Raises `TooManyValues` or `TooManyEvents` (the request's limits, checked before anything is
        built or priced) and `MalformedBody`. A body of plain canonical events takes the fast path
        (`canonical_events`); any other body the general one, which parses a record only when it is its
        turn. Either way the events keep their metadata as stored text only (`shed_metadata`): memory
        per request stays bounded (docs/limits.md, "Memory per request").
        """
        limit = self.max_json_values
        if (bound := values_bound(body, ndjson=ndjson, limit=limit)) > limit:
            raise TooManyValues(
                f"body holds up to {bound} JSON values; the limit is {limit} per request "
                f"(send at most {self.max_batch_events} events, with small metadata)"
            )
        if ndjson:
            check_lines(body, self.max_batch_events)
        now = self.clock()
        events = canonical_events(
            body,
            ndjson=ndjson,
            now=now,
            max_future_skew=self.max_future_skew,
            max_metadata_bytes=self.max_metadata_bytes,
            max_events=self.max_batch_events,
            finish=self._price_and_shed,
        )
        oldest = self._oldest(now)
        # An event older than the retention: `_prepare` rejects each such one, with the reason.
        if events is not None and not any(event.timestamp < oldest for event in events):
            return Prepared(events, [], Counter())
        del events
        return self._prepare(iter_records(body, ndjson=ndjson, max_records=self.max_batch_events), shed=True)

    def _price_and_shed(self, event: UsageEvent) -> None:
        self.price(event)
        shed_metadata(event)

    def _prepare_into(self, records: list[tuple[int, Any]], prepared: Prepared) -> None:
        more = self._prepare(records, shed=False)
        prepared.events.extend(more.events)
        prepared.rejected.extend(more.rejected)
        prepared.skipped.update(more.skipped)
        records.clear()

    def price(self, event: UsageEvent) -> None:
        """Fill `cost_nanousd` and `cost_source`: a supplied cost wins, else the price table, else 0."""
        if event.cost_nanousd is not None:
            event.cost_source = "supplied"
            return
        cost, source, effective = self.prices.quote(
            event.provider,
            event.model,
            event.timestamp,
            event.input_tokens,
            event.cache_read_tokens,
            event.cache_write_tokens,
            event.output_tokens,
            event.reasoning_tokens,  # positional: a keyword costs ~10% of this call
            event.cache_write_1h_tokens,
            *_media_parts(event),
            event.web_search_requests,
            event.service_tier,
            event.file_search_requests,
            event.inference_geo,
            event.citation_tokens,
        )
        if cost is None:
            event.cost_nanousd = 0
            event.cost_source = "unpriced"
        else:
            event.cost_nanousd = cost
            event.cost_source = "priced"
            event.price_source = source
            event.price_from = effective

    def ingest(self, records: Iterable[tuple[int, Any]], *, batch_size: int = 10_000) -> IngestOutcome:
        """Validate, price and store records in batches; returns the totals."""
        outcome = IngestOutcome()
        iterator: Iterator[tuple[int, Any]] = iter(records)
        while batch := list(islice(iterator, batch_size)):
            outcome.add(self._write(*self.prepare(batch)))
        return outcome

    def ingest_lines(self, first_index: int, lines: Sequence[bytes], *, batch_size: int = 10_000) -> IngestOutcome:
        """`ingest` for lines of a JSON-lines file (see `prepare_lines`); returns the totals."""
        outcome = IngestOutcome()
        for start in range(0, len(lines), batch_size):
            outcome.add(self._write(*self.prepare_lines(first_index + start, lines[start : start + batch_size])))
        return outcome

    def _write(self, events: list[UsageEvent], rejected: list[Rejection], skipped: Counter[str]) -> IngestOutcome:
        result = self.store.write_events(events, rejected=len(rejected), skipped=skipped)
        return IngestOutcome(result.accepted, result.duplicates, rejected, skipped)


def _media_parts(event: UsageEvent) -> MediaParts:
    """The event's audio, image and video parts as `PriceBook.quote` takes them (`NO_MEDIA_PARTS`: none)."""
    if not (
        event.input_audio_tokens
        | event.cache_read_audio_tokens
        | event.output_audio_tokens
        | event.input_image_tokens
        | event.cache_read_image_tokens
        | event.output_image_tokens
        | event.input_video_tokens
        | event.cache_read_video_tokens
        | event.output_video_tokens
    ):
        return NO_MEDIA_PARTS  # the norm
    return (
        (event.input_audio_tokens, event.cache_read_audio_tokens, event.output_audio_tokens),
        (event.input_image_tokens, event.cache_read_image_tokens, event.output_image_tokens),
        (event.input_video_tokens, event.cache_read_video_tokens, event.output_video_tokens),
    )
