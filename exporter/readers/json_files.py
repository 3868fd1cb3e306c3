"""JSON files: JSON lines, or one document (an array, a pretty-printed object, objects one after another).

JSON lines are read one at a time, so memory stays flat however long the file is; a file holding one
JSON document is parsed whole, up to `MAX_DOCUMENT_BYTES`. A record is a JSON object; anything else,
and a line that is not JSON, is an `InvalidEvent` saying why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from exporter.events import InvalidEvent
from exporter.readers.records import NOT_UTF8, UNDECODABLE, Record, kind

# A whole-document JSON file is parsed in memory; beyond this it must be JSON lines.
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
_BUFFER = 1 << 20


def json_values(path: Path) -> Iterator[Record]:
    """Yield JSON lines as `(line index, dict)`; a file that is one JSON document is read whole."""
    with path.open("rb", buffering=_BUFFER) as f:
        if f.read(64).lstrip().startswith(b"["):
            yield from _document_items(path)
            return
        f.seek(0)
        first = True
        for index, line in enumerate(f):
            record = json_line(index, line)
            if record is None:
                continue
            if first:
                first = False
                # A first line opening an object it does not close: maybe one pretty-printed object,
                # such as an OTLP export, rather than JSON lines.
                if isinstance(record[1], InvalidEvent) and line.lstrip().startswith(b"{"):
                    doc = _parse_document(path)
                    if isinstance(doc, dict):
                        yield 0, doc
                        return
                    # Pretty-printed objects one after another: what the OpenTelemetry SDK's
                    # ConsoleSpanExporter prints, redirected to a file.
                    objects = _concatenated_objects(path)
                    if objects is not None:
                        yield from objects
                        return
            yield record


def json_line(index: int, line: bytes) -> Record | None:
    """Line `index` of a JSON-lines file as a record (an `InvalidEvent` if it is not an object); None if blank."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return None
        return index, InvalidEvent("", f"line {index + 1}: {_not_json(line, exc)}")
    if type(obj) is dict:
        return index, obj
    return index, InvalidEvent("", f"line {index + 1}: a record must be a JSON object, got {kind(obj)}")


def _not_json(line: bytes, exc: ValueError) -> str:
    """Why a line is not JSON: as a file saved in another encoding than UTF-8, or in the parser's words.

    orjson's own words for a byte that is not UTF-8 ("str is not valid UTF-8: surrogates not allowed")
    do not say what to do; the CSV reader's do.
    """
    try:
        line.decode()
    except UnicodeDecodeError:
        return NOT_UTF8
    return f"not valid JSON ({exc})"


def _parse_document(path: Path) -> Any:
    """Parse the file as one JSON value; an `InvalidEvent` when it is too large or not JSON."""
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        return InvalidEvent("", f"{path.name} is one JSON document over {MAX_DOCUMENT_BYTES >> 20} MiB; use JSON lines")
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return InvalidEvent("", f"not valid JSON or JSON lines ({exc})")


def _concatenated_objects(path: Path) -> list[Record] | None:
    """The JSON objects of a file that holds several one after another (not one per line); None if it does not.

    Read whole, as one document is. An object with a control character in a string (a NUL byte) or a byte
    that is not UTF-8 is rejected alone. Any other object that cannot be read ends the file: where the
    next one starts is unknown, so the rest is one rejection.
    """
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        return None
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    decoder = json.JSONDecoder()
    # Takes control characters in strings: where an object that holds one ends, so the next is read.
    lenient = json.JSONDecoder(strict=False)
    records: list[Record] = []
    at = _skip_space(text, 0)
    while at < len(text):
        try:
            obj, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            if not records:
                return None
            try:
                _, end = lenient.raw_decode(text, at)
            except json.JSONDecodeError:
                reason = f"not valid JSON after object {len(records)} ({exc})"
                records.append((len(records), InvalidEvent("", reason)))
                break
            records.append((len(records), InvalidEvent("", f"not valid JSON ({exc})")))
            at = _skip_space(text, end)
            continue
        if UNDECODABLE.search(text, at, end):
            records.append((len(records), InvalidEvent("", NOT_UTF8)))
        elif type(obj) is dict:
            records.append((len(records), obj))
        else:
            records.append((len(records), InvalidEvent("", f"a record must be a JSON object, got {kind(obj)}")))
        at = _skip_space(text, end)
    return records if len(records) > 1 else None


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _document_items(path: Path) -> Iterator[Record]:
    doc = _parse_document(path)
    if isinstance(doc, InvalidEvent):
        yield 0, doc
        return
    for index, obj in enumerate(doc if isinstance(doc, list) else [doc]):
        if type(obj) is dict:
            yield index, obj
        else:
            yield (
                index,
                InvalidEvent("", f"a record must be a JSON object, got {kind(obj)}"),
            )
