"""Canonical events decoded and checked in one step: the fast path of ingest.

Nearly every line of a recorded-calls file, and every event of a typical `POST /v1/usage` body, is a
canonical event with plain values. `canonical_event` decodes such a line with msgspec straight into a
typed structure, which checks the types and bounds of every field in C, and builds the `UsageEvent`
that `parse_event` would build from it. It answers None for any line it does not take outright:
another input form (a provider `usage` object, a LiteLLM row), a lenient form `parse_event` also takes
(an RFC 3339 timestamp, a whole-number float count, a missing `request_id`), unknown fields (kept in
`metadata` by the general path), or a problem to report. The caller then takes the general path
(orjson, `to_canonical`, `parse_event`), which is exact and names the problem. So this path accepts a
subset of what `parse_event` accepts and builds the same event; the tests hold the two together on
the recorded data and on hostile and edge-case lines.

`canonical_events` does the same for a request body, all or nothing. This saves about two thirds of
the per-event work before pricing (decoding to a dict, then reading and checking every field in Python).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from exporter.body_records import check_count, check_lines, ndjson_lines, split_array
from exporter.events import (
    CITATION_TOKENS,
    FILE_SEARCHES,
    INFERENCE_GEO,
    LABEL_MAX_LEN,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_METADATA_BYTES,
    MAX_TOKENS,
    MIN_TIMESTAMP,
    REQUEST_ID_MAX_LEN,
    SERVICE_TIER,
    WEB_SEARCHES,
    InvalidEvent,
    UsageEvent,
    check_number,
    has_content,
    metadata_json,
    usd_to_nanos,
    without_content,
)

_PRICED_KEYS = frozenset((SERVICE_TIER, WEB_SEARCHES, FILE_SEARCHES, INFERENCE_GEO, CITATION_TOKENS, "usage"))
"""Metadata keys that can change a call's price (`events.priced_extras`: a provider usage kept there too)."""
_RequestId = Annotated[str, Meta(min_length=1, max_length=REQUEST_ID_MAX_LEN)]
_Name = Annotated[str, Meta(min_length=1, max_length=LABEL_MAX_LEN)]
_Label = Annotated[str, Meta(max_length=LABEL_MAX_LEN)]
_Count = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]


