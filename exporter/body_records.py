"""A request body as records (JSON object, array, or NDJSON), counted before any record is built.

A JSON parser turns every value into a Python object of 50 to 200 bytes, so the records of a body are
counted first (`TooManyEvents`), and then parsed one at a time as the pipeline asks for them: a record
is turned into its event, and the parsed dict dropped, before the next one is parsed
(docs/limits.md, "Memory per request").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson

from exporter.events import InvalidEvent

Record = tuple[int, Any]
"""`(index, parsed record or InvalidEvent)`."""


class MalformedBody(ValueError):
    """The body is not the JSON it claims to be (answered 400)."""


class TooManyEvents(ValueError):
    """More events in one request than `ingest.max_batch_events` (answered 413)."""


class TooManyValues(ValueError):
    """More JSON values in one body than `ingest.max_json_values` (answered 413, before parsing)."""


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


def check_count(count: int, limit: int) -> None:
    """`TooManyEvents` when `count` records exceed `limit`."""
    if count > limit:
        raise TooManyEvents(f"batch has {count} events; the limit is {limit} per request")


def check_lines(body: bytes, max_records: int) -> None:
    """`TooManyEvents` when NDJSON `body` has more than `max_records` non-blank lines; nothing is built."""
    if body.count(b"\n") >= max_records:  # maybe too many: count the non-blank lines, a piece at a time
        check_count(_count_lines(body), max_records)


split_array = msgspec.json.Decoder(list[msgspec.Raw] | msgspec.Raw).decode
"""A JSON array as its elements' raw bytes (views into the body), or a single value's."""


def iter_records(body: bytes, *, ndjson: bool, max_records: int) -> Iterator[Record]:
    """The records of `body`, each parsed only when the iterator reaches it; a bad one rejects only itself.

    The records are counted when this is called, before any is parsed (`TooManyEvents` beyond
    `max_records`): a JSON array is first split into its elements' raw bytes, each then parsed on its
    own, so a huge array of tiny elements is refused without building them, and an element too deep or
    not valid JSON is rejected alone. A body msgspec cannot split (NaN, Infinity) is parsed whole,
    leniently (`MalformedBody` if it is not JSON).
    """
    if ndjson:
        check_lines(body, max_records)
        return _parsed(ndjson_lines(body), "line")
    try:
        split = split_array(body)
    except (msgspec.MsgspecError, RecursionError):
        return iter(_whole(body, max_records))
    if isinstance(split, msgspec.Raw):
        return iter(_whole(body, max_records))
    check_count(len(split), max_records)
    return _parsed(split, "element")


def _parsed(raws: Any, what: str) -> Iterator[Record]:
    for index, raw in enumerate(raws):
        yield index, _parse_one(raw, what)


def ndjson_lines(body: bytes) -> Iterator[memoryview]:
    """The non-blank lines of `body`, as views into it (no copy of the body)."""
    view = memoryview(body)
    start = 0
    size = len(body)
    while start < size:
        end = body.find(b"\n", start)
        if end < 0:
            end = size
        if not body[start:end].isspace() and end > start:
            yield view[start:end]
        start = end + 1


def _count_lines(body: bytes, piece: int = 1 << 20) -> int:
    count = 0
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + piece)
        end = len(body) if end < 0 else end
        count += sum(1 for line in body[start:end].split(b"\n") if line.strip())
        start = end + 1
    return count


def _not_json(what: str, exc: orjson.JSONDecodeError, data: bytes | memoryview) -> str:
    """Why `data` is not JSON, and, when it is JSON values run together on one line, what to send instead.

    `curl -d @calls.jsonl` strips the file's newlines, so its lines arrive as `{…}{…}`: the parser's
    "unexpected content after document" alone did not say that, nor how to send the file.
    """
    message = f"{what} is not valid JSON: {exc}"
    if exc.msg == "unexpected content after document":
        after = bytes(data).decode("utf-8", "replace")[exc.pos :].lstrip()  # `pos` counts characters
        if after[:1] in ("{", "["):
            message += (
                f"; the {what} holds JSON values one after another with no newline between them: send one"
                " JSON array, or one value a line as application/x-ndjson (curl -d @FILE drops the file's"
                " newlines: use --data-binary @FILE)"
            )
    return message


def _parse_one(data: bytes | memoryview, what: str) -> Any:
    try:
        return loads_lenient(data)
    except orjson.JSONDecodeError as exc:
        return InvalidEvent("", _not_json(what, exc, data))


def _whole(body: bytes, max_records: int) -> list[Record]:
    try:
        parsed = loads_lenient(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(_not_json("body", exc, body)) from None
    if isinstance(parsed, list):
        check_count(len(parsed), max_records)
        return list(enumerate(parsed))
    if isinstance(parsed, dict):
        return [(0, parsed)]
    raise MalformedBody(f"body must be an event object or an array of events, got {type(parsed).__name__}")
