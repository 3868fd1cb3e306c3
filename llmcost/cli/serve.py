"""`llmcost serve`: the API, /metrics and (per role) the scheduler and gateway, in one or more processes."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from exporter import __version__
from exporter.config import Config, ConfigError
from exporter.gc_tuning import tune_gc_for_throughput
from llmcost.cli.common import UsageError, add_store_arguments, config_from_args, positive_int, safe_url
from llmcost.services import open_services

if TYPE_CHECKING:
    from llmcost.wiring import AlertingParts

log = logging.getLogger("llmcost")
CLOSE_SECONDS = 15.0
"""After SIGTERM and the requests in flight (up to 10 s), how long closing may take (deliveries in flight,
each bounded by its channel's 10 s timeout; the lease). Both fit docker-compose.yml's 30 s grace period."""


def add_parser(sub: Any) -> None:
    """Register `serve`."""
    serve = sub.add_parser("serve", help="run the API, /metrics, scheduler and alert gateway")
    add_store_arguments(serve, listen=True)
    serve.add_argument("--role", choices=("all", "ingest", "scheduler"), default="all")
    serve.add_argument(
        "--workers",
        type=positive_int,
        help="server processes sharing the listen socket (env LLMCOST_WORKERS; default 1: this process)",
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API, /metrics and (per role) the scheduler and gateway: in this process, or in `--workers`."""
    from exporter.server import check_listen_allowed

    workers = args.workers if args.workers is not None else _workers_from_environment()
    config = config_from_args(args)
    config_path = args.config or os.environ.get("LLMCOST_CONFIG")
    banner = f"llmcost {__version__} serving on http://{config.listen} (role {args.role}, store {safe_url(config)}"
    # Before the store is opened or any leader lease taken: a refused start must leave nothing behind.
    # That includes a busy port: bound here, it fails before the store is created, the scheduler takes
    # its lease or the banner claims the server is up.
    check_listen_allowed(config.listen, config)
    if workers > 1 and config.metrics.store_series == "leader":
        # The workers share one address, and a scrape reaches any of them: mostly a follower.
        raise ConfigError(
            [
                f"metrics.store_series: leader needs one process per scraped address, but --workers {workers} "
                "shares one among several; run the replicas without --workers, or use every_process and "
                "scrape one address per store (docs/deployment.md)"
            ]
        )
    sock = _bind(config.listen)
    _log_routing(config, args.role)  # once, here: not once per worker
    if workers == 1:
        _serve(config, args.role, config_path, sock=sock, banner=banner + ")")
        return 0
    from alerting.store import open_store
    from exporter.supervisor import Supervisor

    open_store(config.database_url).close()  # migrate once, before the workers start
    print(banner + f", {workers} worker processes)", flush=True)
    return Supervisor(sock, workers, lambda s: _serve(config, args.role, config_path, sock=s)).run()


def _log_routing(config: Config, role: str) -> None:
    """Log what goes where, and warn of each channel a default route names but the config lacks.

    A config with Slack alone starts (the default routes keep the configured channels), but its critical
    alerts, which the default route pages, then page nobody: `check-config` says so, and so does the log.
    Only a process that delivers says it: a `--role ingest` replica would repeat the scheduler's warnings
    about notifications it never sends.
    """
    from alerting.gateway.routing import config_routing
    from llmcost.wiring import DELIVERING_ROLES

    if role not in DELIVERING_ROLES:
        log.info(
            "alert routing is logged by the processes that deliver notifications (roles %s), not this one (role %s)",
            ", ".join(DELIVERING_ROLES),
            role,
        )
        return
    lines, notices = config_routing(config.raw)
    log.info("alert routing: %s", "; ".join(lines))
    for notice in notices:
        log.warning("%s", notice)


def _workers_from_environment() -> int:
    """`LLMCOST_WORKERS`, checked like `--workers` (a bad value is one line, not a traceback of every command)."""
    text = os.environ.get("LLMCOST_WORKERS", "").strip() or "1"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"LLMCOST_WORKERS: {exc}") from None


def _bind(listen: str) -> Any:
    """The listening socket, or a one-line ListenError naming the address (in use, not local, refused)."""
    from exporter.config import ListenError
    from exporter.supervisor import bind

    try:
        return bind(listen)
    except OSError as exc:
        hint = " (another llmcost or other server?)" if exc.errno == errno.EADDRINUSE else ""
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}{hint}") from None


def _serve(config: Config, role: str, config_path: str | None, *, sock: Any = None, banner: str = "") -> None:
    """Build the services and serve until stopped (on `sock` when given, else on config.listen)."""
    from exporter.server import make_server
    from llmcost.wiring import attach_alerting

    services = open_services(config)
    try:
        parts = attach_alerting(services, role)
        parts.console.warm_up()
        _reload_on_sighup(parts, config_path, config.raw)
        server = make_server(services, config.listen, parts.routes)
        tune_gc_for_throughput()
        if banner:
            print(banner, flush=True)
        _close_after_sigterm()
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        services.close()


def _close_after_sigterm() -> None:
    """Let a SIGTERM end `serve` through its closing steps instead of killing it once HTTP has stopped.

    uvicorn handles SIGTERM (stops accepting, answers the requests in flight), then raises it again with
    the handler that was there before it. Left at the default, that killed the process before
    `services.close()`: a notification being delivered was abandoned unrecorded (and sent again by the
    process that took its row over) and the scheduler lease was left to expire. This handler, which
    uvicorn re-raises to, returns instead; a further SIGTERM while closing ends the process at once, and
    so does closing for longer than `CLOSE_SECONDS` (a store that does not answer must not hold a stop
    up until the supervisor's SIGKILL: it ends as the SIGTERM would have, nothing acknowledged is lost).
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals can only be handled on the main thread; uvicorn does not capture them either

    def give_up() -> None:
        log.error("closing took over %g s (is the store answering?): stopping without finishing", CLOSE_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)  # the default action by now: the process ends

    def closing(signum: int, _frame: object) -> None:
        signal.signal(signum, signal.SIG_DFL)
        timer = threading.Timer(CLOSE_SECONDS, give_up)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, closing)


def _reload_on_sighup(parts: AlertingParts, path: str | None, started: Mapping[str, Any]) -> None:
    """SIGHUP re-reads the config file and applies its budgets (the config is their source of truth).

    `started` is the config the process runs with: its other sections take effect at the next start,
    and the log line names those the file now changes, so "reloaded" is never read as "all applied".
    """
    if not path:
        return
    from llmcost.wiring import reload_budgets, sections_awaiting_restart

    def reload() -> None:
        problems, outcome, raw = reload_budgets(parts, path)
        if problems:
            log.error("config reload refused, nothing changed: %s", "; ".join(problems))
            return
        waiting = sections_awaiting_restart(started, raw)
        if waiting:
            log.warning(
                "config reloaded from %s: %s; %s: changed in the file, applied at the next start "
                "(SIGHUP applies budgets only)",
                path,
                outcome,
                ", ".join(waiting),
            )
        else:
            log.info("config reloaded from %s: %s", path, outcome)

    # The handler only starts a thread: database work does not belong in a signal handler.
    signal.signal(signal.SIGHUP, lambda _signum, _frame: threading.Thread(target=reload, daemon=True).start())
