"""`llmcost report`: spend and usage over a time range, broken down as asked, with efficiency hints."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from llmcost.cli.common import add_store_arguments, config_from_args, positive_int, safe_url, when_argument
from llmcost.services import open_services


def add_parser(sub: Any) -> None:
    """Register `report`."""
    report = sub.add_parser("report", help="spend over a time range, broken down, with hints on what to do")
    add_store_arguments(report)
    report.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    report.add_argument("--since", help="start: 2026-11-01, an RFC 3339 time, or an age such as 7d (default: all)")
    report.add_argument("--until", help="end, exclusive (default: now)")
    report.add_argument(
        "--period",
        help="a named range instead: today, yesterday, last-24h, last-7d, last-30d, this-week, last-week, "
        "this-month, last-month, this-year, all",
    )
    report.add_argument(
        "--timezone",
        default="UTC",
        help="IANA zone whose days the named periods and bare dates follow, as a budget's timezone "
        "(e.g. America/Los_Angeles; default UTC)",
    )
    report.add_argument(
        "--by",
        default="provider,model,project",
        help="dimensions, comma-separated: provider, model, project, user, service, status, session",
    )
    report.add_argument(
        "--top", type=positive_int, default=20, help="rows shown (1 or more); the rest are summed in one row"
    )
    report.add_argument("--no-hints", action="store_true", help="leave out the efficiency hints")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Spend and usage over a time range, broken down as asked, with efficiency hints (reads only)."""
    from exporter.local_time import zone
    from exporter.report.build import build_report
    from exporter.report.periods import period_range
    from exporter.report.render import render

    now = time.time()
    try:
        if args.period and args.since:
            # One of them would be dropped unsaid (the report covered --since .. now): refuse instead.
            raise ValueError(
                f"--period and --since both give the start: use --period {args.period} (with --until for an "
                f"earlier end), or --since {args.since} [--until …]"
            )
        tz = args.timezone
        try:
            zone(tz)
        except ValueError as exc:
            raise ValueError(f"--timezone: {exc} (an IANA name, e.g. America/Los_Angeles)") from None
        reference = when_argument("--until", args.until, now=now, tz=tz) if args.until else now
        # A named period is taken relative to --until when given (`--period last-7d --until 2026-11-10`);
        # one with an end of its own (last-week) keeps it.
        since, until = period_range(args.period, now=reference, tz=tz) if args.period else (None, None)
        if until is None and args.until:
            until = reference
        if args.since:
            since = when_argument("--since", args.since, now=now, tz=tz)
        by = [name.strip() for name in args.by.split(",") if name.strip()]
        if not by:
            raise ValueError(f"--by: no dimension given in {args.by!r} (e.g. --by provider,model)")
        if since is not None and until is not None and since >= until:
            raise ValueError(f"--since ({_iso(since)}) must be before --until ({_iso(until)})")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    config = config_from_args(args)
    services = open_services(config, read_only=True)
    print(f"store: {safe_url(config)}", file=sys.stderr)
    try:
        report = build_report(
            services.store,
            services.prices,
            since=since,
            until=until,
            by=by,
            top=args.top,
            now=now,
            hints=not args.no_hints,
            events_cutoff=config.retention.events_cutoff(now),
            timezone=tz,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        services.close()
    sys.stdout.write(render(report, args.format))
    return 0


def _iso(when: float) -> str:
    """A time as RFC 3339 in UTC, for messages."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
