"""What the `llmcost` subcommands share: the config from the arguments, store arguments, printing."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from exporter.config import Config
from exporter.pipeline import IngestOutcome
from exporter.services import Services
from llmcost.config import load_config
from llmcost.services import open_services

if TYPE_CHECKING:
    from llmcost.wiring import AlertingParts


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of `--config` (or LLMCOST_CONFIG), with `--db` and `--listen` (or their variables) applied."""
    config = load_config(args.config or os.environ.get("LLMCOST_CONFIG"))
    db = getattr(args, "db", None) or os.environ.get("LLMCOST_DB_URL")
    if db:
        config.database_url = db
    listen = getattr(args, "listen", None) or os.environ.get("LLMCOST_LISTEN")
    if listen:
        config.listen = listen
    return config


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
    """One line of counts for an ingest, then up to `show` rejected records."""
    print(f"{label}: {outcome.accepted} accepted, {outcome.duplicates} duplicates, {len(outcome.rejected)} rejected")
    for rejection in outcome.rejected[:show]:
        print(f"  record {rejection.index}: {rejection.error}")
    if len(outcome.rejected) > show:
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
