"""Ingest and scrape benchmark (issue 2), printing figures beside the raw SQLite ceiling.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/bench_ingest.py [--quick]`.
Events are synthetic but shaped like the bundled Azure trace (see exporter/demo.py); request ids are
time-ordered, as UUIDv7/ULID ids are (docs/performance.md: random ids make the unique index the cost).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen import post_all  # noqa: E402

from tests.support.pg import PostgresCluster, free_port  # noqa: E402

LLMCOST = str(Path(sys.executable).with_name("llmcost"))
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("deepseek", "deepseek-chat"),
]


def make_events(n: int, *, prefix: str, start: float) -> list[dict[str, object]]:
    """Time-ordered synthetic calls over 4 models, 8 projects, 2 services."""
    out = []
    for i in range(n):
        provider, model = MODELS[i % 4]
        out.append(
            {
                "request_id": f"{prefix}-{i:09d}",
                "timestamp": start + i * 0.001,
                "provider": provider,
                "model": model,
                "input_tokens": 800 + i % 500,
                "cache_read_tokens": (i % 3) * 100,
                "output_tokens": 50 + i % 200,
                "project": f"project-{i % 8}",
                "service": "api" if i % 2 else "worker",
            }
        )
    return out


def raw_ceiling(rows: int) -> float:
    """Plain sqlite3.executemany of the same rows with a unique index, 10k rows per commit (WAL)."""
    folder = tempfile.mkdtemp()
    conn = sqlite3.connect(f"{folder}/raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE e (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, ts REAL, provider TEXT, model TEXT,"
        " project TEXT, service TEXT, input INTEGER, cache_read INTEGER, output INTEGER)"
    )
    events = make_events(rows, prefix="raw", start=time.time() - 3600)
    data = [
        (
            e["request_id"],
            e["timestamp"],
            e["provider"],
            e["model"],
            e["project"],
            e["service"],
            e["input_tokens"],
            e["cache_read_tokens"],
            e["output_tokens"],
        )
        for e in events
    ]
    started = time.perf_counter()
    for k in range(0, rows, 10_000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO e (request_id, ts, provider, model, project, service, input, cache_read, output)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            data[k : k + 10_000],
        )
        conn.execute("COMMIT")
    return rows / (time.perf_counter() - started)


class Server:
    """`llmcost serve` in a child process."""

    def __init__(self, db_url: str, *, workers: int = 1) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                LLMCOST,
                "serve",
                "--db",
                db_url,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--role",
                "ingest",
                "--workers",
                str(workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def http_ingest(port: int, bodies: list[bytes], clients: int = 4) -> float:
    """Post pre-serialised bodies over keep-alive connections from `clients` threads; events/s."""
    per_body = len(orjson.loads(bodies[0]))
    started = time.perf_counter()
    answers = post_all(port, "/v1/usage", bodies, connections=clients)
    elapsed = time.perf_counter() - started
    failures = [body.decode()[:200] for status, body in answers if status != 200]
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[0]}")
    return len(bodies) * per_body / elapsed


# What Prometheus sends when it scrapes: OpenMetrics first, the text format as a fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def scrape_ms(port: int, repeat: int = 3, accept: str | None = None) -> float:
    best = float("inf")
    for _ in range(repeat):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        response.read()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def series_events(n_series: int, prefix: str) -> list[dict[str, object]]:
    """One event per distinct label set: n_series series in llm_cost_usd_total."""
    now = time.time() - 600
    return [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": now,
            "provider": "openai",
            "model": f"model-{i % 50}",
            "project": f"project-{i // 50 % 100}",
            "service": f"svc-{i // 5000}",
            "input_tokens": 10,
            "output_tokens": 1,
            "cost_usd": 0.001,
        }
        for i in range(n_series)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    http_events = 100_000 if args.quick else 300_000
    file_events = 100_000 if args.quick else 1_000_000

    print("== ingest benchmark (2 cores; figures vary ±20% run to run) ==")
    ceiling = raw_ceiling(200_000)
    print(f"raw ceiling: sqlite3.executemany + unique index, 10k rows/commit: {ceiling:,.0f} rows/s")

    work = Path(tempfile.mkdtemp(prefix="llmcost-bench-"))
    events = make_events(http_events, prefix="http", start=time.time() - 7200)
    bodies = [orjson.dumps(events[k : k + 1000]) for k in range(0, len(events), 1000)]

    server = Server(f"sqlite:///{work / 'http.db'}")
    try:
        rss_start = server.rss_mib()
        rate = http_ingest(server.port, bodies)
        rss_mid = server.rss_mib()
        more = make_events(http_events, prefix="http2", start=time.time() - 3600)
        http_ingest(server.port, [orjson.dumps(more[k : k + 1000]) for k in range(0, len(more), 1000)])
        rss_end = server.rss_mib()
    finally:
        server.stop()
    # `--workers 2`: one server process per core on the same socket and store. More client connections,
    # because the kernel hands each connection to one worker for its whole life.
    server = Server(f"sqlite:///{work / 'http-workers.db'}", workers=2)
    try:
        time.sleep(1.0)  # both workers listening
        rate_workers = http_ingest(server.port, bodies, clients=8)
    finally:
        server.stop()
    print(
        f"HTTP batch ingest (1,000 events/request) into SQLite, `llmcost serve --workers 2`: "
        f"{rate_workers:,.0f} events/s (target >= 50,000; {rate_workers / ceiling:.0%} of the raw ceiling)"
    )
    print(
        f"  the same, one server process (the default), 4 clients: {rate:,.0f} events/s "
        f"({rate / ceiling:.0%} of the raw ceiling)"
    )
    print(
        f"server RSS: {rss_start:.0f} MiB at start, {rss_mid:.0f} MiB after {http_events:,} events, "
        f"{rss_end:.0f} MiB after {2 * http_events:,} events (flat = no growth with events ingested)"
    )

    cluster = PostgresCluster().start()
    try:
        server = Server(cluster.create_database())
        try:
            pg_rate = http_ingest(server.port, bodies[: len(bodies) // 2])
        finally:
            server.stop()
    finally:
        cluster.destroy()
    print(f"HTTP batch ingest into PostgreSQL 15: {pg_rate:,.0f} events/s")

    path = work / "calls.jsonl"
    with path.open("wb") as fh:
        for k in range(0, file_events, 100_000):
            chunk = make_events(min(100_000, file_events - k), prefix=f"file{k}", start=time.time() - 86_400 + k * 0.01)
            fh.write(b"\n".join(orjson.dumps(e) for e in chunk) + b"\n")
    started = time.perf_counter()
    subprocess.run(
        [LLMCOST, "ingest", str(path), "--db", f"sqlite:///{work / 'file.db'}"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    print(
        f"llmcost ingest of a {file_events:,}-line JSONL file into SQLite: {file_events / elapsed:,.0f} events/s "
        f"(target >= 100,000; whole command incl. start-up; {file_events / elapsed / ceiling:.0%} of the raw ceiling)"
    )

    # Each label set yields 7 exposition series (requests, 4 token types, reasoning, cost).
    for n_series, target in ((10_000, 250), (100_000, 3000)):
        db = f"sqlite:///{work / f'series{n_series}.db'}"
        rows = series_events(n_series // 7, f"s{n_series}")
        file = work / f"series{n_series}.jsonl"
        file.write_bytes(b"\n".join(orjson.dumps(e) for e in rows) + b"\n")
        subprocess.run([LLMCOST, "ingest", str(file), "--db", db], check=True, capture_output=True)
        server = Server(db)
        try:
            ms = scrape_ms(server.port)
            ms_openmetrics = scrape_ms(server.port, accept=PROMETHEUS_ACCEPT)
        finally:
            server.stop()
        print(
            f"GET /metrics with {n_series:,} series ({n_series // 7:,} label sets): {ms:,.0f} ms "
            f"(target <= {target:,} ms); as Prometheus scrapes (OpenMetrics): {ms_openmetrics:,.0f} ms"
        )
    os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
