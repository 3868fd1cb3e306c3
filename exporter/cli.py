"""The `llmcost` command line."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson

from exporter import __version__
from exporter.config import Config, ConfigError, ListenError, load_config, parse_config
from exporter.events import nanos_to_usd
from exporter.gc_tuning import tune_gc_for_throughput
from exporter.parallel_ingest import MIN_PARALLEL_BYTES, ingest_parallel, parallel_workers, splittable
from exporter.pipeline import IngestOutcome
from exporter.readers import FORMATS, iter_file_records
from exporter.services import Services
from exporter.store import StoreNotFound, StoreUnavailable

log = logging.getLogger("llmcost")


def _config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config or os.environ.get("LLMCOST_CONFIG"))
    db = getattr(args, "db", None) or os.environ.get("LLMCOST_DB_URL")
    if db:
        config.database_url = db
    listen = getattr(args, "listen", None) or os.environ.get("LLMCOST_LISTEN")
    if listen:
        config.listen = listen
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API, /metrics and (per role) the scheduler and gateway: in this process, or in `--workers`."""
    from exporter.server import check_listen_allowed

    config = _config_from_args(args)
    config_path = args.config or os.environ.get("LLMCOST_CONFIG")
    banner = f"llmcost {__version__} serving on http://{config.listen} (role {args.role}, store {_safe_url(config)}"
    # Before the store is opened or any leader lease taken: a refused start must leave nothing behind.
    check_listen_allowed(config.listen, config)
    if args.workers <= 1:
        _serve(config, args.role, config_path, banner=banner + ")")
        return 0
    from alerting.store import open_store
    from exporter.supervisor import Supervisor, bind

    open_store(config.database_url).close()  # migrate once, before the workers start
    sock = bind(config.listen)
    print(banner + f", {args.workers} worker processes)", flush=True)
    return Supervisor(sock, args.workers, lambda s: _serve(config, args.role, config_path, sock=s)).run()


def _serve(config: Config, role: str, config_path: str | None, *, sock: Any = None, banner: str = "") -> None:
    """Build the services and serve until stopped (on `sock` when given, else on config.listen)."""
    from alerting.runtime import attach_alerting
    from exporter.server import make_server

    services = Services.build(config)
    try:
        routes = attach_alerting(services, role)
        services.extras["console"].warm_up()
        _reload_on_sighup(services, config_path)
        server = make_server(services, config.listen, routes)
        tune_gc_for_throughput()
        if banner:
            print(banner, flush=True)
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        services.close()


def _reload_on_sighup(services: Services, path: str | None) -> None:
    """SIGHUP re-reads the config file and applies its budgets (the config is their source of truth)."""
    if not path:
        return
    from alerting.runtime import reload_budgets

    def reload() -> None:
        problems = reload_budgets(services, path)
        if problems:
            log.error("config reload refused, nothing changed: %s", "; ".join(problems))
        else:
            log.info("config reloaded from %s: budgets applied", path)

    # The handler only starts a thread: database work does not belong in a signal handler.
    signal.signal(signal.SIGHUP, lambda _signum, _frame: threading.Thread(target=reload, daemon=True).start())


def _offline_alerting(args: argparse.Namespace) -> tuple[Services, Any]:
    """Services plus budgets and gateway without workers or a server, for one-shot commands that write.

    Role `ingest`: the budget spend hooks are attached (so a correction reaches budget spend) but no
    config budgets are applied, and an existing store is required (never created empty).
    """
    from alerting.runtime import attach_alerting

    config = _config_from_args(args)
    services = Services.build(config, start_writer=False, must_exist=True)
    print(f"store: {_safe_url(config)}", file=sys.stderr)
    attach_alerting(services, "ingest")
    return services, services.extras


def cmd_budgets(args: argparse.Namespace) -> int:
    """List, show, create, update, delete, reset or apply budgets (see alerting/budgets/cli.py)."""
    from alerting.budgets.cli import run

    return run(args, _config_from_args)


