"""Recorded provider responses (`openai-usage`): a response's `usage` object with where it was sent, as an event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from exporter.events import InvalidEvent
from exporter.normalize.anthropic import merge_stream_usage
from exporter.normalize.providers import from_host
from exporter.readers.records import Record

_MODEL_IN_URI = re.compile(r"/model/([^/]+)")


def usage_records(values: Iterator[Record]) -> Iterator[Record]:
    """The usage events of recorded responses, keeping their indexes and the records that cannot be read."""
    # An Anthropic stream is recorded as message_start then message_delta under one source: one call,
    # so the two are merged into one event (the delta's counts are cumulative and win).
    start: tuple[int, dict[str, Any]] | None = None
    for index, record in values:
        if start is not None:
            start_index, start_record = start
            start = None
            if isinstance(record, dict) and _continues(start_record, record):
                merged = merge_stream_usage(start_record["usage"], record["usage"])
                yield start_index, usage_record_event({**start_record, "usage": merged, "object": "message"})
                continue
            yield start_index, usage_record_event(start_record)
        if isinstance(record, InvalidEvent):
            yield index, record
        elif record.get("object") == "message_start" and isinstance(record.get("usage"), dict):
            start = index, record
        else:
            yield index, usage_record_event(record)
    if start is not None:
        yield start[0], usage_record_event(start[1])


def _continues(start: dict[str, Any], record: dict[str, Any]) -> bool:
    return (
        record.get("object") == "message_delta"
        and record.get("source") == start.get("source")
        and isinstance(record.get("usage"), dict)
    )


def usage_record_event(record: dict[str, Any]) -> dict[str, Any] | InvalidEvent:
    """Turn a recorded response (`host`, `request_model`, `usage`, …) into a usage event."""
    usage = record.get("usage")
    if usage is None:
        return InvalidEvent("usage", "is missing: a recorded response without usage cannot be counted")
    event: dict[str, Any] = {"usage": usage}
    host = record.get("host") or urlsplit(str(record.get("uri") or "")).netloc
    if isinstance(host, str) and host:
        event["provider"] = from_host(host)
    model = record.get("response_model") or record.get("request_model") or _model_from_uri(record.get("uri"))
    if model is not None:
        event["model"] = _hf_routed(model, event.get("provider"), record.get("uri"))
    source = record.get("source")
    if isinstance(source, str) and source:
        # Stable across replays, and short whatever the source path's length.
        event["request_id"] = "rec-" + hashlib.blake2b(source.encode(), digest_size=12).hexdigest()
    if record.get("date") is not None:
        event["timestamp"] = record["date"]
    status = record.get("status")
    if type(status) is int and status >= 400:
        event["status"] = "error"
    event["metadata"] = {key: record[key] for key in ("source", "host", "object") if record.get(key) is not None}
    return event


def _hf_routed(model: Any, provider: Any, uri: Any) -> Any:
    """A Hugging Face router call's model named with the provider that served it: `model:together`.

    The router serves a model through the provider its URL path names (`router.huggingface.co/together/v1/…`)
    and bills that provider's price; the response names the model alone. `model:provider` is the router's
    own spelling of the same choice, and how the price book finds that provider's price.
    """
    if provider != "huggingface" or not isinstance(model, str) or ":" in model or not isinstance(uri, str):
        return model
    route = urlsplit(uri).path.strip("/").split("/", 1)[0]
    return f"{model}:{route}" if route and route != "v1" else model


def _model_from_uri(uri: Any) -> str | None:
    # Bedrock names the model only in the path: /model/{modelId}/converse.
    match = _MODEL_IN_URI.search(uri) if isinstance(uri, str) else None
    return unquote(match.group(1)) if match else None
