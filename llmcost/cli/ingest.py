"""`llmcost ingest`: recorded calls from files straight into the store (in parallel for large files)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from exporter.gc_tuning import tune_gc_for_throughput
from exporter.parallel_ingest import MIN_PARALLEL_BYTES, ingest_parallel, parallel_workers, splittable
from exporter.pipeline import IngestOutcome
from exporter.readers import FORMATS, iter_file_records
from exporter.store import StoreUnavailable
from llmcost.cli.common import add_store_arguments, config_from_args, non_negative_int, print_outcome
from llmcost.services import open_services


def add_parser(sub: Any) -> None:
    """Register `ingest`."""
    ingest = sub.add_parser("ingest", help="load recorded calls from files into the store")
    add_store_arguments(ingest)
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--format", choices=FORMATS, default="auto")
    ingest.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="processes reading a JSON-lines file (0, the default: one per core for files over 16 MiB; 1: serial)",
    )
    ingest.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load recorded calls from files straight into the store."""
    config = config_from_args(args)
    # Every file is checked before the store is opened (or created): one bad path in the middle of a
    # list must not leave the files before it stored and the rest not.
    unusable = [problem for problem in map(_file_problem, args.files) if problem]
    if unusable:
        for problem in unusable:
            print(problem, file=sys.stderr)
        return 2
    services = open_services(config, start_writer=False)
    tune_gc_for_throughput()
    total = IngestOutcome()
    try:
        for path in args.files:
            started = time.perf_counter()
            workers = args.workers or parallel_workers()
            # An explicit --workers applies to any size; by default small files are read serially.
            min_bytes = 0 if args.workers else MIN_PARALLEL_BYTES
            if workers > 1 and splittable(Path(path), args.format, min_bytes=min_bytes):
                outcome = ingest_parallel(Path(path), services, workers)
            else:
                outcome = services.pipeline.ingest(iter_file_records(path, args.format, otlp=config.otlp))
            elapsed = time.perf_counter() - started
            print_outcome(path, outcome)
            count = outcome.accepted + outcome.duplicates + len(outcome.rejected) + sum(outcome.skipped.values())
            if elapsed > 0 and count:
                records = "record" if count == 1 else "records"
                print(f"  {count} {records} in {elapsed:.2f} s ({count / elapsed:,.0f} records/s)")
            total.add(outcome)
    except StoreUnavailable as exc:
        print(f"store unavailable: {exc}", file=sys.stderr)
        return 3
    except BrokenProcessPool as exc:  # a worker was killed (e.g. out of memory); committed batches stay
        print(f"an ingest worker died ({exc}); run the command again: stored events count once", file=sys.stderr)
        return 3
    finally:
        services.close()
    if len(args.files) > 1:
        print_outcome("total", total, show=0)
    if too_old := sum(rejection.too_old for rejection in total.rejected):
        # A backfill is the usual way to meet this refusal: say how to load such history after all.
        records = "record is" if too_old == 1 else "records are"
        print(
            f"{too_old} {records} older than retention.events_days: to load history that old, ingest it with a "
            "config without retention: (or with a larger events_days), then run llmcost prune (docs/retention.md)"
        )
    return 1 if total.rejected else 0


def _file_problem(path: str) -> str | None:
    """Why `path` cannot be ingested (None when it can be read), in one line naming it."""
    file = Path(path)
    if file.is_dir():
        return f"{path}: is a directory (pass the files in it)"
    if not file.exists():
        return f"{path}: no such file"
    if not os.access(file, os.R_OK):
        return f"{path}: cannot read (permission denied)"
    return None
