"""`llmcost demo`: a fresh store, a bundled real trace replayed into it, the server and console running."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.config import Config, database_url_problem
from exporter.store import store_location
from llmcost.cli.common import print_outcome
from llmcost.config import parse_config
from llmcost.services import open_services


def add_parser(sub: Any) -> None:
    """Register `demo`."""
    demo = sub.add_parser("demo", help="fresh store, a real trace replayed, the server running")
    demo.add_argument("--listen", default=None, help="HOST:PORT (env LLMCOST_LISTEN; default 127.0.0.1:9800)")
    demo.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary folder)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temporary store on exit (default: removed)")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Fresh SQLite store, a bundled real trace replayed into it, the server and console on --listen."""
    from exporter.demo import DEMO_CONFIG
    from exporter.server import check_listen_allowed

    config = parse_config(DEMO_CONFIG)
    config.listen = args.listen or os.environ.get("LLMCOST_LISTEN") or config.listen
    # The address is checked and bound before anything is printed or created: a taken port is the
    # commonest first-run failure, and it deserves one plain sentence, not a traceback after the banner.
    check_listen_allowed(config.listen, config)
    if args.db:
        problem = database_url_problem(args.db)
        if problem:
            print(f"llmcost demo: --db: {problem}", file=sys.stderr)
            return 2
        # The demo writes thousands of synthetic events and its own budgets: never into a store that
        # holds real ones, where they could not be told apart or removed afterwards.
        in_use = _store_in_use(args.db)
        if in_use:
            print(
                f"llmcost demo: refusing to use {store_location(args.db)}: it already holds {in_use}, and the demo "
                "would add about 9,000 synthetic events and 3 budgets to it. Pass --db with a fresh path "
                "(or no --db: a temporary store).",
                file=sys.stderr,
            )
            return 2
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


def _store_in_use(url: str) -> str | None:
    """What the store at `url` already holds (`120 events and 2 budgets`), or None when it is new or empty.

    Reads only: a SQLite file that does not exist is not created, and nothing is migrated.
    """
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from exporter.store.engine import create_store_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:") or not Path(database).exists():
            return None
    engine = create_store_engine(url, pool_size=1, read_only=True)
    held = []
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            for table, noun in (("usage_events", "event"), ("budgets", "budget")):
                if table in tables:
                    count = int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
                    if count:
                        held.append(f"{count:,} {noun}{'' if count == 1 else 's'}")
    except DBAPIError:
        return None  # unreachable or not a database: opening the store says why, in its own words
    finally:
        engine.dispose()
    return " and ".join(held) or None


def _exit_on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _bind(listen: str) -> Any:
    from exporter.supervisor import bind

    return bind(listen)


def _bind_advice(listen: str, exc: OSError) -> str:
    """What to do when the demo's address cannot be bound, in plain words."""
    if exc.errno == errno.EADDRINUSE:
        host, _, port = listen.rpartition(":")
        other = f"{host}:{int(port) + 1}" if port.isascii() and port.isdigit() else "127.0.0.1:9801"
        return (
            f"Cannot start the demo: {listen} is already in use (another llmcost demo or server?).\n"
            f"Stop the other process, or pick another address:\n"
            f"  make demo LISTEN={other}\n"
            f"  llmcost demo --listen {other}      (or LLMCOST_LISTEN={other})"
        )
    return f"Cannot start the demo on {listen}: {exc.strerror or exc}. Pick another address with --listen HOST:PORT."


def _run_demo(config: Config, sock: Any, *, duration: float, keep: bool, workdir: Path | None) -> int:
    from exporter.demo import ATTRIBUTION, history_window, load_trace, make_events, trace_span
    from exporter.server import make_server
    from llmcost.wiring import attach_alerting

    base = f"http://{config.listen}"
    print(f"llmcost demo console: {base}/", flush=True)
    services = open_services(config)
    try:
        # The demo's budgets live in its store like any other config budgets (`llmcost budgets list`).
        parts = attach_alerting(services, "all", origin_ref="llmcost demo")
        server = make_server(services, config.listen, parts.routes)
    except BaseException:
        services.close()
        raise
    trace = load_trace()
    span = trace_span(trace)
    now = time.time()
    print(f"llmcost {__version__} demo — store: {config.database_url}")
    print(f"Replaying {len(trace):,} real calls ({span / 60:.0f} minutes) from the {ATTRIBUTION}.")
    print("Models, projects, services and users are assigned by a seeded generator (exporter/demo.py).")
    start, scale = history_window(now, span)
    if scale < 1.0:
        print("It is the first hour of the UTC day: the history is compressed into the minutes since midnight.")
    history = services.pipeline.ingest(enumerate(make_events(trace, start=start, loop=0, scale=scale)))
    print_outcome("history (last hour)", history, show=3)
    parts.console.warm_up()  # after the history: the console re-reads only the newest buckets

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
                    events, rejected, skipped = services.pipeline.prepare(batch)
                    if services.commit_queue is not None:
                        services.commit_queue.submit(events, len(rejected), skipped).result()
                stop.wait(1.0)
            loop += 1

    live = threading.Thread(target=replay_live, name="llmcost-demo-replay", daemon=True)
    live.start()
    command = sys.argv[0] if sys.argv[0].endswith("llmcost") else "llmcost"  # e.g. .venv/bin/llmcost
    if workdir is None:
        store_note = "the one given with --db: it is kept on exit"
    elif keep:
        store_note = "kept on exit (--keep)"
    else:
        store_note = "removed on exit (keep it with --keep)"
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
