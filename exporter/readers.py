"""Reading recorded calls from files, one raw record at a time.

`iter_file_records` streams a file and yields `(index, record)` pairs: the raw record dict, ready for
`exporter.normalize.to_canonical`, or an `InvalidEvent` for a record that cannot even be read (bad
JSON, a CSV cell that is not a number). One bad record never stops the file. JSONL, CSV and
OTLP-JSONL files are read line by line, so memory stays flat however long the file is; a file holding
one JSON document (an array, a pretty-printed OTLP export) has to be parsed whole.

`index` is the 0-based position of the record: the line number minus one for JSON lines, the data
row for CSV (the header is not counted), the element of a JSON array; the spans of an OpenTelemetry
export share the index of the export (its line, in a JSON-lines file) and say which span they are
(`PlacedRecord.where`). A CSV row says the line it starts on (`PlacedRecord.where`, `InvalidEvent.where`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from exporter.config import OtlpConfig
from exporter.events import (
    CACHE_WRITE_1H,
    CITATION_TOKENS,
    FILE_SEARCHES,
    LABEL_FIELDS,
    MEDIA_FIELDS,
    TOKEN_FIELDS,
    WEB_SEARCHES,
    InvalidEvent,
)
from exporter.normalize.anthropic import merge_stream_usage
from exporter.normalize.litellm import is_litellm
from exporter.normalize.otel import attribution, decode_attributes, is_model_call_span, is_otel, span_counts
from exporter.normalize.providers import from_host

FORMATS = ("auto", "jsonl", "csv", "litellm", "openai-usage", "otel")

Record = tuple[int, dict[str, Any] | InvalidEvent]

# A whole-document JSON file is parsed in memory; beyond this it must be JSON lines.
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
# The largest CSV cell read. LiteLLM's spend logs carry the whole prompt and response in their
# `messages`, `response` and `proxy_server_request` columns, far past Python's 128 KiB default; llmcost
# keeps none of that text (only the usage columns), but has to read past it to reach them. The bound
# still stops a quote never closed from reading the rest of a large file into one cell.
MAX_CSV_CELL_CHARS = 64 * 1024 * 1024
_BUFFER = 1 << 20
# The counts of the canonical table (docs/events.md), its optional extensions included: a CSV cell is text.
_INT_COLUMNS = frozenset(
    (*TOKEN_FIELDS, CACHE_WRITE_1H, *(part for part, _ in MEDIA_FIELDS), WEB_SEARCHES, FILE_SEARCHES, CITATION_TOKENS)
)
_STRING_COLUMNS = frozenset(("request_id", "provider", "model", "status", *LABEL_FIELDS))
_LITELLM_INT_COLUMNS = frozenset(("prompt_tokens", "completion_tokens", "total_tokens"))
_MODEL_IN_URI = re.compile(r"/model/([^/]+)")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a non-UTF-8 byte
_NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"


def iter_file_records(
    path: str | os.PathLike[str], fmt: str = "auto", *, otlp: OtlpConfig | None = None
) -> Iterator[Record]:
    """Yield `(index, raw record dict or InvalidEvent)` for every record in the file.

    `otlp` is the `otlp:` attribution rule (default: `OtlpConfig()`), applied to the spans of an OTLP
    export as `POST /v1/traces` applies it.

    `fmt` is one of `FORMATS`; `auto` picks CSV by the `.csv` extension and otherwise looks at the
    first record. `litellm` reads a `.csv` file as CSV too: LiteLLM's spend logs are exported from
    PostgreSQL that way (`llmcost ingest --format litellm spend_logs.csv`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt == "csv" or (fmt in ("auto", "litellm") and path.suffix.lower() == ".csv"):
        return _csv_records(path)
    values = _json_values(path)
    rule = otlp or OtlpConfig()
    if fmt == "auto":
        return _auto(values, rule)
    if fmt == "openai-usage":
        return _usage_records(values)
    if fmt == "otel":
        return _otel_records(values, rule)
    return values  # jsonl, litellm: the dicts themselves; to_canonical recognises LiteLLM rows


def detect_format(record: dict[str, Any]) -> str:
    """Guess the format of a JSON file from its first record."""
    if "resourceSpans" in record:
        return "otel"
    if "host" in record and "usage" in record and ("request_model" in record or "response_model" in record):
        return "openai-usage"
    if "provider" not in record and "usage" not in record:
        if is_litellm(record):
            return "litellm"
        if is_otel(record):
            return "otel"
    return "jsonl"


def _auto(values: Iterator[Record], rule: OtlpConfig) -> Iterator[Record]:
    # Judge by the first readable record; after many unreadable ones give up and read JSON lines.
    first: list[Record] = []
    for item in values:
        first.append(item)
        if not isinstance(item[1], InvalidEvent) or len(first) >= 1000:
            break
    chained = _chain(first, values)
    record = first[-1][1] if first else None
    fmt = detect_format(record) if isinstance(record, dict) else "jsonl"
    if fmt == "openai-usage":
        return _usage_records(chained)
    if fmt == "otel":
        return _otel_records(chained, rule)
    return chained


def _chain(head: list[Record], rest: Iterator[Record]) -> Iterator[Record]:
    yield from head
    yield from rest


# --- JSON: lines, or one document --------------------------------------------------------------


def _json_values(path: Path) -> Iterator[Record]:
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
    return index, InvalidEvent("", f"line {index + 1}: a record must be a JSON object, got {_kind(obj)}")


def _not_json(line: bytes, exc: ValueError) -> str:
    """Why a line is not JSON: as a file saved in another encoding than UTF-8, or in the parser's words.

    orjson's own words for a byte that is not UTF-8 ("str is not valid UTF-8: surrogates not allowed")
    do not say what to do; the CSV reader's do.
    """
    try:
        line.decode()
    except UnicodeDecodeError:
        return _NOT_UTF8
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
        if _UNDECODABLE.search(text, at, end):
            records.append((len(records), InvalidEvent("", _NOT_UTF8)))
        elif type(obj) is dict:
            records.append((len(records), obj))
        else:
            records.append((len(records), InvalidEvent("", f"a record must be a JSON object, got {_kind(obj)}")))
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
                InvalidEvent("", f"a record must be a JSON object, got {_kind(obj)}"),
            )