def cmd_alerts(args: argparse.Namespace) -> int:
    """List alerts (read-only), or acknowledge one (the running server delivers the updates)."""
    from alerting.gateway.service import GatewayService

    config = _config_from_args(args)
    read_only = args.action != "ack"
    services = Services.build(config, start_writer=False, read_only=read_only, must_exist=True)
    print(f"store: {_safe_url(config)}", file=sys.stderr)
    try:
        gateway = GatewayService(services.store, config, clock=services.clock, start_workers=False)
        services.closers.append(gateway.close)
        if args.action == "ack":
            if args.id is None:
                print("usage: llmcost alerts ack ID [--by NAME]", file=sys.stderr)
                return 2
            if gateway.alert(args.id) is None:
                print(f"no alert with id {args.id}", file=sys.stderr)
                return 1
            gateway.ack(args.id, by=args.by, via="cli", comment=args.comment)
            print(f"alert {args.id} acknowledged by {args.by}")
            return 0
        for alert in gateway.alerts(args.state):
            by = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
            labels = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            print(f"{alert.id:>5} {alert.state:<12} {alert.severity:<8} {alert.alertname:<26} {labels}{by}")
    finally:
        services.close()
    return 0


def _safe_url(config: Config) -> str:
    from sqlalchemy.engine import make_url

    return make_url(config.database_url).render_as_string(hide_password=True)


def _print_outcome(label: str, outcome: IngestOutcome, *, show: int = 20) -> None:
    print(f"{label}: {outcome.accepted} accepted, {outcome.duplicates} duplicates, {len(outcome.rejected)} rejected")
    for rejection in outcome.rejected[:show]:
        print(f"  record {rejection.index}: {rejection.error}")
    if len(outcome.rejected) > show:
        print(f"  … and {len(outcome.rejected) - show} more rejected records")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load recorded calls from files straight into the store."""
    config = _config_from_args(args)
    services = Services.build(config, start_writer=False)
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
            _print_outcome(path, outcome)
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
        _print_outcome("total", total, show=0)
    return 1 if total.rejected else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a configuration file and print every problem."""
    try:
        load_config(args.file)
    except ConfigError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  - {problem}")
        return 1
    print(f"{args.file}: OK")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Spend and usage over a time range, broken down as asked, with efficiency hints (reads only)."""
    from exporter.report.build import build_report
    from exporter.report.periods import parse_when, period_range
    from exporter.report.render import render

    now = time.time()
    try:
        reference = parse_when(args.until, now=now) if args.until else now
        # A named period is taken relative to --until when given (`--period last-7d --until 2026-11-10`);
        # one with an end of its own (last-week) keeps it.
        since, until = period_range(args.period, now=reference) if args.period else (None, None)
        if until is None and args.until:
            until = reference
        if args.since:
            since = parse_when(args.since, now=now)
        by = [name.strip() for name in args.by.split(",") if name.strip()]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    config = _config_from_args(args)
    services = Services.build(config, read_only=True)
    print(f"store: {_safe_url(config)}", file=sys.stderr)
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
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        services.close()
    sys.stdout.write(render(report, args.format))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete what the `retention:` config allows (raw events; 5-minute rollups folded into hours)."""
    from exporter.retention import Pruner

    config = _config_from_args(args)
    if not config.retention.enabled and not args.vacuum:
        print("nothing to prune: no `retention:` section in the config (data is kept for ever)")
        return 0
    services = Services.build(config, start_writer=False)
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


def cmd_reprice(args: argparse.Namespace) -> int:
    """Price priced and unpriced events again (after a price update or a new override); per-model differences."""
    from exporter.report.periods import parse_when
    from exporter.repricing import Repricer

    now = time.time()
    try:
        since = parse_when(args.since, now=now)
        until = parse_when(args.until, now=now) if args.until else float("inf")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    services, _parts = _offline_alerting(args)  # budget spend is corrected through the store's write hooks
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Fresh SQLite store, a bundled real trace replayed into it, the server and console on --listen."""
    from exporter.demo import DEMO_CONFIG
    from exporter.server import check_listen_allowed

    config = parse_config(DEMO_CONFIG)
    config.listen = args.listen or os.environ.get("LLMCOST_LISTEN") or config.listen
    # The address is checked and bound before anything is printed or created: a taken port is the
    # commonest first-run failure, and it deserves one plain sentence, not a traceback after the banner.
    check_listen_allowed(config.listen, config)
    try:
        sock = _bind(config.listen)
    except OSError as exc:
        print(_bind_advice(config.listen, exc), file=sys.stderr)
        return 2
    # SIGTERM (a service manager, `kill`) ends the demo like Ctrl-C, through the cleanup below. uvicorn
    # handles it while serving and then raises it again; the default action would kill the process
    # before the temporary store is removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir: Path | None = None
    if args.db:
        config.database_url = args.db
    else:
        workdir = Path(tempfile.mkdtemp(prefix="llmcost-demo-"))
        config.database_url = f"sqlite:///{workdir / 'llmcost-demo.db'}"
    try:
        return _run_demo(config, sock, duration=args.duration, keep=args.keep, workdir=workdir)
    finally:
        sock.close()
        if workdir is not None:
            if args.keep:
                print(f"Kept the demo store: {config.database_url}", flush=True)
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def _exit_on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _bind(listen: str) -> Any:
    from exporter.supervisor import bind

    return bind(listen)


def _bind_advice(listen: str, exc: OSError) -> str:
    """What to do when the demo's address cannot be bound, in plain words."""
    if exc.errno == errno.EADDRINUSE:
        host, _, port = listen.rpartition(":")
        other = f"{host}:{int(port) + 1}" if port.isdigit() else "127.0.0.1:9801"
        return (
            f"Cannot start the demo: {listen} is already in use (another llmcost demo or server?).\n"
            f"Stop the other process, or pick another address:\n"
            f"  make demo LISTEN={other}\n"
            f"  llmcost demo --listen {other}      (or LLMCOST_LISTEN={other})"
        )
    return f"Cannot start the demo on {listen}: {exc.strerror or exc}. Pick another address with --listen HOST:PORT."


