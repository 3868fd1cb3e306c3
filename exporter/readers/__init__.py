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

One module a concern: `json_files` (JSON lines and documents), `usage_objects` (recorded provider
responses), `otlp_files` (OpenTelemetry exports), `csv_files` (CSV rows) with `csv_lines` (its records
read line by line, recovered past a bad quote), and `records` (what they all yield).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent
from exporter.normalize.litellm import is_litellm
from exporter.normalize.otel import is_otel
from exporter.readers.csv_files import csv_records, csv_row_event
from exporter.readers.json_files import json_line, json_values
from exporter.readers.otlp_files import otel_records
from exporter.readers.records import PlacedRecord, Record
from exporter.readers.usage_objects import usage_record_event, usage_records

__all__ = [
    "FORMATS",
    "PlacedRecord",
    "Record",
    "csv_row_event",
    "detect_format",
    "iter_file_records",
    "json_line",
    "usage_record_event",
]

FORMATS = ("auto", "jsonl", "csv", "litellm", "openai-usage", "otel")


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
        return csv_records(path)
    values = json_values(path)
    rule = otlp or OtlpConfig()
    if fmt == "auto":
        return _auto(values, rule)
    if fmt == "openai-usage":
        return usage_records(values)
    if fmt == "otel":
        return otel_records(values, rule)
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
        return usage_records(chained)
    if fmt == "otel":
        return otel_records(chained, rule)
    return chained


def _chain(head: list[Record], rest: Iterator[Record]) -> Iterator[Record]:
    yield from head
    yield from rest
