"""The lines of a CSV file as records: the cell limit raised for one read, and recovery past a bad quote.

Alone, the csv module would read on from the middle of a record it failed in, and would read a quote
never closed through to the end of the file as one record; `CsvLines` counts the lines and hands the
reader every record from its real start, so one bad record is rejected alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from exporter.events import InvalidEvent

# The largest CSV cell read. LiteLLM's spend logs carry the whole prompt and response in their
# `messages`, `response` and `proxy_server_request` columns, far past Python's 128 KiB default; llmcost
# keeps none of that text (only the usage columns), but has to read past it to reach them. The bound
# still stops a quote never closed from reading the rest of a large file into one cell.
MAX_CSV_CELL_CHARS = 64 * 1024 * 1024


class CsvLines:
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

    def __iter__(self) -> CsvLines:
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


def next_csv_record(reader: Iterator[list[str]]) -> list[str] | None:
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
