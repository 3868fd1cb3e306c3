"""OTLP trace exports (protobuf or JSON) → usage records, one per span that carries GenAI usage.

Both encodings are decoded with the official `opentelemetry-proto` messages: OTLP/JSON differs from
protobuf's own JSON mapping only in its trace and span ids (hex, not base64), which are rewritten
before parsing. Each span whose attributes carry GenAI token counts becomes the span record
`exporter.normalize.otel.event_from_span` reads, so the OTLP receiver, `llmcost ingest --format otel`
and posted span attributes share one mapping. Spans without usage (HTTP, database, framework spans) and
agent or tool spans (their usage adds up the model calls below them) are skipped and counted, never
rejected.

Attribution follows `OtlpConfig`: the first of `service_attributes` / `project_attributes` found on the
span, else on its resource, names the event's `service` / `project`.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent
from exporter.normalize.otel import attribution, event_from_span, is_model_call_span

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class MalformedExport(ValueError):
    """The body is not an OTLP trace export (answered 400)."""


class DecompressedTooLarge(ValueError):
    """A compressed body inflates past the limit (answered 413, without inflating the rest)."""


@dataclass
class SpanRecords:
    """What one export holds: usage records by span position, and how many spans were skipped."""

    records: list[tuple[int, Any]]
    skipped: int
    spans: int


def gunzip_limited(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing as soon as the output would pass `limit` bytes (a zip bomb)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedExport(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise DecompressedTooLarge(f"body inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise MalformedExport("gzip body is truncated")
    return out


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """An `ExportTraceServiceRequest` from its protobuf encoding."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError) as exc:
        raise MalformedExport(f"body is not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    return request


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """An `ExportTraceServiceRequest` from OTLP/JSON (hex ids, lowerCamelCase names)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedExport(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedExport(f"body must be an ExportTraceServiceRequest object, got {type(doc).__name__}")
    try:
        _hex_ids_to_base64(doc)
        request = ExportTraceServiceRequest()
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, InvalidEvent, TypeError, AttributeError) as exc:
        raise MalformedExport(f"body is not an OTLP/JSON trace export: {exc}") from None
    return request


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    # Protobuf's JSON mapping reads `bytes` as base64; OTLP/JSON writes trace and span ids as hex.
    for resource_spans in doc.get("resourceSpans") or ():
        for scope in resource_spans.get("scopeSpans") or ():
            for span in scope.get("spans") or ():
                _rewrite_ids(span)
                for link in span.get("links") or ():
                    _rewrite_ids(link)


def _rewrite_ids(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise InvalidEvent(key, f"must be a hex string, got {value[:40]!r}") from None


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP `AnyValue`."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    """A repeated `KeyValue` as a plain dict."""
    return {kv.key: any_value(kv.value) for kv in items}


def span_records(request: ExportTraceServiceRequest, config: OtlpConfig) -> SpanRecords:
    """Usage records (canonical dicts, or `InvalidEvent` for a usage span that cannot be read) by span index."""
    records: list[tuple[int, Any]] = []
    skipped = 0
    index = 0
    for resource, span in _spans(request):
        attrs = attributes(span.attributes)
        if not is_model_call_span(attrs, {"code": span.status.code}):
            skipped += 1
        else:
            records.append((index, _record(span, attrs, resource, config)))
        index += 1
    return SpanRecords(records, skipped, index)


def _spans(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, Any], Any]]:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                yield resource, span


def _record(span: Any, attrs: dict[str, Any], resource: Mapping[str, Any], config: OtlpConfig) -> Any:
    record = {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "name": span.name,
        "startTimeUnixNano": span.start_time_unix_nano or None,
        "endTimeUnixNano": span.end_time_unix_nano or None,
        "status": {"code": span.status.code},
        "attributes": attrs,
    }
    try:
        event = event_from_span(record)
    except InvalidEvent as exc:
        return exc
    event.update(attribution(config.service_attributes, config.project_attributes, attrs, resource))
    return event


def export_response(rejected: int, message: str) -> ExportTraceServiceResponse:
    """The OTLP answer: an empty `partial_success` when all was taken, else the count and why."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response


def response_json(response: ExportTraceServiceResponse) -> dict[str, Any]:
    """The OTLP/JSON form of a response (int64 counts as numbers would be read as strings too)."""
    out: dict[str, Any] = {}
    if response.HasField("partial_success"):
        out["partialSuccess"] = {
            "rejectedSpans": response.partial_success.rejected_spans,
            "errorMessage": response.partial_success.error_message,
        }
    return out


def status_protobuf(code: int, message: str) -> bytes:
    """A `google.rpc.Status` (code, message) in protobuf, as OTLP/HTTP wants for 4xx and 5xx bodies.

    Two scalar fields, encoded by hand rather than adding googleapis-common-protos for one message.
    """
    encoded = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(encoded)) + encoded


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
