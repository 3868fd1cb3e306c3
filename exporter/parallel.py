"""Parallel file ingest: JSON lines are validated and priced in worker processes, written by this one.

One core cannot read, validate, price and write 100k events a second in Python; validation and
pricing need no shared state, so worker processes do them on chunks of raw lines while this process
only writes (through the commit queue, so writing overlaps with receiving the next chunk). Results
come back in file order, so indexes, duplicates within the file and outcomes are exactly those of the
sequential path.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from exporter.events import InvalidEvent, UsageEvent
from exporter.pipeline import IngestOutcome, IngestPipeline, Rejection

CHUNK_LINES = 5_000
# All fields in declaration order, read in C: UsageEvent(*_as_tuple(ev)) rebuilds the event.
_as_tuple = attrgetter(*(f.name for f in fields(UsageEvent)))
_pipeline: IngestPipeline | None = None


def _init_worker(overrides: str | None, max_future_skew: float) -> None:
    global _pipeline
    from exporter.pricing import PriceBook

    _pipeline = IngestPipeline(None, PriceBook.from_file(overrides), max_future_skew=max_future_skew)  # type: ignore[arg-type]


def _prepare_chunk(job: tuple[list[tuple[int, bytes]], float]) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """In a worker: (line index, raw line) pairs → event field tuples (cheap to send back) and rejections."""
    lines, now = job
    assert _pipeline is not None
    _pipeline.clock = lambda: now
    records: list[tuple[int, Any]] = []
    loads = orjson.loads
    for index, line in lines:
        try:
            obj = loads(line)
        except orjson.JSONDecodeError as exc:
            records.append((index, InvalidEvent("", f"line {index + 1}: not valid JSON ({exc})")))
            continue
        if type(obj) is not dict:
            records.append((index, InvalidEvent("", f"line {index + 1}: a record must be a JSON object")))
            continue
        records.append((index, obj))
    events, rejected = _pipeline.prepare(records)
    return [_as_tuple(ev) for ev in events], [(r.index, r.error) for r in rejected]


def _chunks(path: Path, now: float) -> Iterator[tuple[list[tuple[int, bytes]], float]]:
    # Indexes count every line, blank ones included, exactly as the sequential reader does.
    with path.open("rb", buffering=1 << 20) as fh:
        lines: list[tuple[int, bytes]] = []
        for index, line in enumerate(fh):
            if line.strip():
                lines.append((index, line))
            if len(lines) >= CHUNK_LINES:
                yield lines, now
                lines = []
        if lines:
            yield lines, now


def is_plain_jsonl(path: Path) -> bool:
    """True when the file is JSON lines of canonical or provider-usage events (not OTLP, arrays, CSV)."""
    if path.suffix.lower() in (".csv", ".json"):
        return False
    with path.open("rb") as fh:
        head = fh.readline()
    try:
        first = orjson.loads(head)
    except orjson.JSONDecodeError:
        return False
    return isinstance(first, dict) and "provider" in first and "resourceSpans" not in first


def ingest_jsonl_parallel(services: Any, path: Path, *, workers: int) -> IngestOutcome:
    """Ingest a JSON-lines file with `workers` validating processes; same outcome as the sequential path."""
    config = services.config
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    outcome = IngestOutcome()
    pending: deque[tuple[Future[tuple[int, int]], list[Rejection]]] = deque()
    with context.Pool(
        workers,
        initializer=_init_worker,
        initargs=(config.price_overrides_file, config.ingest.max_future_skew_seconds),
    ) as pool:
        for tuples, rejected_pairs in pool.imap(_prepare_chunk, _chunks(path, time.time()), chunksize=1):
            events = [UsageEvent(*t) for t in tuples]
            rejected = [Rejection(i, e) for i, e in rejected_pairs]
            pending.append((services.commit_queue.submit(events, len(rejected)), rejected))
            while len(pending) > 4:
                future, done = pending.popleft()
                outcome.add(IngestOutcome(*future.result(), done))
    for future, done in pending:
        outcome.add(IngestOutcome(*future.result(), done))
    return outcome
