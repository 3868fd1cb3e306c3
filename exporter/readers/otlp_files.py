"""OpenTelemetry files: OTLP trace exports, one span record per model-call span, and spans of their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent
from exporter.normalize.otel import attribution, decode_attributes, is_model_call_span, is_otel, span_counts
from exporter.readers.records import PlacedRecord, Record


def otel_records(values: Iterator[Record], rule: OtlpConfig) -> Iterator[Record]:
    """The span records of OTLP exports, attributed by `rule`, and the records that are spans already."""
    # Records keep the index of the line (or object, or element) they came from, as every other format does:
    # `llmcost ingest` says "record N" for line N of a JSON-lines file, and the readers' own "line N" agrees.
    for index, value in values:
        if isinstance(value, InvalidEvent) or "resourceSpans" not in value:
            # A bad line, or a span / attribute dict of its own (the SDK's `to_json`, its console exporter):
            # skipped as in an export when it is no model call to count (an HTTP span, a stream without usage).
            if isinstance(value, InvalidEvent) or not is_otel(value) or span_counts(value):
                yield index, value
            continue
        try:
            spans = list(_otlp_spans(value, rule))
        except (InvalidEvent, AttributeError, TypeError) as exc:
            yield index, InvalidEvent("resourceSpans", f"line {index + 1}: not an OTLP trace export ({exc})")
            continue
        for span in spans:
            if span is not None:
                yield index, span


def _otlp_spans(doc: dict[str, Any], rule: OtlpConfig) -> Iterator[PlacedRecord | None]:
    """Yield every span of an OTLP JSON export as a span record, None for non-model-call spans.

    Each record carries the `service` and `project` the attribution `rule` finds, as the receiver's do,
    and `where` it is in the export: "span N of this export (span id …)", N counting every span from 1.
    """
    position = 0
    for resource_spans in doc.get("resourceSpans") or ():
        resource = decode_attributes((resource_spans.get("resource") or {}).get("attributes") or ())
        # `instrumentationLibrarySpans` is the pre-1.0 name of `scopeSpans`.
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or ()
        for scope in scopes:
            for span in scope.get("spans") or ():
                position += 1
                attributes = decode_attributes(span.get("attributes") or ())
                if not is_model_call_span(attributes, span.get("status")):
                    yield None  # HTTP, database, agent and tool spans, a model call without usage: as the receiver
                    continue
                found = attribution(rule.service_attributes, rule.project_attributes, attributes, resource)
                span_id = span.get("spanId")
                named = f" (span id {span_id})" if isinstance(span_id, str) and span_id else ""
                fields = {**span, "attributes": attributes, "resource": {"attributes": resource}, **found}
                yield PlacedRecord.at(fields, f"span {position} of this export{named}")
