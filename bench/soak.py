"""Soak benchmark (`make bench-soak`): sustained mixed load against one `llmcost serve`, loopback only.

Per store (SQLite, then PostgreSQL): ingest at 5,000 events/s (50 requests/s of 100 events from 8
clients), budget checks at 500/s (from 16 clients) and a scrape every 5 s, for `--duration` seconds (default 600), then
prints throughput, p50/p99 latency of each call, errors, and the server's RSS at start, every minute
and at the end. Load generators run in separate processes from the server, pace themselves and stop
on their own.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pg import PostgresCluster, free_port  # noqa: E402

LLMCOST = str(Path(sys.executable).with_name("llmcost"))
CONFIG = """
budgets:
  items:
    - {name: daily-total, scope: global, period: daily, limit: 1000000}
    - {name: per-project, scope: project, key: "*", period: monthly, limit: 1000000}
    - {name: search-hard, scope: project, key: search, period: hourly, unit: requests, limit: 100000000, mode: hard}
"""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _paced(port: int, kind: str, rate: float, duration: float, worker: int, out: multiprocessing.Queue) -> None:
    """One generator thread: `rate` calls/s of `kind` for `duration` s; reports (wall time, latency) per call."""
    latencies: list[tuple[float, float]] = []
    errors = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    projects = ["search", "chat", "eval", "code"]
    while (now := time.perf_counter()) - start < duration:
        due = start + n * interval
        if now < due:
            time.sleep(due - now)
        if kind == "ingest":
            ts = time.time()
            body = orjson.dumps(
                [
                    {
                        "request_id": f"soak-{worker}-{n}-{i}",
                        "timestamp": ts,
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "input_tokens": 900 + i,
                        "output_tokens": 120,
                        "project": projects[i % 4],
                        "service": "api",
                    }
                    for i in range(100)
                ]
            )
            method, path = "POST", "/v1/usage"
        elif kind == "check":
            body = orjson.dumps({"project": projects[n % 4], "estimated_cost_usd": 0.01})
            method, path = "POST", "/v1/budgets/check"
        else:
            body, method, path = b"", "GET", "/metrics"
        sent = time.perf_counter()
        try:
            conn.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append((time.time(), time.perf_counter() - sent))
        n += 1
    out.put((kind, latencies, errors))


def _generator(port: int, kind: str, rate: float, threads: int, duration: float, out: multiprocessing.Queue) -> None:
    workers = [
        threading.Thread(target=_paced, args=(port, kind, rate / threads, duration, hash((kind, t)) % 10_000, out))
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(db_url: str, label: str, duration: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="llmcost-soak-"))
    config = work / "llmcost.yml"
    config.write_text(CONFIG)
    port = free_port()
    server = subprocess.Popen(
        [LLMCOST, "serve", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        rss_start = _rss_mib(server.pid)
        cpu_start = _cpu_seconds(server.pid)
        rss_samples: list[tuple[float, float]] = []  # (seconds into the run, MiB), every 30 s
        sampling = threading.Event()

        def sample_rss() -> None:
            begin = time.perf_counter()
            while not sampling.wait(30.0):
                rss_samples.append((time.perf_counter() - begin, _rss_mib(server.pid)))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        out: multiprocessing.Queue = multiprocessing.Queue()
        # Each client is a closed loop that catches up after a slow call; enough of them that the offered
        # rate holds through a latency spike, as it would from many application instances.
        plan = [("ingest", 50.0, 8), ("check", 500.0, 16), ("scrape", 0.2, 1)]
        procs = [
            multiprocessing.Process(target=_generator, args=(port, kind, rate, threads, duration, out))
            for kind, rate, threads in plan
        ]
        started = time.perf_counter()
        wall_start = time.time()
        for p in procs:
            p.start()
        results: dict[str, tuple[list[tuple[float, float]], int]] = {}
        expected = sum(threads for _, _, threads in plan)
        for _ in range(expected):
            kind, lat, errors = out.get(timeout=duration + 120)
            acc = results.setdefault(kind, ([], 0))
            results[kind] = (acc[0] + lat, acc[1] + errors)
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - started
        rss_end = _rss_mib(server.pid)
        cpu_used = _cpu_seconds(server.pid) - cpu_start
        sampling.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n{label}: {elapsed:.0f} s of mixed load")
    per_call = {"ingest": 100, "check": 1, "scrape": 1}
    for kind in ("ingest", "check", "scrape"):
        calls, errors = results.get(kind, ([], 0))
        if not calls:
            continue
        lat = [latency for _, latency in calls]
        ordered = sorted(lat)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        unit = "events/s" if kind == "ingest" else "calls/s"
        print(
            f"  {kind:<7} {len(lat) * per_call[kind] / elapsed:>9,.0f} {unit:<9} "
            f"p50 {statistics.median(lat) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  errors {errors}"
        )
    minutes = int(elapsed // 60)
    if minutes >= 2:
        # A rate that sags as the store grows would hide in the average: show it minute by minute.
        for kind in ("ingest", "check"):
            per_minute = [0] * minutes
            for at, _ in results.get(kind, ([], 0))[0]:
                slot = int((at - wall_start) // 60)
                if slot < minutes:
                    per_minute[slot] += per_call[kind]
            print(f"  {kind} per second, minute by minute: " + ", ".join(f"{n / 60:,.0f}" for n in per_minute))
    print(f"  server CPU: {cpu_used / elapsed:.0%} of one core")
    print(f"  server RSS: {rss_start:.0f} MiB at start, {rss_end:.0f} MiB at end")
    if rss_samples:
        # Caches fill during the first minutes (SQLite page cache per pooled connection, thread arenas):
        # growth that matters is what continues after that, so show the curve.
        curve = ", ".join(f"{at / 60:.0f} min {mib:.0f}" for at, mib in rss_samples[1::2])
        warm = next((mib for at, mib in rss_samples if at >= 120), rss_samples[0][1])
        print(f"  RSS every minute (MiB): {curve}; growth after the first 2 min: {rss_end - warm:+.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=600.0, help="seconds per store (default 600)")
    parser.add_argument("--store", choices=("both", "sqlite", "postgresql"), default="both")
    args = parser.parse_args()
    print("== soak: ingest 5,000 events/s + budget checks 500/s + a scrape every 5 s ==")
    if args.store in ("both", "sqlite"):
        soak(f"sqlite:///{tempfile.mkdtemp()}/soak.db", "SQLite", args.duration)
    if args.store in ("both", "postgresql"):
        cluster = PostgresCluster().start()
        try:
            soak(cluster.create_database(), "PostgreSQL 15", args.duration)
        finally:
            cluster.destroy()


if __name__ == "__main__":
    main()
