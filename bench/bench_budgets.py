"""Budget check cost (issue 3): `POST /v1/budgets/check` must answer from rollups in well under a ms.

In-process, on a SQLite store holding 100,000 events and 20 budgets (10 of them `key: "*"`): the time
of `BudgetService.check` per call (all of it: definitions, the primary-key reads of the current
period's spend, state), and the SQL statements it issues.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerting.budgets.definition import parse_budgets_section  # noqa: E402
from alerting.budgets.service import BudgetService  # noqa: E402
from exporter.config import Config  # noqa: E402
from llmcost.services import open_services  # noqa: E402


def main() -> None:
    config = Config()
    config.database_url = f"sqlite:///{tempfile.mkdtemp()}/budgets.db"
    services = open_services(config, start_writer=False)
    raw = [
        {"name": f"project-{i}", "scope": "project", "key": "*" if i % 2 else f"p{i}", "period": "daily", "limit": 1e6}
        for i in range(10)
    ] + [{"name": f"model-{i}", "scope": "model", "key": "*", "period": "monthly", "limit": 1e6} for i in range(10)]
    problems: list[str] = []
    section = parse_budgets_section(raw, problems)
    budgets = BudgetService(services.store, section, clock=time.time)
    budgets.apply_config(section.items, origin_ref="bench")
    now = time.time()
    events = (
        {
            "request_id": f"b{i}",
            "timestamp": now - i * 0.05,
            "provider": "openai",
            "model": f"m{i % 5}",
            "project": f"p{i % 20}",
            "input_tokens": 100,
            "output_tokens": 10,
        }
        for i in range(100_000)
    )
    services.pipeline.ingest(enumerate(events))
    store_seconds = 0.0
    queries = 0
    real_raw_cursor = services.store.raw_cursor

    @contextmanager
    def timed_raw_cursor() -> Iterator[Any]:
        # Store work = time inside the database round trips of the check.
        nonlocal store_seconds, queries
        started = time.perf_counter()
        with real_raw_cursor() as handle:
            yield handle
        store_seconds += time.perf_counter() - started
        queries += 1

    services.store.raw_cursor = timed_raw_cursor  # type: ignore[method-assign]
    request = {"project": "p3", "model": "m1", "estimated_cost_usd": 0.01}
    matching = len(budgets.check(request)["budgets"])
    n = 2000
    store_seconds, queries = 0.0, 0
    started = time.perf_counter()
    for _ in range(n):
        budgets.check(request)
    per_call = (time.perf_counter() - started) / n
    print(
        f"budget check, 20 budgets ({matching} instances match), 100k events stored: "
        f"{store_seconds / n * 1e6:,.0f} µs of store work ({queries / n:.0f} primary-key queries) "
        f"in {per_call * 1e6:,.0f} µs per call in all"
    )
    services.close()


if __name__ == "__main__":
    main()
