"""Shared fixtures: real SQLite files, a real PostgreSQL 15 cluster on loopback, the injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.pg import PostgresCluster

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches PostgreSQL, so `make test-fast` can leave the real server out.

    A test reaches PostgreSQL through the `pg_cluster`/`pg_url` fixtures or a `db_url`/`db` fixture
    parametrised to "postgresql"; marking here keeps the rule in one place instead of on every test.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        parametrised_pg = callspec is not None and "postgresql" in callspec.params.values()
        fixtures = set(getattr(item, "fixturenames", ()))
        if parametrised_pg or fixtures & {"pg_cluster", "pg_url"}:
            item.add_marker(pytest.mark.postgres)
