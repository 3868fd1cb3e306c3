"""What the `llmcost` subcommands share: the config from the arguments, store arguments, printing."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from exporter.config import Config, database_url_problem, listen_problem
from exporter.events import SKIP_REASONS
from exporter.pipeline import IngestOutcome
from exporter.services import Services
from llmcost.config import load_config
from llmcost.services import open_services

if TYPE_CHECKING:
    from llmcost.wiring import AlertingParts


class UsageError(ValueError):
    """A command-line argument (or its environment variable) that cannot be used; the message names it.

    `main` prints it as one line and exits 2, before any store is opened.
    """


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of `--config` (or LLMCOST_CONFIG), with `--db` and `--listen` (or their variables) applied.

    Raises `UsageError` for a `--db` or `--listen` that could not be used, naming the flag (or variable).
    """
    config = load_config(args.config or os.environ.get("LLMCOST_CONFIG"))
    db, source = getattr(args, "db", None), "--db"
    if not db:
        # Stripped as `database.url_env` is: a Kubernetes Secret made `--from-file` ends in a newline.
        db, source = os.environ.get("LLMCOST_DB_URL", "").strip(), "LLMCOST_DB_URL"
    if db:
        problem = database_url_problem(db)
        if problem:
            raise UsageError(f"{source}: {problem}")
        config.database_url = db
    listen, source = getattr(args, "listen", None), "--listen"
    if not listen:
        listen, source = os.environ.get("LLMCOST_LISTEN"), "LLMCOST_LISTEN"
    if listen:
        problem = listen_problem(listen)
        if problem:
            raise UsageError(f"{source}: {problem}")
        config.listen = listen
    return config


def when_argument(flag: str, value: str, *, now: float, tz: str = "UTC") -> float:
    """Epoch seconds of a `--since`/`--until` value; a `ValueError` naming `flag` when it cannot be read."""
    from exporter.report.periods import parse_when

    try:
        return parse_when(value, now=now, tz=tz)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a count where zero or less means nothing)."""
    return _int_at_least(1, text)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (where 0 has a meaning of its own, such as "automatic")."""
    return _int_at_least(0, text)


def add_store_arguments(parser: argparse.ArgumentParser, *, listen: bool = False) -> None:
    """`--config` and `--db` (and `--listen`), which every command that opens a store takes."""
    parser.add_argument("--config", help="YAML configuration file (env LLMCOST_CONFIG)")
    parser.add_argument("--db", help="SQLAlchemy database URL (env LLMCOST_DB_URL; default sqlite:///llmcost.db)")
    if listen:
        parser.add_argument("--listen", help="HOST:PORT (env LLMCOST_LISTEN; default 127.0.0.1:9800)")


def safe_url(config: Config) -> str:
    """The database URL with its password hidden, for printing."""
    from exporter.store import store_location

    return store_location(config.database_url)


def print_outcome(label: str, outcome: IngestOutcome, *, show: int = 20) -> None:
    """One line of counts for an ingest, then why records were skipped, then up to `show` rejected records.

    Records are numbered from 1, as people count lines: record N of a JSON-lines file is its line N
    (the readers' own "line N" agrees), of a CSV file its data row N, of a JSON array its element N.
    The library and the HTTP API keep the 0-based `index` of the request's array.
    """
    skipped = f", {sum(outcome.skipped.values())} skipped" if outcome.skipped else ""
    print(
        f"{label}: {outcome.accepted} accepted, {outcome.duplicates} duplicates, {len(outcome.rejected)} rejected"
        f"{skipped}"
    )
    for reason, count in sorted(outcome.skipped.items()):
        print(f"  {count} skipped ({reason}): {SKIP_REASONS[reason]}")
    for rejection in outcome.rejected[:show]:
        print(f"  record {rejection.index + 1}: {rejection.error}")
    if show and len(outcome.rejected) > show:
        print(f"  … and {len(outcome.rejected) - show} more rejected records")


def offline_alerting(args: argparse.Namespace) -> tuple[Services, AlertingParts]:
    """Services plus budgets and gateway without workers or a server, for one-shot commands that write.

    Role `ingest`: the budget spend hooks are attached (so a correction reaches budget spend) but no
    config budgets are applied, and an existing store is required (never created empty).
    """
    from llmcost.wiring import attach_alerting

    config = config_from_args(args)
    services = open_services(config, start_writer=False, must_exist=True)
    print(f"store: {safe_url(config)}", file=sys.stderr)
    return services, attach_alerting(services, "ingest")
