"""The spike detector's sparse spend cache gives the very floats the dense one gave, pass after pass.

Two identical stores, filled with the same randomized traffic (many projects, several users per series so
that cache cells and `__other__` sum many rollup rows, a flood of small projects past the caps), are read
by `SpikeService` and by the dense cache it had before (`tests/support/dense_spikes.py`): the full read,
incremental re-reads across bucket boundaries, a backfill re-read, the hourly full reload and the fold
to `__other__` must give bit-identical arrays, the same alerts and the same `spike_state` rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select

from alerting.spikes import SpikeService, SpikeSettings
from alerting.spikes.service import _Group
from alerting.spikes.state import spike_state
from alerting.store import open_store
from exporter.events import UsageEvent
from exporter.store import Store
from tests.support.dense_spikes import DenseSpikeService
from tests.support.pg import PostgresCluster
from tests.support.spikes import BUCKET, DAY, RecordingSink

NOW = 1_795_046_400 + 8 * DAY + 14 * 3600 + 130  # mid-bucket, 8 days after the first spend
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("openai", "o3"), ("deepseek", "deepseek-chat")]
SETTINGS = SpikeSettings(
    series=((), ("project",), ("provider", "model"), ("project", "model")), max_series_per_group=12
)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Two empty stores of one kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        urls = cluster.create_database(), cluster.create_database()
        for url in urls:
            keep_rows_in_write_order(cluster, url)
        yield urls


def keep_rows_in_write_order(cluster: PostgresCluster, url: str) -> None:
    """Identical writes must leave identical tables, scanned in the same order.

    A cell's float sum depends on the order its rollup rows are read in. Both stores take the same
    writes, but autovacuum (and the snapshots it holds) frees and prunes pages at moments of its own,
    so a later upsert may land a row version in a freed slot of one store and at the end of the other,
    and a parallel scan interleaves pages as its workers come: both reorder the rows of one store only,
    and under load the sums then differed in their last bit. The detector does not care about that
    bit; this comparison of two stores, bit for bit, does.
    """
    open_store(url).close()  # the tables, to configure
    name = url.rpartition("/")[2]
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET max_parallel_workers_per_gather = 0")  # generated name
        for table in ("usage_rollup", "usage_rollup_hourly", "usage_events", "usage_series"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


def event(rng: random.Random, rid: str, ts: float, project: str, usd: float) -> UsageEvent:
    provider, model = MODELS[rng.randrange(len(MODELS))]
    return UsageEvent(
        request_id=rid,
        timestamp=float(ts),  # one type per column: PostgreSQL takes the batch as typed arrays
        provider=provider,
        model=model,
        project=project,
        user=f"u{rng.randrange(3)}",  # not watched: several rollup rows add into one cache cell
        cost_nanousd=round(usd * 1e9),
        cost_source="supplied",
    )


def traffic(seed: int, start: float, end: float, *, flood: int = 0, spike: str | None = None) -> list[UsageEvent]:
    """Busy projects in most buckets at random levels, a flood of projects with a call or two each."""
    rng = random.Random(seed)
    events = []
    for b in range(int(start) // BUCKET * BUCKET, int(end), BUCKET):
        for p in range(30):
            if rng.random() < 0.6:
                usd = rng.lognormvariate(-4 + p / 10, 1.0) * (20 if spike == f"p{p}" else 1)
                events.append(event(rng, f"{seed}-{b}-{p}", b + rng.randrange(BUCKET), f"p{p}", usd))
    for k in range(flood):
        ts = rng.uniform(start, end)
        events.append(event(rng, f"{seed}-flood-{k}", ts, f"flood-{rng.randrange(flood)}", rng.uniform(1e-4, 0.2)))
    return events


def run_pass(service: SpikeService, now: float) -> tuple[object, list[_Group], list[tuple[object, ...]]]:
    """One pass: its outcome (without the wall time), the arrays handed to the detector, the state rows."""
    groups: list[_Group] = []
    load = service._load

    def recording(*args: object) -> list[_Group]:
        groups.extend(load(*args))  # type: ignore[arg-type]
        return groups

    service._load = recording  # type: ignore[method-assign]
    try:
        outcome = service.evaluate(now)
    finally:
        del service._load
    with service.store.reading() as conn:
        rows = sorted(tuple(r) for r in conn.execute(select(spike_state)))
    summary = (outcome.series, outcome.firing, outcome.fired, outcome.resolved)
    return summary, groups, rows


def same(a: list[_Group], b: list[_Group]) -> None:
    assert [(g.labels, g.keys) for g in a] == [(g.labels, g.keys) for g in b]
    for x, y in zip(a, b, strict=True):
        assert x.values.shape == y.values.shape
        assert x.values.tobytes() == y.values.tobytes(), x.labels  # bit for bit, not approximately


@pytest.mark.heavy  # replays or builds a large dataset: `make test` only
def test_the_sparse_cache_gives_the_dense_caches_floats(two_urls: tuple[str, str]) -> None:
    stores: list[Store] = [open_store(url) for url in two_urls]

    def write(events: list[UsageEvent]) -> None:
        for store in stores:
            store.write_events(events)

    write(traffic(1, NOW - 8 * DAY, NOW - 60, flood=3000))
    kwargs = {"reload_seconds": 600.0, "full_reload_seconds": 3600.0}
    sparse = SpikeService(stores[0], SETTINGS, RecordingSink(), **kwargs)  # type: ignore[arg-type]
    dense = DenseSpikeService(stores[1], SETTINGS, RecordingSink(), **kwargs)
    fired = 0
    for k in range(16):
        now = NOW + 130 * k  # passes within one bucket and across bucket boundaries: the shift
        if k == 5:  # a backfill two days back: re-read from there
            write(traffic(5, NOW - 2 * DAY, NOW - 2 * DAY + 1800, flood=200))
        elif k == 9:  # past the hour: a full reload, with the spike of a busy project
            now = NOW + 3700
        elif k:
            write(traffic(k + 10, now - 400, now - 20, flood=300, spike="p20" if k > 6 else None))
        a, b = run_pass(sparse, now), run_pass(dense, now)
        same(a[1], b[1])
        assert a[0] == b[0], k
        assert a[2] == b[2], k
        fired += len(a[0][2])  # type: ignore[index]
    # The passes folded (at most 12 series + `__other__` each) and alerted, so both paths were compared.
    assert all(len(g.keys) <= 13 for g in a[1]) and any("__other__" in g.keys[-1] for g in a[1])
    assert fired
    for store in stores:
        store.close()


@pytest.mark.heavy  # builds a flood of series: `make test` only
def test_a_flood_of_projects_costs_the_cache_what_it_holds(sqlite_url: str) -> None:
    """3,000 projects with a call or two each: the cache holds their cells, not rows x 2,100 buckets."""
    store = open_store(sqlite_url)
    store.write_events(traffic(3, NOW - 8 * DAY, NOW - 60, flood=3000))
    service = SpikeService(store, SpikeSettings(max_series_per_group=1000), RecordingSink())
    service.evaluate(NOW)
    cache = service._cache
    assert len(cache.keys) > 2000
    assert cache.nbytes < 4 * 1024 * 1024  # the dense rows were 4,000 x 2,100 x 8 bytes = 64 MiB
    store.close()