def _kind(obj: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(obj), "null")


# --- recorded provider responses (openai-usage) --------------------------------------------------


def _usage_records(values: Iterator[Record]) -> Iterator[Record]:
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


class PlacedRecord(dict[str, Any]):
    """A record with `where` it is inside the record its index names (put before a rejection's reason).

    The spans of an OTLP export share the export's index (its line of a JSON-lines file, as a Collector's
    file exporter writes them) and say which span they are: `span 2 of this export (span id …)`. A CSV
    record is numbered by its data row, and a quoted cell may span several lines (a JSON `metadata` cell
    written over many), so it says the line it starts on: `line 8`.
    """

    where: str = ""

    @classmethod
    def at(cls, fields: dict[str, Any], where: str) -> PlacedRecord:
        """`fields` as a record placed `where`."""
        record = cls(fields)
        record.where = where
        return record


# --- OpenTelemetry -------------------------------------------------------------------------------


def _otel_records(values: Iterator[Record], rule: OtlpConfig) -> Iterator[Record]:
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


# --- CSV -----------------------------------------------------------------------------------------


def _csv_records(path: Path) -> Iterator[Record]:
    # utf-8-sig: spreadsheets write a byte-order mark that would otherwise stick to the first header.
    # surrogateescape: a byte that is not UTF-8 (a file saved as Latin-1) rejects its own row, with the
    # reason, instead of aborting the whole file halfway with a decoding error.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        lines = _CsvLines(f)
        # csv.reader rather than DictReader: a row is read in one step, so the lines counted before the
        # step end on the line before the row's (DictReader skips blank lines inside one step).
        reader = csv.reader(lines)
        header: list[str] | None = None
        index = 0
        while True:
            where = f"line {lines.count + 1}"
            lines.start_record()
            try:
                cells = _next_csv_record(reader)
            except csv.Error as exc:
                # The csv module gives up on a record it cannot read (a cell over csv.field_size_limit()):
                # that record alone is rejected, and reading goes on from the next one.
                lines.skip_rest_of_record()
                if header is None:
                    reason = f"the header row cannot be read as CSV ({exc}), so no row of the file can be"
                    yield index, InvalidEvent("", reason, where)
                    return
                yield index, InvalidEvent("", f"cannot be read as CSV ({exc})", where)
                index += 1
                continue
            if cells is None:
                return
            if not cells:  # a blank line, skipped as DictReader does
                continue
            unclosed = lines.unclosed_quote(header)
            if unclosed is not None:
                if header is None:
                    yield index, InvalidEvent(unclosed.field, f"the header row: {unclosed.reason}", where)
                    return
                yield index, InvalidEvent(unclosed.field, unclosed.reason, where)
                index += 1
                continue
            if header is None:
                header = cells
                continue
            row = _csv_row(header, cells)
            if _has_undecodable(row):
                yield index, InvalidEvent("", _NOT_UTF8, where)
            else:
                try:
                    yield index, PlacedRecord.at(csv_row_event(row), where)
                except InvalidEvent as exc:
                    yield index, InvalidEvent(exc.field, exc.reason, where)
            index += 1


