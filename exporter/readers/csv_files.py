"""CSV files: a header of canonical field names (or LiteLLM_SpendLogs columns), then one call a row.

A row says the line it starts on (`PlacedRecord.where`, `InvalidEvent.where`): a quoted cell may span
lines. Reading the lines as records, a quote never closed included, is `csv_lines`'s.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

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
from exporter.normalize.litellm import is_litellm
from exporter.readers.csv_lines import CsvLines, next_csv_record
from exporter.readers.records import NOT_UTF8, UNDECODABLE, PlacedRecord, Record, kind

# The counts of the canonical table (docs/events.md), its optional extensions included: a CSV cell is text.
_INT_COLUMNS = frozenset(
    (*TOKEN_FIELDS, CACHE_WRITE_1H, *(part for part, _ in MEDIA_FIELDS), WEB_SEARCHES, FILE_SEARCHES, CITATION_TOKENS)
)
_STRING_COLUMNS = frozenset(("request_id", "provider", "model", "status", *LABEL_FIELDS))
_LITELLM_INT_COLUMNS = frozenset(("prompt_tokens", "completion_tokens", "total_tokens"))


def csv_records(path: Path) -> Iterator[Record]:
    """Yield `(data row index, record or InvalidEvent)` for every row of a CSV file."""
    # utf-8-sig: spreadsheets write a byte-order mark that would otherwise stick to the first header.
    # surrogateescape: a byte that is not UTF-8 (a file saved as Latin-1) rejects its own row, with the
    # reason, instead of aborting the whole file halfway with a decoding error.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        lines = CsvLines(f)
        # csv.reader rather than DictReader: a row is read in one step, so the lines counted before the
        # step end on the line before the row's (DictReader skips blank lines inside one step).
        reader = csv.reader(lines)
        header: list[str] | None = None
        index = 0
        while True:
            where = f"line {lines.count + 1}"
            lines.start_record()
            try:
                cells = next_csv_record(reader)
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
                yield index, InvalidEvent("", NOT_UTF8, where)
            else:
                try:
                    yield index, PlacedRecord.at(csv_row_event(row), where)
                except InvalidEvent as exc:
                    yield index, InvalidEvent(exc.field, exc.reason, where)
            index += 1


def _csv_row(header: list[str], cells: list[str]) -> dict[Any, Any]:
    """The row as `csv.DictReader` makes it: cells by header; cells beyond the header under None, as a list."""
    row: dict[Any, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        row[None] = cells[len(header) :]
    else:
        row.update((key, None) for key in header[len(cells) :])
    return row


def _has_undecodable(row: dict[Any, Any]) -> bool:
    """True when a header or cell of the row holds a byte that was not UTF-8 (a lone surrogate escape)."""
    for key, value in row.items():
        for text in (key, *(value if isinstance(value, list) else (value,))):
            if isinstance(text, str) and UNDECODABLE.search(text):
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
        raise InvalidEvent(key, f"must be a JSON object, got {kind(value)}")
    return value
