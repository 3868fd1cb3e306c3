"""The scrape that first sees labels grow: a fresh server's first burst, and a new project on a large store.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/bench_first_scrape.py [--quick]`.
Such a scrape ranks the grown labels again (exporter.label_ranks); it prints how long it took and
whether any label under `metrics.max_series_per_label` showed `__other__` (it must not).
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_ingest import LLMCOST, Server, series_events  # noqa: E402

from tests.support.pg import PostgresCluster  # noqa: E402

LABELS = {
    "project": ("search", "chat", "billing", "support", "ads"),
    "model": ("gpt-4o", "gpt-4o-mini", "o3"),
    "service": ("api", "batch"),
}


def burst(prefix: str, calls: int) -> list[bytes]:
    """`calls` calls spread over a handful of projects, models and services, as 1,000-call bodies."""
    now = time.time() - 5
    events = [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": now,
            "provider": "openai",
            "model": LABELS["model"][i % 3],
            "project": LABELS["project"][i % 5],
            "service": LABELS["service"][i % 2],
            "input_tokens": 100,
            "output_tokens": 10,
            "cost_usd": 0.01,
        }
        for i in range(calls)
    ]
    return [orjson.dumps(events[k : k + 1000]) for k in range(0, calls, 1000)]


def post(port: int, bodies: list[bytes]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for body in bodies:
        conn.request("POST", "/v1/usage", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status


def scrape(port: int) -> tuple[float, str]:
    """One `GET /metrics`: seconds it took, and the page."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return time.perf_counter() - started, text


def folded(text: str) -> bool:
    return any(line.startswith("llm_cost_usd_total{") and '"__other__"' in line for line in text.splitlines())


def first_burst(db_url: str, calls: int) -> str:
    server = Server(db_url)
    try:
        scrape(server.port)  # Prometheus scrapes the empty store first
        post(server.port, burst("b", calls))
        seconds, text = scrape(server.port)
        _, steady = scrape(server.port)
    finally:
        server.stop()
    return f"{seconds * 1000:,.0f} ms, __other__ shown: {folded(text)} (next scrape: {folded(steady)})"


def new_project(db_url: str, work: Path, label_sets: int) -> str:
    """A store of `label_sets` series (bench_ingest's shape, 100 projects): the scrape that sees a 101st."""
    file = work / "series.jsonl"
    file.write_bytes(b"\n".join(orjson.dumps(e) for e in series_events(label_sets, "s")) + b"\n")
    subprocess.run([LLMCOST, "ingest", str(file), "--db", db_url], check=True, capture_output=True)
    server = Server(db_url)
    try:
        steady = min(scrape(server.port)[0] for _ in range(3))
        event = {**series_events(1, "new")[0], "project": "project-new"}
        post(server.port, [orjson.dumps([event])])
        seconds, text = scrape(server.port)
    finally:
        server.stop()
    shown = 'project="project-new"' in text
    return f"steady {steady * 1000:,.0f} ms; the scrape seeing a new project {seconds * 1000:,.0f} ms (shown: {shown})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    calls = 20_000 if args.quick else 100_000
    label_sets = (10_000 if args.quick else 100_000) // 7
    print("== first scrape after labels grow (2 cores; figures vary ±30% run to run) ==")
    with tempfile.TemporaryDirectory(prefix="llmcost-bench-") as tmp:
        work = Path(tmp)
        burst_db, series_db = f"sqlite:///{work / 'burst.db'}", f"sqlite:///{work / 'series.db'}"
        print(f"fresh server, {calls:,} calls, SQLite: {first_burst(burst_db, calls)}")
        print(f"{label_sets * 7:,} series, SQLite: {new_project(series_db, work, label_sets)}")
        cluster = PostgresCluster().start()
        try:
            print(f"fresh server, {calls:,} calls, PostgreSQL: {first_burst(cluster.create_database(), calls)}")
            print(f"{label_sets * 7:,} series, PostgreSQL: {new_project(cluster.create_database(), work, label_sets)}")
        finally:
            cluster.destroy()


if __name__ == "__main__":
    main()
