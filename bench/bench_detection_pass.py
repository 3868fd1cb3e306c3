"""One full spike detection pass (`SpikeService.evaluate`) over a store holding realistic rollups.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/bench_detection_pass.py [--quick] [--series N]
[--days D] [--no-pg]`. The store is filled straight into `usage_series` / `usage_rollup` (what ingest
would leave behind: 5-minute cost buckets with a diurnal shape, quiet weekends, silent buckets and
bursts), then one pass is timed end to end: read the rollups, build the dense arrays, run the detector
for every watched label set, hand alerts to a sink, write `spike_state`. Printed: the median of several
passes at consecutive minutes (the scheduler's steady state), and where the time goes.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerting.spikes import SpikeService, SpikeSettings  # noqa: E402
from alerting.store import open_store  # noqa: E402
from exporter.store import Store  # noqa: E402
from exporter.store.schema import BUCKET_SECONDS, COUNTER_COLUMNS  # noqa: E402
from tests.support.pg import PostgresCluster  # noqa: E402

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("deepseek", "deepseek-chat"),
]
NOW = 1_795_046_400 + 8 * 86400 + 14 * 3600 + 130  # a Tuesday afternoon (UTC), mid-bucket


class NullSink:
    """Accepts every alert (the gateway's cost is not part of this figure)."""

    def fire(self, *args: object) -> None:
        pass

    def resolve(self, *args: object) -> None:
        pass


def labels_for(n_series: int) -> list[tuple[str, str, str, str, str, str]]:
    """`n_series` label sets: 4 models x projects x 2 services (users empty, status success)."""
    out = []
    projects = max(1, n_series // (len(MODELS) * 2))
    for p in range(projects):
        for provider, model in MODELS:
            for service in ("api", "batch"):
                out.append((provider, model, f"project-{p:04d}", service, "", "success"))
    return out[:n_series]


def spend(n_series: int, n_buckets: int, first_bucket: int, seed: int = 11) -> np.ndarray:
    """Nano-dollars per series and bucket: diurnal shape, weekends at 40%, 30% silent buckets, bursts."""
    rng = np.random.default_rng(seed)
    t = first_bucket + BUCKET_SECONDS * np.arange(n_buckets)
    hour = (t % 86400) / 3600
    weekday = ((t // 86400) + 3) % 7  # 1970-01-01 was a Thursday
    shape = 0.3 + np.exp(-((hour - 14) ** 2) / 18) * np.where(weekday >= 5, 0.4, 1.0)
    level = rng.lognormal(mean=-3.0, sigma=1.2, size=(n_series, 1))  # USD per bucket at the daily peak
    values = level * shape[None, :] * rng.gamma(2.0, 0.5, size=(n_series, n_buckets))
    values[rng.random((n_series, n_buckets)) < 0.3] = 0.0
    burst = rng.random((n_series, n_buckets)) < 0.002
    values[burst] *= 8
    return np.round(values * 1e9).astype(np.int64)


def fill(store: Store, n_series: int, days: int) -> int:
    """Write the series and their rollups; returns the number of rollup rows."""
    n_buckets = days * 86400 // BUCKET_SECONDS + 12
    first = (NOW // BUCKET_SECONDS + 1 - n_buckets) * BUCKET_SECONDS
    labels = labels_for(n_series)
    cost = spend(len(labels), n_buckets, first)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.dialect == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(
            'INSERT INTO usage_series (id, provider, model, project, service, "user", status) VALUES '
            + ("(?, ?, ?, ?, ?, ?, ?)" if store.dialect == "sqlite" else "(%s, %s, %s, %s, %s, %s, %s)"),
            [(i + 1, *label) for i, label in enumerate(labels)],
        )
        b, sid = np.nonzero(cost.T)  # bucket-major: the order live ingest writes new buckets in
        rows = zip((sid + 1).tolist(), (first + b * BUCKET_SECONDS).tolist(), cost[sid, b].tolist(), strict=True)
        columns = f"series_id, bucket, requests, cost_nanousd, {', '.join(c for c in COUNTER_COLUMNS[1:-2])}"
        if store.dialect == "sqlite":
            cur.executemany(
                f"INSERT INTO usage_rollup ({columns}) VALUES (?, ?, 1, ?, 0, 0, 0, 0, 0)",
                list(rows),
            )
        else:
            buffer = io.StringIO("".join(f"{s}\t{bucket}\t1\t{c}\t0\t0\t0\t0\t0\n" for s, bucket, c in rows))
            with cur.copy(f"COPY usage_rollup ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()
    return len(sid)


def measure(url: str, n_series: int, days: int, passes: int, label: str) -> None:
    store = open_store(url)
    started = time.perf_counter()
    rows = fill(store, n_series, days)
    fill_s = time.perf_counter() - started
    settings = SpikeSettings(series=((), ("project",), ("provider", "model")))
    service = SpikeService(store, settings, NullSink())
    began = time.perf_counter()
    first = service.evaluate(NOW - 60)  # a new leader's first pass: reads the whole range
    cold_s = time.perf_counter() - began
    times = []
    last = first
    for k in range(passes):
        began = time.perf_counter()
        last = service.evaluate(NOW + 60 * k)  # the steady state: one pass a minute
        times.append(time.perf_counter() - began)
    print(
        f"{label}: {n_series} usage series x {days} days ({rows:,} rollup rows, filled in {fill_s:.1f} s) -> "
        f"{last.series} watched series in 3 label sets, {settings.detector.buckets_needed} buckets each"
    )
    print(
        f"  one detection pass, steady state (once a minute): median {statistics.median(times) * 1000:.0f} ms "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; {passes} passes); "
        f"first pass after start or failover (reads all {rows:,} rows): {cold_s * 1000:.0f} ms; "
        f"{last.firing} series firing"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    passes = 3 if args.quick else 7
    sizes = [args.series] if args.quick else [args.series, args.series * 10]
    print("== detection pass benchmark (2 cores; figures vary ±20% run to run) ==")
    work = Path(tempfile.mkdtemp(prefix="llmcost-bench-detect-"))
    try:
        for n in sizes:
            measure(f"sqlite:///{work / f'detect{n}.db'}", n, args.days, passes, "SQLite")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.no_pg:
        return
    cluster = PostgresCluster().start()
    try:
        for n in sizes:
            measure(cluster.create_database(), n, args.days, passes, "PostgreSQL 15")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
