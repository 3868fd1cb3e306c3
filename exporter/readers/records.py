"""What every reader yields, `(index, record)` pairs, and what their rejections share."""

from __future__ import annotations

import re
from typing import Any

from exporter.events import InvalidEvent

Record = tuple[int, dict[str, Any] | InvalidEvent]

UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a non-UTF-8 byte
NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"


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


def kind(obj: Any) -> str:
    """The JSON name of a parsed value's type, as a rejection says what it got (`got array`)."""
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(obj), "null")