class _CanonicalLine(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The canonical event fields (events.KNOWN_FIELDS) in their plain forms; anything else is refused."""

    request_id: _RequestId
    timestamp: float  # epoch seconds; a JSON integer is taken too, as a float (as parse_event does)
    provider: _Name
    model: _Name
    input_tokens: _Count = 0
    cache_read_tokens: _Count = 0
    cache_write_tokens: _Count = 0
    cache_write_1h_tokens: _Count = 0
    output_tokens: _Count = 0
    reasoning_tokens: _Count = 0
    cost_usd: float | None = None
    latency_ms: float | None = None
    status: Literal["success", "error"] = "success"
    project: _Label = ""
    user: _Label = ""
    service: _Label = ""
    session: _Label = ""
    metadata: dict[str, Any] | None = None


_decode_line = msgspec.json.Decoder(_CanonicalLine).decode
_decode_body = msgspec.json.Decoder(list[_CanonicalLine] | _CanonicalLine).decode
WHOLE_DECODE_BYTES = 1 << 20
"""Bodies below this size are decoded in one call; larger ones element by element (~0.3 µs more each)."""


def canonical_event(
    line: bytes, *, now: float, max_future_skew: float, max_metadata_bytes: int = MAX_METADATA_BYTES
) -> UsageEvent | None:
    """The event `parse_event` would make of this JSON line, or None to take the general path.

    The cost is not priced here (`cost_nanousd` is None unless `cost_usd` is given), as with `parse_event`.
    """
    if not _plain_text(line):
        return None
    try:
        fields = _decode_line(line)
    # Malformed, another form, a value out of bounds, or nested past the decoder's depth: the general path.
    except (msgspec.MsgspecError, RecursionError):
        return None
    return _event(fields, now, max_future_skew, max_metadata_bytes)


def canonical_events(
    body: bytes,
    *,
    ndjson: bool,
    now: float,
    max_future_skew: float,
    max_metadata_bytes: int = MAX_METADATA_BYTES,
    max_events: int | None = None,
    finish: Callable[[UsageEvent], object] | None = None,
) -> list[UsageEvent] | None:
    """The events of a request body (one event, a JSON array, or NDJSON) if all are plain canonical ones.

    None (take the general path) as soon as one is not: the general path then judges each on its own.
    NDJSON is split into lines here, as the general path splits it: msgspec's own reader of lines would
    also take two objects on one line, or one object over two. `TooManyEvents` when the body decodes to
    more than `max_events`, before any event is made. NDJSON lines and the elements of a large array are
    decoded one at a time and `finish` (pricing) is applied to each event as it is made, so the decoded
    fields of every event are never held at once.
    """
    if not _plain_text(body):
        return None
    items: Iterable[_CanonicalLine]
    try:
        if ndjson:
            if max_events is not None:
                check_lines(body, max_events)
            items = map(_decode_line, ndjson_lines(body))
        elif len(body) < WHOLE_DECODE_BYTES:
            decoded = _decode_body(body)
            items = decoded if isinstance(decoded, list) else [decoded]
            if max_events is not None:
                check_count(len(items), max_events)
        else:
            # Element by element: the decoded fields of every event are never held at once.
            split = split_array(body)
            if isinstance(split, msgspec.Raw):
                items = [_decode_line(body)]
            else:
                if max_events is not None:
                    check_count(len(split), max_events)
                items = map(_decode_line, split)
        events = []
        for fields in items:
            event = _event(fields, now, max_future_skew, max_metadata_bytes)
            if event is None:
                return None
            if finish is not None:
                finish(event)
            events.append(event)
    except (msgspec.MsgspecError, RecursionError):
        return None
    return events


def _plain_text(data: bytes) -> bool:
    # Labels must be printable. JSON forbids raw control characters inside strings, so the strings of
    # ASCII text with no escape (backslash) and no DEL are printable ASCII: no check per string.
    return data.isascii() and 0x5C not in data and 0x7F not in data  # int needles: a plain memchr


def _event(fields: _CanonicalLine, now: float, max_future_skew: float, max_metadata_bytes: int) -> UsageEvent | None:
    """The checks msgspec cannot make (bounds that depend on `now` or on another field), then the event."""
    timestamp = fields.timestamp
    output_tokens = fields.output_tokens
    reasoning = fields.reasoning_tokens
    if (
        not MIN_TIMESTAMP <= timestamp <= now + max_future_skew
        or reasoning > output_tokens
        or fields.cache_write_1h_tokens > fields.cache_write_tokens
    ):
        return None
    cost_nanos = None
    latency_ms = fields.latency_ms
    metadata = fields.metadata or None
    if metadata is not None and not _PRICED_KEYS.isdisjoint(metadata):
        return None  # a tier or web searches named in the metadata price the call: the general path reads them
    if metadata is not None and has_content(metadata):
        metadata = without_content(metadata) or None
    text = None
    try:  # the general path's own checks, so both take exactly the same values
        if fields.cost_usd is not None:
            cost_nanos = usd_to_nanos(check_number("cost_usd", fields.cost_usd, MAX_COST_USD))
        if latency_ms is not None:
            latency_ms = check_number("latency_ms", latency_ms, MAX_LATENCY_MS)
        if metadata is not None:
            text = metadata_json(metadata, max_metadata_bytes)
    except InvalidEvent:
        return None
    return UsageEvent(
        fields.request_id,
        timestamp,
        fields.provider,
        fields.model,
        fields.input_tokens,
        fields.cache_read_tokens,
        fields.cache_write_tokens,
        output_tokens,
        reasoning,
        cost_nanos,
        latency_ms,
        fields.status,
        fields.project,
        fields.user,
        fields.service,
        metadata,
        cache_write_1h_tokens=fields.cache_write_1h_tokens,
        session=fields.session,
        metadata_text=text,
    )
