"""`llmcost budgets show NAME`'s history: the last completed periods summed from the rollups.

Run: `.venv/bin/python bench/bench_budget_history.py [--series N] [--days D]`. The SQLite store is filled
as `bench_console.py` fills it (N series, 2% of the 5-minute buckets of the last D days with spend); the
time is `BudgetService.history` for 3 periods of a global daily budget, 3 of a per-project `key: "*"`
monthly one and 3 of a one-model monthly one, read-only as the command opens the store.
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

import bench_console  # noqa: E402

from alerting.budgets.definition import parse_budgets_section  # noqa: E402
from alerting.budgets.service import BudgetService  # noqa: E402
from alerting.store import open_store  # noqa: E402
from exporter.config import Config  # noqa: E402
from llmcost.services import open_services  # noqa: E402

BUDGETS = [
    {"name": "daily", "scope": "global", "period": "daily", "limit": 1000.0},
    {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 500.0},
    {"name": "gpt-4o", "scope": "model", "key": "gpt-4o", "period": "monthly", "limit": 1e5},
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=61)
    args = parser.parse_args()
    bench_console.DAYS = args.days
    url = f"sqlite:///{tempfile.mkdtemp(prefix='llmcost-bench-history-')}/history.db"
    now = time.time()
    store = open_store(url)
    rows = bench_console.fill(store, args.series, now, 0.02)
    section = parse_budgets_section(BUDGETS, [])
    BudgetService(store, section, clock=lambda: now).apply_config(section.items, origin_ref="bench")
    store.close()
    config = Config()
    config.database_url = url
    services = open_services(config, start_writer=False, read_only=True, must_exist=True)
    budgets = BudgetService(services.store, parse_budgets_section(None, []), clock=lambda: now)
    for name in (b["name"] for b in BUDGETS):
        times = []
        for _ in range(5):
            began = time.perf_counter()
            budgets.history(name, 3)
            times.append(time.perf_counter() - began)
        print(
            f"history of {name} (3 periods), {args.series:,} series, {rows:,} rollup rows over {args.days} days: "
            f"median {statistics.median(times) * 1000:.0f} ms, first {times[0] * 1000:.0f} ms"
        )
    services.close()


if __name__ == "__main__":
    main()
