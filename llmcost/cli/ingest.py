"""`llmcost ingest`: recorded calls from files straight into the store (in parallel for large files)."""

from __future__ import annotations

import argparse
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
from llmcost.cli.common import add_store_arguments, config_from_args, print_outcome
from llmcost.services import open_services


def add_parser(sub: Any) -> None:
    """Register `ingest`."""
    ingest = sub.add_parser("ingest", help="load recorded calls from files into the store")
    add_store_arguments(ingest)
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--format", choices=FORMATS, default="auto")
    ingest.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes reading a JSON-lines file (default: one per core for files over 16 MiB; 1: serial)",
    )
    ingest.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load recorded calls from files straight into the store."""
    config = config_from_args(args)
    services = open_services(config, start_writer=False)
    tune_gc_for_throughput()
    total = IngestOutcome()
    try:
        for path in args.files:
            if not Path(path).is_file():
                print(f"{path}: no such file", file=sys.stderr)
                return 2
            started = time.perf_counter()
            workers = args.workers or parallel_workers()
            # An explicit --workers applies to any size; by default small files are read serially.
            min_bytes = 0 if args.workers else MIN_PARALLEL_BYTES
            if workers > 1 and splittable(Path(path), args.format, min_bytes=min_bytes):
                outcome = ingest_parallel(Path(path), services, workers)
            else:
                outcome = services.pipeline.ingest(iter_file_records(path, args.format))
            elapsed = time.perf_counter() - started
            print_outcome(path, outcome)
            count = outcome.accepted + outcome.duplicates + len(outcome.rejected)
            if elapsed > 0 and count:
                print(f"  {count} records in {elapsed:.2f} s ({count / elapsed:,.0f} records/s)")
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
    return 1 if total.rejected else 0
