"""`UsageEvent`, the validated event; `InvalidEvent` and `SkippedRecord`, a record that cannot be one or is none.

`InvalidEvent` names the field of a record that cannot be an event; `SkippedRecord` is a well-formed record of
no call to count.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exporter.events.fields import LABEL_MAX_LEN


class InvalidEvent(ValueError):
    """An event that cannot be stored; `field` names the offending field.

    `where` says where the record is in its file (`line 8`), when a reader knows it: it comes first in
    the message (`line 8: cost_usd: is not a number: '$0.10'`).
    """

    def __init__(self, field: str, reason: str, where: str = "") -> None:
        message = f"{field}: {reason}" if field else reason
        super().__init__(f"{where}: {message}" if where else message)
        self.field = field
        self.reason = reason
        self.where = where


SKIP_REASONS = {
    "reached_no_provider": "failures LiteLLM logged that reached no provider, requests its proxy refused itself "
    "(a wrong or missing key, a model it does not serve): no call was made",
}
"""Why a record may be skipped, by the reason's name (the `reason` label of `llm_ingest_events_skipped_total`)."""


class SkippedRecord(Exception):
    """A well-formed record of something that is no call to count: neither stored nor rejected, counted by `reason`.

    `reason` is a key of `SKIP_REASONS`. Such a record is not bad input (its sender did nothing wrong and
    cannot send it otherwise), so it must not count as rejected either.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(SKIP_REASONS[reason])
        self.reason = reason


class UsageEvent(msgspec.Struct):
    """One recorded LLM call in canonical form. Money is integer nano-dollars (exact sums).

    A msgspec `Struct` rather than a dataclass: one is made per event ingested, and a Struct is built in
    C (~0.3 µs against ~1.5 µs for the slotted dataclass's generated `__init__`). Mutable (pricing fills
    the cost), compared field by field.
    """

    request_id: str
    timestamp: float
    provider: str
    model: str
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int | None = None  # as supplied; None means "price it"
    latency_ms: float | None = None
    status: str = "success"
    project: str = ""
    user: str = ""
    service: str = ""
    metadata: dict[str, Any] | None = None
    # Set by pricing: "supplied" (cost_usd given), "priced" (price table), "unpriced" (cost 0, unknown model).
    cost_source: str = ""
    # The part of cache_write_tokens written for one hour (Anthropic's 1-hour cache), priced apart.
    cache_write_1h_tokens: int = 0
    # Provenance of a "priced" cost: which price table (or override entry) and since when its price held.
    price_source: str = ""
    price_from: str = ""
    session: str = ""
    """The conversation or agent run the call belongs to (`session`, else `metadata.session_id`); never a label."""
    # The audio, image and video parts of input_tokens, cache_read_tokens and output_tokens (`MEDIA_FIELDS`).
    input_audio_tokens: int = 0
    cache_read_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    cache_read_image_tokens: int = 0
    output_image_tokens: int = 0
    input_video_tokens: int = 0
    cache_read_video_tokens: int = 0
    output_video_tokens: int = 0
    # Server-side web searches the call ran (`WEB_SEARCHES`), priced per search.
    web_search_requests: int = 0
    # File searches the call ran (`FILE_SEARCHES`), priced per search.
    file_search_requests: int = 0
    # The service tier or processing mode that served the call (`SERVICE_TIER`), lower-cased; "" = standard.
    service_tier: str = ""
    # Where the inference ran (`INFERENCE_GEO`), lower-cased; "" = not said.
    inference_geo: str = ""
    # The part of output_tokens that are citation tokens (`CITATION_TOKENS`), priced apart by some models.
    citation_tokens: int = 0

    # `metadata` as the JSON text stored, made once by `metadata_json` when the event is validated.
    metadata_text: str | None = None


def session_of(event: UsageEvent) -> str | None:
    """The session an event is stored under: its `session`, else a printable `metadata.session_id`."""
    if event.session:
        return event.session
    metadata = event.metadata
    if metadata:
        value = metadata.get("session_id")
        if type(value) is str and value and len(value) <= LABEL_MAX_LEN and value.isprintable():
            return value
    return None


def shed_metadata(event: UsageEvent) -> None:
    """Drop a validated event's metadata dict, keeping what the store writes of it: text and session.

    A parsed metadata object costs several times its JSON text in memory; an event that only waits for
    its commit needs `metadata_text` and the session `session_of` finds (docs/limits.md, "Memory per
    request"). The event is stored exactly as before.
    """
    if event.metadata_text is not None:
        if not event.session:
            event.session = session_of(event) or ""
        event.metadata = None
