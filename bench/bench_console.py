"""The console page (`GET /`) with 10,000 usage series: how long one render takes.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/bench_console.py [--quick] [--series N]`.
The SQLite store is filled straight into `usage_series` / `usage_rollup` (what ingest leaves behind):
N series over 30 days, each with spend in a few percent of the 5-minute buckets of the month and in
every bucket of the last hour (the live part the page re-reads on each view), plus three budgets (one
`key: "*"` over the projects, so the page lists an instance per project) and a few firing alerts.
Printed: the first render after start (reads the month of rollups once), then the median of renders
in the steady state (re-reads only the newest buckets), each through the whole app (routing,
queries, charts, template). Target: under 200 ms with 10,000 series.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.testclient import TestClient  # noqa: E402

from alerting.store import open_store  # noqa: E402
from exporter.http.app import build_app  # noqa: E402
from exporter.store import Store  # noqa: E402
from exporter.store.schema import BUCKET_SECONDS, COUNTER_COLUMNS  # noqa: E402
from llmcost.config import parse_config  # noqa: E402
from llmcost.services import open_services  # noqa: E402
from llmcost.wiring import attach_alerting  # noqa: E402

MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("deepseek", "x")]
DAYS = 30


def labels_for(n: int) -> list[tuple[str, str, str, str, str, str]]:
    """`n` label sets: 4 models x projects x 2 services."""
    projects = max(1, n // (len(MODELS) * 2))
    out = [
        (provider, model, f"project-{p:04d}", service, "", "success")
        for p in range(projects)
        for provider, model in MODELS
        for service in ("api", "batch")
    ]
    return out[:n]


def fill(store: Store, n: int, now: float, density: float) -> int:
    """Series and rollups; returns the number of rollup rows."""
    rng = np.random.default_rng(5)
    last = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
    n_buckets = DAYS * 86400 // BUCKET_SECONDS
    first = last - (n_buckets - 1) * BUCKET_SECONDS
    active = rng.random((n, n_buckets)) < density
    active[:, -12:] = True  # the last hour: every series spends
    b, sid = np.nonzero(active.T)  # bucket-major: the order live ingest writes new buckets in
    cost = rng.integers(1_000_000, 50_000_000, size=len(sid))
    labels = labels_for(n)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.executemany(
            'INSERT INTO usage_series (id, provider, model, project, service, "user", status) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i + 1, *label) for i, label in enumerate(labels)],
        )
        columns = f"series_id, bucket, requests, cost_nanousd, {', '.join(COUNTER_COLUMNS[1:-2])}"
        rows = zip((sid + 1).tolist(), (first + b * BUCKET_SECONDS).tolist(), cost.tolist(), strict=True)
        cur.executemany(f"INSERT INTO usage_rollup ({columns}) VALUES (?, ?, 1, ?, 0, 0, 0, 0, 0)", list(rows))
        cur.execute(
            "UPDATE usage_series SET "
            "requests = (SELECT count(*) FROM usage_rollup r WHERE r.series_id = usage_series.id), "
            "cost_nanousd = (SELECT sum(cost_nanousd) FROM usage_rollup r WHERE r.series_id = usage_series.id)"
        )
        raw.commit()
    finally:
        raw.close()
    return len(sid)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--density", type=float, default=0.02, help="share of the month's buckets with spend")
    args = parser.parse_args()
    n = 1000 if args.quick else args.series
    renders = 5 if args.quick else 15
    work = Path(tempfile.mkdtemp(prefix="llmcost-bench-console-"))
    now = time.time()
    try:
        url = f"sqlite:///{work / 'console.db'}"
        store = open_store(url)
        started = time.perf_counter()
        rows = fill(store, n, now, args.density)
        store.close()
        fill_s = time.perf_counter() - started
        config = parse_config(
            {
                "budgets": [
                    {"name": "daily", "scope": "global", "period": "daily", "limit": 1000.0},
                    {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 500.0},
                    {"name": "gpt-4o", "scope": "model", "key": "gpt-4o", "period": "monthly", "limit": 1e5},
                ]
            }
        )
        config.database_url = url
        services = open_services(config, start_writer=False)
        parts = attach_alerting(services, "ingest")
        routes, gateway = parts.routes, parts.gateway
        for k in range(20):
            gateway.fire("LLMCostSpike", {"project": f"project-{k:04d}"}, severity="warning")
        projects = len({label[2] for label in labels_for(n)})
        with TestClient(build_app(services, routes)) as client:
            began = time.perf_counter()
            first = client.get("/")
            cold = time.perf_counter() - began
            assert first.status_code == 200, first.text
            times = []
            for _ in range(renders):
                began = time.perf_counter()
                page = client.get("/")
                times.append(time.perf_counter() - began)
                assert page.status_code == 200
        services.close()
        print(
            f"console GET / on SQLite, {n:,} usage series ({projects:,} projects: a per-project budget "
            f"with {projects:,} instances, the 50 highest listed), {rows:,} rollup rows over {DAYS} days "
            f"(filled in {fill_s:.0f} s), 20 firing alerts, page {len(page.content) / 1024:,.0f} KiB:"
        )
        print(
            f"  steady state: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; {renders} renders); "
            f"first render after start (reads the month of rollups once): {cold * 1000:.0f} ms"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
