"""`make stack`: llmcost, Prometheus and Alertmanager on this machine, without Docker.

Starts three processes on loopback, with state in `.stack/` (wiped at the start of every run):

- llmcost (`llmcost serve`): a fresh SQLite store, the demo's budgets (`exporter.demo.DEMO_CONFIG`) plus
  one the trace crosses at once (`STACK_BUDGET`), `auth.webhook_tokens_file` pointing at a token
  generated into `.stack/webhook_token`, and `alertmanager.url` set: its budget and spike alerts are
  pushed to Alertmanager, which shows them and routes them back to llmcost's gateway. The ingest and
  admin endpoints stay open, as in `llmcost demo`: nothing listens beyond 127.0.0.1.
- Prometheus with the shipped `prometheus/prometheus.yml` and rule files (`prometheus/rules/*.rules.yml`,
  read in place), its scrape and Alertmanager targets rewritten to the loopback ports.
- Alertmanager with the shipped `alertmanager/alertmanager.yml`, the gateway webhook URL rewritten to
  llmcost's port and its `credentials_file` to `.stack/webhook_token`.

The bundled real trace (`exporter.demo`) is sent to llmcost's `POST /v1/usage`, its calls timed to end
now: the first ten minutes before Prometheus starts, the other fifty once Prometheus has scraped llmcost
(so `increase()` over the last hour sees them arrive), then the trace again in real time, so rates keep
moving. Prints where to look and three PromQL queries, runs until Ctrl-C (or `--duration`), then stops
everything. `--check` instead waits until Prometheus answers the example queries with llmcost's data and
Alertmanager has delivered an alert to llmcost and shows llmcost's budget alerts in its own API,
prints the outputs and exits (status 1 if not in time).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx

# The parts live in scripts/local_stack/; put this folder on the path also when this file is loaded by
# path (tests/live_stack.py), not run.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_stack.assemble import MARKER, build_stack, prepare_dir
from local_stack.configs import (
    REPO,
    Ports,
    alertmanager_config,
    dump_yaml,
    llmcost_config,
    load_yaml,
    prometheus_config,
)
from local_stack.guide import EXAMPLES, banner, check
from local_stack.prometheus_api import format_sample, instant_query, scraped, wait_until
from local_stack.servers import Server, alertmanager_server, port_in_use, prometheus_server
from local_stack.trace_feed import TraceFeed

__all__ = [  # what the tests use from here (tests/live_stack.py loads this file)
    "EXAMPLES",
    "MARKER",
    "REPO",
    "Ports",
    "TraceFeed",
    "alertmanager_config",
    "alertmanager_server",
    "dump_yaml",
    "format_sample",
    "instant_query",
    "llmcost_config",
    "load_yaml",
    "main",
    "prepare_dir",
    "prometheus_config",
    "prometheus_server",
    "scraped",
    "wait_until",
]

DEFAULT_DIR = REPO / ".stack"
EARLY_HISTORY_SECONDS = 600.0
"""Of the trace, sent before Prometheus starts."""


def start(server: Server) -> None:
    """Start one server and say so."""
    server.start()
    print(f"started {server.name} (log {server.log_path})", flush=True)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack until Ctrl-C, `--duration` or the end of `--check`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0: at Ctrl-C; --check: 120)"
    )
    parser.add_argument("--check", action="store_true", help="prove it works end to end, print the outputs, stop")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder, wiped first (default .stack)")
    parser.add_argument("--interval", type=float, help="scrape and rule evaluation interval in seconds (default 30)")
    parser.add_argument("--llmcost-port", type=int, default=Ports.llmcost)
    parser.add_argument("--prometheus-port", type=int, default=Ports.prometheus)
    parser.add_argument("--alertmanager-port", type=int, default=Ports.alertmanager)
    args = parser.parse_args(argv)
    ports = Ports(args.llmcost_port, args.prometheus_port, args.alertmanager_port)

    busy = [f"{name} port {port}" for name, port in vars(ports).items() if port_in_use(port)]
    if busy:
        print(f"in use: {', '.join(busy)} (stop what runs there, or pick other --*-port values)", file=sys.stderr)
        return 2
    # Also SIGINT: a shell that starts this in the background hands it SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stack = build_stack(prepare_dir(args.dir.resolve()), ports, interval=args.interval)
    feed = TraceFeed(ports.url("llmcost"))
    try:
        llmcost, *monitoring = stack.servers
        start(llmcost)
        # Every series exists before Prometheus's first scrape, so increase() over the hour counts the
        # rest of the history arriving afterwards (a series that appears out of nothing counts nothing).
        early, late = feed.history_parts(EARLY_HISTORY_SECONDS)
        accepted = int(feed.post(early)["accepted"])
        for server in monitoring:
            start(server)
        print("waiting for Prometheus's first scrape of llmcost", flush=True)
        if not wait_until(lambda: scraped(ports.url("prometheus"), "llmcost"), timeout=120):
            raise RuntimeError("Prometheus did not scrape llmcost within 120 s")
        accepted += int(feed.post(late)["accepted"])
        feed.start()
        print(banner(stack, accepted), flush=True)
        if args.check:
            return 0 if check(stack, accepted, timeout=args.duration or 120) else 1
        print(f"\nRunning {'for ' + format(args.duration, 'g') + ' s' if args.duration else 'until Ctrl-C'}.")
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            for server in stack.servers:
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"{server.name} stopped unexpectedly:\n{server.log_tail()}")
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave servers behind
        print("stopping", flush=True)
        feed.stop()
        for server in reversed(stack.servers):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
