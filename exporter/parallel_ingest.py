"""`llmcost ingest` of large JSON-lines files on every core.

Reading, validating and pricing an event, and making its row, is Python work that holds the GIL
(~5 µs an event, beside ~2.5 µs of SQLite), so one process tops out below what the store can take.
For a JSON-lines file this module cuts the file into chunks of lines, and worker processes (forked, so
nothing is imported twice) each parse, price and write their chunks with their own store connection.
Only line bytes go to a worker and only counts and rejections come back: events never cross a process
boundary.

Writers take turns through the store's writer turn (on SQLite, a file lock beside the database that
wakes the next writer at once; SQLite's busy handler would sleep up to 100 ms between tries). Workers
run `IngestPipeline.ingest_lines`, whose general path is the serial path's code (`IngestPipeline.prepare`,
`Store.write_events`), so validation, pricing, rejections (with their line numbers) and idempotency are
identical.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from exporter.pipeline import IngestOutcome
from exporter.readers import detect_format

if TYPE_CHECKING:
    from exporter.services import Services

CHUNK_LINES = 20_000
"""Lines per task: large enough to amortise a task, small enough to keep every worker busy."""
TAIL_CHUNK_LINES = 1_000
"""The smallest task: near the end of the file tasks shrink, so that no worker is left idle long."""
WRITE_BATCH = 10_000
"""Events per write transaction (as in the serial path)."""
MIN_PARALLEL_BYTES = 16 << 20
"""Smaller files are read by the serial path: starting workers would cost more than it saves."""

_worker: dict[str, Any] = {}


def parallel_workers() -> int:
    """Worker processes to use: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def splittable(path: Path, fmt: str, *, min_bytes: int = MIN_PARALLEL_BYTES) -> bool:
    """True for a JSON-lines file of at least `min_bytes` whose records are events or LiteLLM rows."""
    if fmt not in ("auto", "jsonl", "litellm") or path.suffix.lower() == ".csv":
        return False
    if path.stat().st_size < min_bytes:
        return False
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                try:
                    first = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return False  # a JSON document or a pretty-printed object: the serial reader knows those
                return isinstance(first, dict) and (fmt != "auto" or detect_format(first) in ("jsonl", "litellm"))
    return False


def ingest_parallel(path: Path, services: Services, workers: int) -> IngestOutcome:
    """Ingest a splittable file (see `splittable`) with `workers` processes; returns the totals.

    The workers are forked from this process and use their copy of `services` (store, price book,
    frozen garbage-collector state), so none of them opens, migrates or loads anything again; only
    database connections are new in each, as none may cross a fork.
    """
    services.store.engine.dispose()
    context = multiprocessing.get_context("fork")
    outcome = IngestOutcome()
    # Forked workers inherit `initargs` as they are: `services` is not pickled.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(services,)) as pool:
        pending: set[Future[IngestOutcome]] = set()
        for first_index, blob in file_chunks(path, workers):
            if len(pending) >= 2 * workers:  # bounded read-ahead: the file is never all in memory
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, outcome)
            pending.add(pool.submit(_ingest_chunk, first_index, blob))
        _collect(wait(pending).done, outcome)
    outcome.rejected.sort(key=lambda r: r.index)
    return outcome


def file_chunks(
    path: Path, workers: int, *, chunk_lines: int = CHUNK_LINES, tail_lines: int = TAIL_CHUNK_LINES
) -> Iterator[tuple[int, bytes]]:
    """The file as `(index of its first line, its next lines joined)` pieces of `chunk_lines` lines.

    In the last stretch of the file pieces shrink towards `tail_lines` (sized from the mean line length
    so far), so the workers finish together instead of one finishing a large piece alone.
    """
    size = path.stat().st_size
    with path.open("rb", buffering=1 << 20) as f:
        index = 0
        lines_per_piece = chunk_lines
        while lines := list(islice(f, lines_per_piece)):
            yield index, b"".join(lines)
            index += len(lines)
            left = size - f.tell()
            # Lines still to come, spread so that each worker gets two more pieces at least.
            lines_per_piece = max(tail_lines, min(chunk_lines, left * index // (f.tell() * 2 * workers) + 1))


def _collect(done: set[Future[IngestOutcome]], outcome: IngestOutcome) -> None:
    for future in done:
        outcome.add(future.result())  # re-raises a worker's StoreUnavailable


def _start_worker(services: Services) -> None:
    _worker["services"] = services


def _ingest_chunk(first_index: int, blob: bytes) -> IngestOutcome:
    # No cyclic garbage collection inside a chunk: reading, pricing and writing create no reference
    # cycles (reference counting frees it all), yet the collector would walk every young object about
    # once per 8,000 events, 6% of the work. Anything cyclic is collected between chunks.
    gc.disable()
    try:
        pipeline = _worker["services"].pipeline
        outcome = pipeline.ingest_lines(first_index, blob.split(b"\n"), batch_size=WRITE_BATCH)
    finally:
        gc.enable()
    return outcome
