"""The `llmcost` command line: one module per area, the alert and budget commands beside what they drive.

`serve` (serve.py), `ingest` (ingest.py), `demo` (demo.py), `report` (report.py), `prune` and `reprice`
(maintenance.py), `check-config` (here); `budgets` lives in `alerting/budgets/cli.py` and `alerts` in
`alerting/gateway/cli.py`, both handed this package's config loader and store opener.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from exporter import __version__
from exporter.config import Config, ConfigError, ListenError, database_url_warnings, secrets_not_needed
from exporter.pricing import PriceOverrideError
from exporter.redaction import RedactingFormatter
from exporter.store import StoreNotFound, StoreUnavailable
from llmcost.cli import demo, ingest, maintenance, report, serve
from llmcost.cli.common import UsageError, add_store_arguments, config_from_args
from llmcost.config import load_config
from llmcost.services import open_services


def cmd_budgets(args: argparse.Namespace) -> int:
    """List, show, create, update, delete, reset or apply budgets (see alerting/budgets/cli.py)."""
    from alerting.budgets.cli import run

    return run(args, config_from_args, open_services)


def cmd_alerts(args: argparse.Namespace) -> int:
    """List alerts (read-only), or acknowledge one (see alerting/gateway/cli.py)."""
    from alerting.gateway.cli import run

    return run(args, config_from_args, open_services)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a configuration file and print every problem."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = _serve_problems(config)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    warnings = database_url_warnings(config.database_url)
    print(f"{args.file}: OK" + (f", {len(warnings)} warning(s)" if warnings else ""))
    for warning in warnings:
        print(f"  - warning: {warning}")
    _print_routing(config)
    return 0


def _print_routing(config: Config) -> None:
    """What goes where (the effective route of each severity), and what a default route leaves out.

    Notices, not problems: the exit status stays 0 (a Slack-only config is valid, and so is the demo's).
    """
    from alerting.gateway.routing import config_routing

    lines, notices = config_routing(config.raw)
    print("routing (notifications.routes, or the default route of a severity it does not write):")
    for line in lines:
        print(f"  {line}")
    for notice in notices:
        print(f"notice: {notice}")


def _serve_problems(config: Config) -> list[str]:
    """What `serve` would refuse in a valid config: its `listen` off loopback while endpoints have no tokens."""
    from exporter.server import check_listen_allowed

    try:
        check_listen_allowed(config.listen, config)
    except ListenError as exc:
        return [f"listen: {exc}"]
    return []


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(parser: argparse.ArgumentParser, given: str | None) -> str:
    """The log level of `--log-level` or LLMCOST_LOG_LEVEL (INFO), refused as a usage error when unknown."""
    source, value = "--log-level", given
    if value is None:
        source, value = "LLMCOST_LOG_LEVEL", os.environ.get("LLMCOST_LOG_LEVEL") or "INFO"
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        parser.error(f"{source}: unknown log level {value!r} (choose from {', '.join(LOG_LEVELS)})")
    return level


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="llmcost", description="LLM cost observability and alerting.")
    parser.add_argument("--version", action="version", version=f"llmcost {__version__}")
    log_level_help = f"one of {', '.join(LOG_LEVELS)} (env LLMCOST_LOG_LEVEL; default INFO)"
    parser.add_argument("--log-level", default=None, help=log_level_help)
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    ingest.add_parser(sub)
    demo.add_parser(sub)

    budgets = sub.add_parser("budgets", help="list, show, create, update, delete, reset or apply budgets")
    add_store_arguments(budgets)
    from alerting.budgets.cli import add_arguments as add_budget_arguments

    add_budget_arguments(budgets)
    budgets.set_defaults(func=cmd_budgets)

    alerts = sub.add_parser("alerts", help="list alerts, acknowledge one or undo that")
    add_store_arguments(alerts)
    from alerting.gateway.cli import add_arguments as add_alert_arguments

    add_alert_arguments(alerts)
    alerts.set_defaults(func=cmd_alerts)

    report.add_parser(sub)
    maintenance.add_parsers(sub)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)
    # Accepted after the command too, as its other options are (`llmcost serve --log-level DEBUG` was
    # "unrecognized arguments"); SUPPRESS keeps a value given before the command when none follows it.
    for command in sub.choices.values():
        command.add_argument("--log-level", default=argparse.SUPPRESS, help=log_level_help)
    return parser


SIGPIPE_STATUS = 128 + 13
"""The status a shell reports for a command killed by SIGPIPE, as `cat` or `grep` are under `| head`."""


def _reader_gone() -> int:
    """`llmcost … | head`: the reader closed the pipe. Stop quietly, as standard Unix tools do.

    Python ignores SIGPIPE, so the next write raised BrokenPipeError, and a traceback followed on stderr.
    Standard output is pointed at /dev/null so that the flush at exit does not raise again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_STATUS


# The commands that read the secrets of tokens and channels: `serve` listens and delivers; `check-config` checks
# what serve will need (`demo` has a config of its own). The others run once from an operator's shell, where
# the server's secrets are usually absent: `llmcost budgets apply --config FILE`, which a refused budget
# change tells the operator to run, stopped at `SLACK_BOT_TOKEN is not set`.
_READ_SECRETS = frozenset({"serve", "check-config", "demo"})


def _secrets(command: str) -> AbstractContextManager[None]:
    return nullcontext() if command in _READ_SECRETS else secrets_not_needed()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmcost` console script (and of `python -m llmcost`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Every line, a library's too (httpx logs request URLs with their user info), through the one redaction.
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=_log_level(parser, args.log_level), handlers=[handler])
    # Libraries that trace every step at DEBUG (markdown_it: thousands of lines per runbook render), and
    # httpx, whose INFO line per request repeats what llmcost logs of its pushes with the URL whole: a path
    # holding a proxy's token (`https://am.example/api/TOKEN123`) is beyond any pattern of the redaction.
    for chatty in ("alembic", "apscheduler", "markdown_it", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        with _secrets(args.command):
            code = int(args.func(args))
        # Flushed here, where a reader that went away is caught below, not at interpreter exit (which
        # prints "Exception ignored ... BrokenPipeError" for output still buffered).
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"llmcost: {exc}", file=sys.stderr)
        return 2
    except PriceOverrideError as exc:  # the file changed after the config was checked
        print(exc, file=sys.stderr)
        return 2
    except ListenError as exc:
        print(exc, file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"store unavailable: {exc}", file=sys.stderr)
        return 3
    except StoreNotFound as exc:
        print(exc, file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
