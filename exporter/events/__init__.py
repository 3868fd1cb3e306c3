"""The canonical usage event and its validation.

Every input form (canonical JSON, provider `usage` objects, LiteLLM rows, OpenTelemetry GenAI
attributes) is first mapped to a canonical dict by `exporter.normalize`; `parse_event` then checks
that dict field by field and returns a `UsageEvent`, or raises `InvalidEvent` naming the field and
the reason. This function is on the ingest hot path: it is written for speed (no per-event
allocation beyond the result, no regexes).

One module a concern: `fields` (the vocabulary and its limits), `usage_event` (`UsageEvent`,
`InvalidEvent`, `SkippedRecord`), `money` (nano-dollars), `checks` (one field's value), `metadata` (what the store keeps
of an event's metadata), `priced_extras` (what a call is priced with beyond its tokens) and `parsing`
(`parse_event`). Import every public name from `exporter.events`: the modules are its layout, not its
interface.
"""

from __future__ import annotations

from exporter.events.checks import check_number, parse_timestamp
from exporter.events.fields import (
    AUDIO_FIELDS,
    CACHE_WRITE_1H,
    CITATION_TOKENS,
    CONTENT_FIELDS,
    FILE_SEARCHES,
    FOREIGN_COUNTS,
    IMAGE_FIELDS,
    INFERENCE_GEO,
    KNOWN_FIELDS,
    LABEL_FIELDS,
    LABEL_MAX_LEN,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_TOKENS,
    MAX_WEB_SEARCHES,
    MEDIA_FIELDS,
    MIN_TIMESTAMP,
    REQUEST_ID_MAX_LEN,
    SERVICE_TIER,
    SERVICE_TIER_MAX_LEN,
    STATUSES,
    TOKEN_FIELDS,
    VIDEO_FIELDS,
    WEB_SEARCHES,
)
from exporter.events.metadata import derived_request_id, has_content, metadata_json, without_content
from exporter.events.money import NANOS_PER_USD, nanos_to_usd, usd_to_nanos
from exporter.events.parsing import parse_event
from exporter.events.priced_extras import priced_extras
from exporter.events.usage_event import (
    SKIP_REASONS,
    InvalidEvent,
    SkippedRecord,
    UsageEvent,
    session_of,
    shed_metadata,
)

__all__ = [
    "AUDIO_FIELDS",
    "CACHE_WRITE_1H",
    "CITATION_TOKENS",
    "CONTENT_FIELDS",
    "FILE_SEARCHES",
    "FOREIGN_COUNTS",
    "IMAGE_FIELDS",
    "INFERENCE_GEO",
    "KNOWN_FIELDS",
    "LABEL_FIELDS",
    "LABEL_MAX_LEN",
    "MAX_COST_USD",
    "MAX_LATENCY_MS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_TOKENS",
    "MAX_WEB_SEARCHES",
    "MEDIA_FIELDS",
    "MIN_TIMESTAMP",
    "NANOS_PER_USD",
    "REQUEST_ID_MAX_LEN",
    "SERVICE_TIER",
    "SERVICE_TIER_MAX_LEN",
    "SKIP_REASONS",
    "STATUSES",
    "TOKEN_FIELDS",
    "VIDEO_FIELDS",
    "WEB_SEARCHES",
    "InvalidEvent",
    "SkippedRecord",
    "UsageEvent",
    "check_number",
    "derived_request_id",
    "has_content",
    "metadata_json",
    "nanos_to_usd",
    "parse_event",
    "parse_timestamp",
    "priced_extras",
    "session_of",
    "shed_metadata",
    "usd_to_nanos",
    "without_content",
]
