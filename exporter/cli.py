"""The `llmcost` command line."""

from __future__ import annotations

import argparse
import logging
import os
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
from exporter.store import StoreUnavailable

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
    from exporter.store import Store
    from exporter.supervisor import Supervisor, bind

    Store(config.database_url).close()  # migrate once, before the workers start
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
    """Services plus budgets and gateway without workers or a server, for one-shot commands."""
    from alerting.runtime import attach_alerting

    services = Services.build(_config_from_args(args), start_writer=False)
    attach_alerting(services, "ingest")
    return services, services.extras


def cmd_budgets(args: argparse.Namespace) -> int:
    """List budgets with their status, or show one."""
    from alerting.budgets.service import BudgetError

    services, parts = _offline_alerting(args)
    try:
        budgets = parts["budgets"]
        if args.action == "show":
            if not args.name:
                print("usage: llmcost budgets show NAME", file=sys.stderr)
                return 2
            try:
                print(orjson.dumps(budgets.status(args.name), option=orjson.OPT_INDENT_2).decode())
            except BudgetError as exc:
                print(exc, file=sys.stderr)
                return 1
            return 0
        instances = budgets.instances()
        print(
            f"{'budget':<24} {'key':<16} {'period':<8} {'spent':>12} {'limit':>12} {'ratio':>7} {'projected':>12} state"
        )
        for i in instances:
            print(
                f"{i.budget.name[:24]:<24} {i.key[:16] or '-':<16} {i.budget.period:<8} {i.spent:>12.2f} "
                f"{i.budget.limit:>12.2f} {i.ratio:>7.1%} {i.projected:>12.2f} {i.state}"
            )
        if not instances:
            print("(no budgets: declare them under `budgets:` in the config, or PUT /v1/budgets/NAME)")
    finally:
        services.close()
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """List alerts, or acknowledge one (the running server delivers the updates)."""
    services, parts = _offline_alerting(args)
    try:
        gateway = parts["gateway"]
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
    """Spend and usage per provider, model and project, from the store."""
    config = _config_from_args(args)
    services = Services.build(config, start_writer=False)
    try:
        rows = services.store.series_totals(("provider", "model", "project"))
    finally:
        services.close()
    rows.sort(key=lambda r: -r.get("cost_nanousd"))
    data: list[dict[str, Any]] = [
        {
            "provider": r.labels[0],
            "model": r.labels[1],
            "project": r.labels[2],
            "requests": r.get("requests"),
            "input_tokens": r.get("input_tokens"),
            "cache_read_tokens": r.get("cache_read_tokens"),
            "cache_write_tokens": r.get("cache_write_tokens"),
            "output_tokens": r.get("output_tokens"),
            "cost_usd": nanos_to_usd(r.get("cost_nanousd")),
            "unpriced_requests": r.get("unpriced_requests"),
        }
        for r in rows
    ]
    if args.format == "json":
        print(orjson.dumps({"rows": data, "total_cost_usd": sum(d["cost_usd"] for d in data)}).decode())
        return 0
    header = f"{'provider':<12} {'model':<28} {'project':<16} {'requests':>9} {'tokens':>12} {'cost_usd':>12}"
    print(header)
    print("-" * len(header))
    for d in data:
        tokens = d["input_tokens"] + d["cache_read_tokens"] + d["cache_write_tokens"] + d["output_tokens"]
        flag = "  (unpriced)" if d["unpriced_requests"] else ""
        print(
            f"{d['provider'][:12]:<12} {d['model'][:28]:<28} {d['project'][:16]:<16} "
            f"{d['requests']:>9} {tokens:>12} {d['cost_usd']:>12.4f}{flag}"
        )
    print(f"{'total':<58} {sum(d['requests'] for d in data):>9} {'':>12} {sum(d['cost_usd'] for d in data):>12.4f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Fresh SQLite store, a bundled real trace replayed into it, the server on --listen."""
    from alerting.runtime import attach_alerting
    from exporter.demo import ATTRIBUTION, DEMO_CONFIG, load_trace, make_events, trace_span
    from exporter.server import make_server

    config = parse_config(DEMO_CONFIG)
    if args.listen:
        config.listen = args.listen
    workdir = Path(tempfile.mkdtemp(prefix="llmcost-demo-"))
    config.database_url = args.db or f"sqlite:///{workdir / 'llmcost-demo.db'}"
    services = Services.build(config)
    try:
        server = make_server(services, config.listen, attach_alerting(services, "all"))
    except ListenError as exc:
        print(exc, file=sys.stderr)
        services.close()
        return 2
    trace = load_trace()
    span = trace_span(trace)
    now = time.time()
    print(f"llmcost {__version__} demo — store: {config.database_url}")
    print(f"Replaying {len(trace):,} real calls ({span / 60:.0f} minutes) from the {ATTRIBUTION}.")
    print("Models, projects, services and users are assigned by a seeded generator (exporter/demo.py).")
    history = services.pipeline.ingest(enumerate(make_events(trace, start=now - span, loop=0)))
    _print_outcome("history (last hour)", history, show=3)

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
    base = f"http://{config.listen}"
    command = sys.argv[0] if sys.argv[0].endswith("llmcost") else "llmcost"  # e.g. .venv/bin/llmcost
    print(
        f"""
Serving on {base}
  {base}/            landing page
  {base}/metrics     Prometheus metrics (llm_cost_usd_total, llm_tokens_total, llm_budget_usage_ratio, …)
  {base}/v1/budgets  budget status (the demo declares three budgets; see exporter/demo.py)
  {base}/v1/alerts   alerts raised by the budgets (no notification channels are configured in the demo)
  curl -s {base}/metrics | grep '^llm_cost_usd_total'
  {command} report --db {config.database_url}
Send your own calls:
  curl -s -X POST {base}/v1/usage -H 'Content-Type: application/json' \\
    -d '{{"provider":"openai","model":"gpt-4o","input_tokens":1200,"output_tokens":300,"project":"mine"}}'
Stop with Ctrl-C."""
    )
    if args.duration:
        timer = threading.Timer(args.duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    try:
        server.run()
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
    demo.add_argument("--listen", default=None, help="HOST:PORT (default 127.0.0.1:9800)")
    demo.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)

    budgets = sub.add_parser("budgets", help="list budgets with status, or show one")
    common(budgets)
    budgets.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    budgets.add_argument("name", nargs="?")
    budgets.set_defaults(func=cmd_budgets)

    alerts = sub.add_parser("alerts", help="list alerts, or acknowledge one")
    common(alerts)
    alerts.add_argument("action", nargs="?", choices=("list", "ack"), default="list")
    alerts.add_argument("id", nargs="?", type=int)
    alerts.add_argument("--state", choices=("firing", "acknowledged", "resolved"))
    alerts.add_argument("--by", default=os.environ.get("USER", "cli"))
    alerts.add_argument("--comment", default="")
    alerts.set_defaults(func=cmd_alerts)

    report = sub.add_parser("report", help="spend by provider, model and project")
    common(report)
    report.add_argument("--format", choices=("table", "json"), default="table")
    report.set_defaults(func=cmd_report)

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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