def _run_demo(config: Config, sock: Any, *, duration: float, keep: bool, workdir: Path | None) -> int:
    from alerting.runtime import attach_alerting
    from exporter.demo import ATTRIBUTION, load_trace, make_events, trace_span
    from exporter.server import make_server

    base = f"http://{config.listen}"
    print(f"llmcost demo console: {base}/", flush=True)
    services = Services.build(config)
    try:
        # The demo's budgets live in its store like any other config budgets (`llmcost budgets list`).
        server = make_server(services, config.listen, attach_alerting(services, "all", origin_ref="llmcost demo"))
    except BaseException:
        services.close()
        raise
    trace = load_trace()
    span = trace_span(trace)
    now = time.time()
    print(f"llmcost {__version__} demo — store: {config.database_url}")
    print(f"Replaying {len(trace):,} real calls ({span / 60:.0f} minutes) from the {ATTRIBUTION}.")
    print("Models, projects, services and users are assigned by a seeded generator (exporter/demo.py).")
    history = services.pipeline.ingest(enumerate(make_events(trace, start=now - span, loop=0)))
    _print_outcome("history (last hour)", history, show=3)
    services.extras["console"].warm_up()  # after the history: the console re-reads only the newest buckets

    stop = threading.Event()

    def replay_live() -> None:
        # Replays the trace again in real time, so rates and dashboards keep moving.
        loop = 1
        while not stop.is_set():
            start = time.time()
            pending = list(make_events(trace, start=start, loop=loop))
            position = 0
            while position < len(pending) and not stop.is_set():
                due = time.time()
                batch = []
                while position < len(pending) and pending[position]["timestamp"] <= due:
                    batch.append((position, pending[position]))
                    position += 1
                if batch:
                    events, rejected = services.pipeline.prepare(batch)
                    if services.commit_queue is not None:
                        services.commit_queue.submit(events, len(rejected)).result()
                stop.wait(1.0)
            loop += 1

    live = threading.Thread(target=replay_live, name="llmcost-demo-replay", daemon=True)
    live.start()
    command = sys.argv[0] if sys.argv[0].endswith("llmcost") else "llmcost"  # e.g. .venv/bin/llmcost
    store_note = "kept on exit (--keep)" if keep or workdir is None else "removed on exit (keep it with --keep)"
    print(
        f"""
Serving on {base}
  {base}/            the console: spend, budgets, alerts (acknowledge from the browser)
  {base}/metrics     Prometheus metrics (llm_cost_usd_total, llm_tokens_total, llm_budget_usage_ratio, …)
  {base}/v1/budgets  budget status (the demo declares three budgets; see exporter/demo.py)
  {base}/v1/alerts   alerts raised by the budgets (no notification channels are configured in the demo)
  curl -s {base}/metrics | grep '^llm_cost_usd_total'
  {command} report --db {config.database_url}
  {command} budgets list --db {config.database_url}
The demo's store is {store_note}.
Send your own calls:
  curl -s -X POST {base}/v1/usage -H 'Content-Type: application/json' \\
    -d '{{"provider":"openai","model":"gpt-4o","input_tokens":1200,"output_tokens":300,"project":"mine"}}'
Stop with Ctrl-C.""",
        flush=True,
    )
    if duration:
        timer = threading.Timer(duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        live.join(timeout=5)
        services.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="llmcost", description="LLM cost observability and alerting.")
    parser.add_argument("--version", action="version", version=f"llmcost {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("LLMCOST_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, listen: bool = False) -> None:
        p.add_argument("--config", help="YAML configuration file (env LLMCOST_CONFIG)")
        p.add_argument("--db", help="SQLAlchemy database URL (env LLMCOST_DB_URL; default sqlite:///llmcost.db)")
        if listen:
            p.add_argument("--listen", help="HOST:PORT (env LLMCOST_LISTEN; default 127.0.0.1:9800)")

    serve = sub.add_parser("serve", help="run the API, /metrics, scheduler and alert gateway")
    common(serve, listen=True)
    serve.add_argument("--role", choices=("all", "ingest", "scheduler"), default="all")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("LLMCOST_WORKERS", "1")),
        help="server processes sharing the listen socket (env LLMCOST_WORKERS; default 1: this process)",
    )
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser("ingest", help="load recorded calls from files into the store")
    common(ingest)
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--format", choices=FORMATS, default="auto")
    ingest.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes reading a JSON-lines file (default: one per core for files over 16 MiB; 1: serial)",
    )
    ingest.set_defaults(func=cmd_ingest)

    demo = sub.add_parser("demo", help="fresh store, a real trace replayed, the server running")
    demo.add_argument("--listen", default=None, help="HOST:PORT (env LLMCOST_LISTEN; default 127.0.0.1:9800)")
    demo.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temporary store on exit (default: removed)")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)

    budgets = sub.add_parser("budgets", help="list, show, create, update, delete, reset or apply budgets")
    common(budgets)
    from alerting.budgets.cli import add_arguments

    add_arguments(budgets)
    budgets.set_defaults(func=cmd_budgets)

    alerts = sub.add_parser("alerts", help="list alerts, or acknowledge one")
    common(alerts)
    alerts.add_argument("action", nargs="?", choices=("list", "ack"), default="list")
    alerts.add_argument("id", nargs="?", type=int)
    alerts.add_argument("--state", choices=("firing", "acknowledged", "resolved"))
    alerts.add_argument("--by", default=os.environ.get("USER", "cli"))
    alerts.add_argument("--comment", default="")
    alerts.set_defaults(func=cmd_alerts)

    report = sub.add_parser("report", help="spend over a time range, broken down, with hints on what to do")
    common(report)
    report.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    report.add_argument("--since", help="start: 2026-11-01, an RFC 3339 time, or an age such as 7d (default: all)")
    report.add_argument("--until", help="end, exclusive (default: now)")
    report.add_argument(
        "--period",
        help="a named range instead: today, yesterday, last-24h, last-7d, last-30d, this-week, last-week, "
        "this-month, last-month, this-year, all",
    )
    report.add_argument(
        "--by",
        default="provider,model,project",
        help="dimensions, comma-separated: provider, model, project, user, service, status, session",
    )
    report.add_argument("--top", type=int, default=20, help="rows shown; the rest are summed in one row")
    report.add_argument("--no-hints", action="store_true", help="leave out the efficiency hints")
    report.set_defaults(func=cmd_report)

    prune = sub.add_parser("prune", help="delete raw events and 5-minute rollups older than the retention")
    common(prune)
    prune.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    prune.add_argument(
        "--vacuum", action="store_true", help="SQLite: full VACUUM afterwards (blocks writers while it runs)"
    )
    prune.add_argument("--format", choices=("table", "json"), default="table")
    prune.set_defaults(func=cmd_prune)

    reprice = sub.add_parser("reprice", help="price stored events again after a price update")
    common(reprice)
    reprice.add_argument("--since", required=True, help="date or time (2026-11-01, RFC 3339, or 7d = 7 days ago)")
    reprice.add_argument("--until", help="end (exclusive; default: now)")
    reprice.add_argument("--model", help="only this model (as recorded)")
    reprice.add_argument("--dry-run", action="store_true", help="report the differences; change nothing")
    reprice.add_argument("--format", choices=("table", "json"), default="table")
    reprice.set_defaults(func=cmd_reprice)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmcost` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as exc:
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


if __name__ == "__main__":
    sys.exit(main())
