"""Request bodies: read within a size limit, then split into records (JSON object, array, or NDJSON)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import orjson
from starlette.requests import Request

from exporter.events import InvalidEvent

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/ndjson"}
JSON_TYPES = {"application/json"}


class BodyTooLarge(Exception):
    """The body exceeds the configured limit (answered 413 before reading the rest)."""


class MalformedBody(ValueError):
    """The body is not the JSON it claims to be (answered 400)."""


class BodyTimeout(Exception):
    """The body did not arrive within the time allowed (answered 408)."""


async def read_limited(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes.

    `BodyTimeout` when it takes longer than `timeout` seconds: a client trickling bytes holds a
    connection and a task for as long as it likes otherwise.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body was not received within {timeout:g} s") from None
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def loads_lenient(data: bytes | memoryview) -> Any:
    """orjson, falling back to the stdlib parser for NaN, Infinity and 1e999.

    Python's `json.dumps` writes NaN by default; reading such a document lets per-event validation
    reject only the event carrying the bad number instead of the whole batch.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise exc from None


class TooManyEvents(ValueError):
    """More events in one request than `ingest.max_batch_events` (answered 413)."""


def check_count(count: int, limit: int) -> None:
    """`TooManyEvents` when `count` records exceed `limit`."""
    if count > limit:
        raise TooManyEvents(f"batch has {count} events; the limit is {limit} per request")


_split_array = msgspec.json.Decoder(list[msgspec.Raw] | msgspec.Raw).decode


def split_records(body: bytes, kind: str, max_records: int) -> list[tuple[int, Any]]:
    """Records as `(index, object or InvalidEvent)`; a bad line or element rejects only itself.

    The records are counted before any is parsed (`TooManyEvents` beyond `max_records`): a JSON array
    is first split into its elements' raw bytes, each then parsed on its own, so a huge array of tiny
    elements is refused without building them, and an element too deep or not valid JSON is rejected
    alone. A body msgspec cannot split (NaN, Infinity) is parsed whole, leniently.
    """
    if kind in NDJSON_TYPES:
        check_lines(body, max_records)
        lines = [line for line in body.split(b"\n") if line.strip()]
        return [(index, _parse_one(line, "line")) for index, line in enumerate(lines)]
    try:
        split = _split_array(body)
    except (msgspec.MsgspecError, RecursionError):
        return _whole(body, max_records)
    if isinstance(split, msgspec.Raw):
        return _whole(body, max_records)
    check_count(len(split), max_records)
    return [(index, _parse_one(memoryview(raw), "element")) for index, raw in enumerate(split)]


def check_lines(body: bytes, max_records: int) -> None:
    """`TooManyEvents` when NDJSON `body` has more than `max_records` non-blank lines; nothing is built."""
    if body.count(b"\n") >= max_records:  # maybe too many: count the non-blank lines, a piece at a time
        check_count(_count_lines(body), max_records)


def _count_lines(body: bytes, piece: int = 1 << 20) -> int:
    count = 0
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + piece)
        end = len(body) if end < 0 else end
        count += sum(1 for line in body[start:end].split(b"\n") if line.strip())
        start = end + 1
    return count


def _parse_one(data: bytes | memoryview, what: str) -> Any:
    try:
        return loads_lenient(data)
    except orjson.JSONDecodeError as exc:
        return InvalidEvent("", f"{what} is not valid JSON: {exc}")


def _whole(body: bytes, max_records: int) -> list[tuple[int, Any]]:
    try:
        parsed = loads_lenient(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if isinstance(parsed, list):
        check_count(len(parsed), max_records)
        return list(enumerate(parsed))
    if isinstance(parsed, dict):
        return [(0, parsed)]
    raise MalformedBody(f"body must be an event object or an array of events, got {type(parsed).__name__}")
