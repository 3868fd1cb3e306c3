"""Every accepted input form, mapped to the canonical usage event dict that `parse_event` validates.

Forms: a canonical event (returned as is), an event with a raw provider `usage` object
(`provider_usage`), a whole provider response posted as is (`responses`, read through
`provider_usage`), a line of an OpenAI or Anthropic batch results file (`batches`), a LiteLLM
StandardLoggingPayload or SpendLogs row (`litellm`), and OpenTelemetry GenAI span attributes
(`otel`). The mapping only fixes structure and meaning; types and ranges of the canonical fields are
`parse_event`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent
from exporter.normalize.anthropic import merge_stream_usage
from exporter.normalize.batches import event_from_batch_result, is_batch_result
from exporter.normalize.litellm import event_from_litellm, is_litellm
from exporter.normalize.otel import event_from_span, is_otel
from exporter.normalize.provider_usage import event_from_usage, map_usage

__all__ = ["map_usage", "merge_stream_usage", "to_canonical"]

_DEFAULT_OTLP = OtlpConfig()


def to_canonical(raw: Mapping[str, Any], otlp: OtlpConfig | None = None) -> dict[str, Any]:
    """Map one input record to a canonical event dict; raises `InvalidEvent` naming the field.

    A canonical event (a `provider` and no `usage`) is returned unchanged, the same object: this is
    the ingest hot path, so it costs two dict lookups. Unknown fields are passed through, and
    `parse_event` keeps them in `metadata`. `otlp` is the `otlp:` attribution rule for span records
    (default: `OtlpConfig()`), as `POST /v1/traces` applies it.
    """
    try:
        has_usage = "usage" in raw
    except TypeError:  # a number or null, not an object: parse_event says so
        return raw  # type: ignore[return-value]
    if not has_usage:
        if "provider" in raw:
            return raw  # type: ignore[return-value]  # canonical: the same object, no copy
        return _without_usage(raw, otlp)
    if not isinstance(raw, Mapping):
        return raw  # a string or a list, not an object: parse_event says so
    return event_from_usage(raw)


def _without_usage(raw: Mapping[str, Any], otlp: OtlpConfig | None) -> dict[str, Any]:
    # No provider: a foreign form, or a canonical event that parse_event will reject as incomplete.
    if not isinstance(raw, Mapping):
        return raw
    if is_batch_result(raw):
        return event_from_usage(event_from_batch_result(raw))
    if is_litellm(raw):
        return event_from_litellm(raw)
    if is_otel(raw):
        return event_from_span(raw, otlp or _DEFAULT_OTLP)
    if "resourceSpans" in raw:  # would otherwise read "provider: is required", which says nothing of the cause
        raise InvalidEvent(
            "resourceSpans",
            "this is a whole OTLP trace export: send it to POST /v1/traces, or load it with llmcost ingest",
        )
    return raw  # type: ignore[return-value]
