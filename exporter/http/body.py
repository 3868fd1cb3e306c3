"""Request bodies: read within a size limit, then split into records (JSON object, array, or NDJSON)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from exporter.events import InvalidEvent

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/ndjson"}
JSON_TYPES = {"application/json"}


class BodyTooLarge(Exception):
    """The body exceeds the configured limit (answered 413 before reading the rest)."""


class MalformedBody(ValueError):
    """The body is not the JSON it claims to be (answered 400)."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def loads_lenient(data: bytes) -> Any:
    """orjson, falling back to the stdlib parser for NaN, Infinity and 1e999.

    Python's `json.dumps` writes NaN by default; reading such a document lets per-event validation
    reject only the event carrying the bad number instead of the whole batch.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise exc from None


def split_records(body: bytes, kind: str) -> list[tuple[int, Any]]:
    """Records as `(index, object or InvalidEvent)`; a bad NDJSON line rejects only itself."""
    if kind in NDJSON_TYPES:
        records: list[tuple[int, Any]] = []
        index = 0
        for line in body.split(b"\n"):
            if not line.strip():
                continue
            try:
                records.append((index, loads_lenient(line)))
            except orjson.JSONDecodeError as exc:
                records.append((index, InvalidEvent("", f"line is not valid JSON: {exc}")))
            index += 1
        return records
    try:
        parsed = loads_lenient(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if isinstance(parsed, list):
        return list(enumerate(parsed))
    if isinstance(parsed, dict):
        return [(0, parsed)]
    raise MalformedBody(f"body must be an event object or an array of events, got {type(parsed).__name__}")