class _CsvLines:
    """A CSV file's lines as `csv.reader` takes them: counted, and those of the record being read kept.

    When the csv module fails in a record it has read the record up to the line it failed on, and would
    start the next record on the line after: inside the failed record still, when a quoted cell spans
    lines, where it would read the rest of the cell as records and its closing quote as the opening of
    a cell that swallows the good records after it. `skip_rest_of_record` reads on to the failed
    record's real end, so the next record is read from its start. Our own count, not the reader's
    `line_num`, numbers the lines: the reader does not see the ones skipped.

    A quote that never closes is the opposite case: the csv module (not strict) reads on through every
    line after it, to the end of the file or to a later quote, as one record. `unclosed_quote` finds
    such a record and gives back all its lines but the first, to be read again as records of their own.
    """

    def __init__(self, f: Iterator[str]) -> None:
        self._lines = f
        self._record: list[str] = []
        self._again: list[str] = []  # lines given back, the next one last
        self.count = 0
        """Lines read so far: the next record starts on line `count + 1`."""

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else next(self._lines)
        self.count += 1
        self._record.append(line)
        return line

    def start_record(self) -> None:
        """Forget the lines kept: the reader is about to read a record from the next line."""
        self._record.clear()

    def skip_rest_of_record(self) -> None:
        """Read past the lines left of the record the reader failed in (those its quoted cell spans)."""
        quoted = False
        for line in self._record:
            quoted = _ends_in_quoted_cell(line, quoted)
        self._record.clear()
        while quoted and (more := next(self, None)) is not None:
            quoted = _ends_in_quoted_cell(more, quoted)
        self._record.clear()

    def unclosed_quote(self, header: list[str] | None) -> InvalidEvent | None:
        """Why the record just read is not one (a quoted cell never closed), or None when it is.

        A quoted cell may span lines (LiteLLM's spend logs hold whole prompts): such a record is kept when
        it reads as CSV strictly, every closing quote followed by a comma or a line's end. One that does
        not was read on past a quote that never closed, to the end of the file or into a later record's
        quoted cell: its first line is the record rejected, and the lines after it are given back to be
        read as records (each of them rejected alone if it is not one).
        """
        if len(self._record) < 2 or _reads_strictly(self._record):
            return None
        first, *rest = self._record
        self._record.clear()
        end = f"line {self.count}" + (" (the end of the file)" if self._at_end() else "")
        self._again.extend(reversed(rest))
        self.count -= len(rest)
        cell = _open_quoted_cell(first)
        field = header[cell] if header is not None and cell is not None and cell < len(header) else ""
        named = f"cell {cell + 1}" if cell is not None else "a cell"
        many = f"{len(rest)} line{'s' if len(rest) != 1 else ''}"
        reason = (
            f"the quote opening {named} on this line is never closed (a quoted cell ends with a quote followed "
            f"by a comma or the line's end), so the cell ran over the next {many}, to {end}; this row is "
            "rejected and those lines are read as rows of their own"
        )
        return InvalidEvent(field, reason)

    def _at_end(self) -> bool:
        """Whether the file has no line left (the one looked at is kept to be read next)."""
        if self._again:
            return False
        more = next(self._lines, None)
        if more is not None:
            self._again.append(more)
        return more is None


def _reads_strictly(lines: list[str]) -> bool:
    """Whether the lines read as CSV with `strict=True`: no quote is left open, none is followed by text."""
    before = csv.field_size_limit(MAX_CSV_CELL_CHARS)
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error:
        return False
    finally:
        csv.field_size_limit(before)
    return True


def _open_quoted_cell(line: str) -> int | None:
    """The index of the cell whose quote is still open at the end of `line` (a record's first), if one is."""
    at, end, cell = 0, len(line), 0
    while at < end:
        if line.startswith('"', at):
            opened = cell
            at += 1
            while True:
                close = line.find('"', at)
                if close < 0:
                    return opened
                if not line.startswith('"', close + 1):
                    break
                at = close + 2
            at = close + 1
        comma = line.find(",", at)
        if comma < 0:
            return None
        at, cell = comma + 1, cell + 1
    return None


