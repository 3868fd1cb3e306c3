"""`llmcost prune` (what the retention allows) and `llmcost reprice` (stored events priced again)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from exporter.events import nanos_to_usd
from llmcost.cli.common import add_store_arguments, config_from_args, offline_alerting, safe_url, when_argument
from llmcost.services import open_services


def add_parsers(sub: Any) -> None:
    """Register `prune` and `reprice`."""
    prune = sub.add_parser("prune", help="delete raw events and 5-minute rollups older than the retention")
    add_store_arguments(prune)
    prune.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    prune.add_argument(
        "--vacuum", action="store_true", help="SQLite: full VACUUM afterwards (blocks writers while it runs)"
    )
    prune.add_argument("--format", choices=("table", "json"), default="table")
    prune.set_defaults(func=cmd_prune)

    reprice = sub.add_parser("reprice", help="price stored events again after a price update")
    add_store_arguments(reprice)
    reprice.add_argument("--since", required=True, help="date or time (2026-11-01, RFC 3339, or 7d = 7 days ago)")
    reprice.add_argument("--until", help="end (exclusive; default: now)")
    reprice.add_argument("--model", help="only this model (as recorded)")
    reprice.add_argument("--dry-run", action="store_true", help="report the differences; change nothing")
    reprice.add_argument("--format", choices=("table", "json"), default="table")
    reprice.set_defaults(func=cmd_reprice)


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete what the `retention:` config allows (raw events; 5-minute rollups folded into hours)."""
    from exporter.retention import Pruner, PruneReport

    config = config_from_args(args)
    if not config.retention.enabled and not args.vacuum:
        # Still a refusal for a store that does not exist (a mistyped --db must not read "nothing to
        # prune"), and the answer a script asked for: JSON with --format json.
        open_services(config, start_writer=False, must_exist=True, read_only=True).close()
        nothing = "nothing to prune: no `retention:` section in the config (data is kept for ever)"
        if args.format == "json":
            empty = PruneReport(dry_run=args.dry_run, events_cutoff=None, rollups_cutoff=None, notes=[nothing])
            print(orjson.dumps(empty.to_json()).decode())
        else:
            print(nothing)
        return 0
    # Never on a store that does not exist (it would be created and migrated just to be pruned), and a
    # dry run opens it read-only: it reads what would go and migrates nothing.
    services = open_services(config, start_writer=False, must_exist=True, read_only=args.dry_run)
    try:
        pruner = Pruner(services.store, config.retention, clock=services.clock)
        report = pruner.run(dry_run=args.dry_run)
        if args.vacuum and not args.dry_run:
            pruner.full_vacuum()
            report.bytes_after = pruner.file_size()
            report.notes = []
    finally:
        services.close()
    if args.format == "json":
        print(orjson.dumps(report.to_json()).decode())
    else:
        print("\n".join(report.lines()))
    return 0


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def cmd_reprice(args: argparse.Namespace) -> int:
    """Price priced and unpriced events again (after a price update or a new override); per-model differences."""
    from exporter.repricing import Repricer

    now = time.time()
    try:
        since = when_argument("--since", args.since, now=now)
        until = when_argument("--until", args.until, now=now) if args.until else float("inf")
        if since >= until:
            raise ValueError(f"--since ({args.since}) must be before --until ({args.until})")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.dry_run:
        # A dry run only reads: the store is opened read-only (never migrated), without the alerting side.
        config = config_from_args(args)
        services = open_services(config, start_writer=False, read_only=True)
        print(f"store: {safe_url(config)}", file=sys.stderr)
    else:
        services, _parts = offline_alerting(args)  # budget spend is corrected through the store's write hooks
    # Only stored events can be priced again: say so when the range reaches back past the raw-event
    # retention, rather than answer for less than was asked without a word.
    cutoff = services.config.retention.events_cutoff(now)
    if cutoff is not None and since < cutoff:
        days = services.config.retention.events_days
        print(
            f"note: events before {_iso(cutoff)} are past retention.events_days ({days:g} days): those already "
            "pruned cannot be repriced, and their costs (in reports and budget spend) stay as recorded",
            file=sys.stderr,
        )
    try:
        report = Repricer(services.store, services.prices).run(
            since, until=until, model=args.model, dry_run=args.dry_run
        )
    finally:
        services.close()
    if args.format == "json":
        print(orjson.dumps(report.to_json()).decode())
        return 0
    verb = "would change" if args.dry_run else "changed"
    header = f"{'provider':<12} {'model':<32} {'events':>8} {'changed':>8} "
    header += f"{'before_usd':>12} {'after_usd':>12} {'diff_usd':>12}"
    print(header)
    print("-" * len(header))
    for m in report.sorted_models():
        print(
            f"{m.provider[:12]:<12} {m.model[:32]:<32} {m.events:>8} {m.changed:>8} "
            f"{nanos_to_usd(m.before_nanousd):>12.4f} {nanos_to_usd(m.after_nanousd):>12.4f} "
            f"{nanos_to_usd(m.after_nanousd - m.before_nanousd):>+12.4f}"
        )
    changed = sum(m.changed for m in report.models.values())
    print(f"{verb} {changed} events; difference {nanos_to_usd(report.difference_nanousd):+.4f} USD")
    return 0
