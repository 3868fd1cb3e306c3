"""Per-user and per-session summaries (issue 13) on a million events: rollups vs the session indexes.

A SQLite store (or `--db URL`) gets 1,000,000 events over 30 days from 1,000 users; one in twenty
carries a session (10,000 sessions). Then `exporter.usage_summary.summarize` is timed for: every user
over 30 days and over one day (rollups), every session of one day, and one session (partial indexes
on `usage_events.session`), with the query plans. Usage: `python bench/bench_usage_summary.py [--db URL]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from exporter.config import Config  # noqa: E402
from exporter.usage_summary import summarize  # noqa: E402
from llmcost.services import open_services  # noqa: E402

EVENTS = 1_000_000
DAYS = 30


def timed(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args()
    config = Config()
    config.database_url = args.db or f"sqlite:///{tempfile.mkdtemp()}/summary.db"
    services = open_services(config, start_writer=False)
    end = 1_796_000_000.0
    start = end - DAYS * 86400
    step = (end - start) / args.events
    events = (
        {
            "request_id": f"{i:08d}",
            "timestamp": start + i * step,
            "provider": "openai",
            "model": f"m{i % 7}",
            "project": f"p{i % 13}",
            "user": f"user-{i % 1000}",
            "cost_usd": 0.001,
            "input_tokens": 100,
            "output_tokens": 10,
            **({"session": f"s-{(i // 20) % 10000}"} if i % 20 == 0 else {}),
        }
        for i in range(args.events)
    )
    started = time.perf_counter()
    services.pipeline.ingest(enumerate(events))
    print(f"{args.events:,} events ingested in {time.perf_counter() - started:.0f} s ({services.store.dialect})")
    store = services.store
    day = end - 86400
    cases = {
        "by=user, 30 days (rollups)": lambda: summarize(store, "user", start, end),
        "by=user, 1 day (rollups)": lambda: summarize(store, "user", day, end),
        "by=session, 1 day (index ts, session)": lambda: summarize(store, "session", day, end),
        "by=session, one session, 30 days (index session, ts)": lambda: summarize(
            store, "session", start, end, session="s-42"
        ),
    }
    for name, fn in cases.items():
        rows = len(fn().rows)
        print(f"{name:<56} {timed(fn):8.1f} ms  ({rows} rows)")
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        for where in ("ts >= 0 AND ts < 1", "session = 's-42'"):
            sql = "SELECT session, SUM(cost_nanousd) FROM usage_events WHERE session IS NOT NULL AND "
            sql += f"{where} GROUP BY 1"
            plan = " | ".join(str(r[-1]) for r in conn.execute(text(explain + sql)))
            print(f"plan ({where}): {plan}")
    services.close()


if __name__ == "__main__":
    main()