def _ends_in_quoted_cell(line: str, quoted: bool) -> bool:
    """Whether a CSV record is inside a quoted cell at the end of `line` (and so goes on to the next line).

    `quoted`: whether the line starts inside one (else it starts a record). Read as `csv.reader` reads
    the default dialect: a quote opens a cell only at its start (elsewhere in an unquoted cell it is a
    character of the cell), `""` in a quoted cell is a quote, and the cell closes at the next lone quote.
    """
    at, end = 0, len(line)
    while at < end:
        if quoted:
            close = line.find('"', at)
            if close < 0:
                return True
            quoted = line.startswith('"', close + 1)  # a doubled quote: still inside
            at = close + 2 if quoted else close + 1
            if not quoted:  # the rest of the cell, up to its comma, is unquoted text
                at = _next_cell(line, at)
        elif line.startswith('"', at):
            quoted, at = True, at + 1
        else:
            at = _next_cell(line, at)
    return quoted


def _next_cell(line: str, at: int) -> int:
    """Where the cell after the unquoted text at `at` starts (the line's end when it is the last)."""
    comma = line.find(",", at)
    return len(line) if comma < 0 else comma + 1


def _csv_row(header: list[str], cells: list[str]) -> dict[Any, Any]:
    """The row as `csv.DictReader` makes it: cells by header; cells beyond the header under None, as a list."""
    row: dict[Any, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        row[None] = cells[len(header) :]
    else:
        row.update((key, None) for key in header[len(cells) :])
    return row


def _next_csv_record(reader: Iterator[list[str]]) -> list[str] | None:
    """The reader's next record (None at the end), read with the cell limit raised to MAX_CSV_CELL_CHARS.

    `csv.field_size_limit` is one setting for the whole process (128 KiB by default): it is raised
    around this one read only and put back at once, so no other CSV reading in the process sees it. A
    record with a cell past the limit still raises `csv.Error`, for the caller to reject that record alone.
    """
    before = csv.field_size_limit(MAX_CSV_CELL_CHARS)
    try:
        return next(reader, None)
    finally:
        csv.field_size_limit(before)


def _has_undecodable(row: dict[Any, Any]) -> bool:
    """True when a header or cell of the row holds a byte that was not UTF-8 (a lone surrogate escape)."""
    for key, value in row.items():
        for text in (key, *(value if isinstance(value, list) else (value,))):
            if isinstance(text, str) and _UNDECODABLE.search(text):
                return True
    return False


def csv_row_event(row: dict[str, Any]) -> dict[str, Any]:
    """Turn one CSV row (header = canonical field names, or LiteLLM_SpendLogs columns) into a record.

    An empty cell is absent. Token counts become integers and `latency_ms` a number; `cost_usd` stays
    text so money stays exact (`parse_event` reads it as a Decimal); `timestamp` becomes epoch seconds
    when numeric; `metadata` is parsed as a JSON object.
    """
    event: dict[str, Any] = {}
    # A LiteLLM_SpendLogs row exported as CSV: its token and duration columns are numbers too (its
    # `spend` stays text, exact as `cost_usd`; its JSON columns are parsed where the mapping reads them).
    litellm = is_litellm(row)
    for key, value in row.items():
        if key is None:  # a row with more cells than the header
            raise InvalidEvent("", f"has {len(value)} more cells than the header")
        if value is None or value == "":
            continue
        text = value.strip()
        if not text:
            continue
        if key in _STRING_COLUMNS or key == "cost_usd":
            event[key] = text
        elif key in _INT_COLUMNS or (litellm and key in _LITELLM_INT_COLUMNS):
            event[key] = _csv_int(key, text)
        elif key == "latency_ms" or (litellm and key == "request_duration_ms"):
            event[key] = _csv_float(key, text)
        elif key == "timestamp":
            event[key] = _number_or_text(text)
        elif key == "metadata":
            event[key] = _csv_json_object(key, text)
        else:
            event[key] = value
    return event


def _csv_int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    number = _csv_float(key, text)
    if not number.is_integer():
        raise InvalidEvent(key, f"must be a whole number, got {text[:32]!r}")
    return int(number)


def _csv_float(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidEvent(key, f"is not a number: {text[:32]!r}") from None


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _csv_json_object(key: str, text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidEvent(key, "is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidEvent(key, f"must be a JSON object, got {_kind(value)}")
    return value
