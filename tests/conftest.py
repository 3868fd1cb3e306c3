"""Shared fixtures: real SQLite files, a real PostgreSQL 15 cluster on loopback, the injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.pg import PostgresCluster
from tests.support.wall_clock import clear_of_period_end

pytest_plugins = ["tests.support.gateway_fixtures"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole session; each test gets its own database."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A fresh PostgreSQL database URL."""
    return pg_cluster.create_database()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'llmcost.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmcost.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock: whole seconds of now until the test moves it (`advance`, `set`).

    Code under test takes it where it would call `time.time` (`Services.build(config, clock=clock)`,
    `GatewayService(store, settings, clock=clock)`), so periods, leases, retries and caches run on test time.
    """
    return FakeClock()


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers that split the fast inner loop from the real-component tests."""
    config.addinivalue_line("markers", "real_process: starts real llmcost processes or outside binaries")
    config.addinivalue_line("markers", "postgres: runs against the throwaway PostgreSQL 15 cluster")
    config.addinivalue_line("markers", "heavy: builds a large store first (months of events, 100k labels)")
    config.addinivalue_line(
        "markers",
        "within_period(period='daily', seconds=120, tz='UTC'): on the real clock, the test starts at least "
        "`seconds` before the period's end (waiting for the next period if need be)",
    )


@pytest.fixture(autouse=True)
def _within_period(request: pytest.FixtureRequest) -> None:
    """Honour `within_period`: a test whose figures assume one budget period starts clear of its end.

    Real processes and the CLI read the wall clock; a test spending, then reading the spend of a daily
    budget read $0.00 when midnight UTC fell in between. Waiting for the next period (at most `seconds`)
    runs the same assertions whole, at any time of day; nothing is skipped.
    """
    for marker in request.node.iter_markers("within_period"):
        clear_of_period_end(*marker.args, **marker.kwargs)


SLOW_FIRST = (
    "tests/e2e/test_hardening_memory.py",
    "tests/exporter/test_hardening_labels.py",
    "tests/e2e/test_budget_safety.py",
    "tests/e2e/test_alertmanager_ack_silence.py",
    "tests/e2e/test_backfill_live.py",
    "tests/e2e/test_live_stack.py",
    "tests/e2e/test_reprice_on_dashboards.py",
    "tests/e2e/test_multiprocess.py",
    "tests/e2e/test_replicas.py",
    "tests/e2e/test_alertmanager_hand_silence.py",
    "tests/e2e/test_delivery_store_outage.py",
    "tests/e2e/test_budget_cli.py",
    "tests/e2e/test_stack_script.py",
    "tests/e2e/test_demo_first_passes.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_month_end_promql.py",
)
"""The files whose tests take 20-75 s each (a `--durations` run), slowest first: they run first.

With two pytest-xdist workers, one of these started last leaves the other worker idle for its whole
length at the end of the run; run first, the short tests behind them even the two workers out. Each
file's tests stay together, in their order, so module-scoped fixtures are still made once a worker.
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches PostgreSQL, and put the slowest files first (`SLOW_FIRST`).

    A test reaches PostgreSQL through the `pg_cluster`/`pg_url` fixtures or a `db_url`/`db` fixture
    parametrised to "postgresql"; marking here keeps the rule in one place instead of on every test,
    so `make test-fast` can leave the real server out.
    """
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(SLOW_FIRST)))  # stable
    for item in items:
        callspec = getattr(item, "callspec", None)
        parametrised_pg = callspec is not None and "postgresql" in callspec.params.values()
        fixtures = set(getattr(item, "fixturenames", ()))
        if parametrised_pg or fixtures & {"pg_cluster", "pg_url"}:
            item.add_marker(pytest.mark.postgres)
