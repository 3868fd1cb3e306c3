"""A schema upgrade that meets a table held by another session gives up with a clear message.

An SRE upgraded llmcost while an operator's `psql` sat idle in a transaction that had read `budgets`:
the new `llmcost serve` started its upgrade, whose `ALTER TABLE budgets` waited for that session with no
limit and printed nothing; every query on `budgets` (the other processes' status reads, budget checks)
queued behind the `ALTER` and hung as well, for as long as the session stayed open. The upgrade now
waits `LOCK_TIMEOUT_SECONDS`, gives up changing nothing, says what holds it and how to find it, and exits
(a service manager restarts it); the queries queued behind it carry on, and the next start upgrades.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from alerting.store import ALERTING_SCHEMA
from exporter.store.engine import create_store_engine
from exporter.store.migration import LOCK_TIMEOUT_SECONDS
from tests.support.legacy_schema import build_legacy_store, version_rows
from tests.support.pg import PostgresCluster, free_port
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


def test_an_upgrade_blocked_by_an_open_transaction_gives_up_changing_nothing_and_the_next_start_upgrades(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    url = pg_cluster.create_database()
    build_legacy_store(url, "0009_alertmanager_push")  # the next revision adds columns to `budgets`
    dsn = pg_cluster.dsn(url.rpartition("/")[2])
    serve = [*LLMCOST, "serve", "--db", url, "--listen", f"127.0.0.1:{free_port()}"]
    with psycopg.connect(dsn) as operator, psycopg.connect(dsn, autocommit=True) as reader:
        operator.execute("SELECT count(*) FROM budgets")  # and then left idle, its transaction open
        with ThreadPoolExecutor(1) as pool:
            upgrading = pool.submit(
                subprocess.run, serve, capture_output=True, text=True, timeout=LOCK_TIMEOUT_SECONDS + 50
            )
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER%'"
            wait_until(
                lambda: reader.execute(waiting).fetchone() == (1,), timeout=30, what="the upgrade's ALTER waiting"
            )
            # Queued behind the upgrade's ALTER; answered once the upgrade gives up (not never: bounded here
            # so that an upgrade that waits forever fails this test instead of hanging it).
            reader.execute(f"SET statement_timeout = '{LOCK_TIMEOUT_SECONDS + 30}s'")
            counted = reader.execute("SELECT count(*) FROM budgets").fetchone()
            finished = upgrading.result()
        assert counted == (0,)
        assert finished.returncode == 3, finished.stderr
        assert f"waited {LOCK_TIMEOUT_SECONDS} s for a table another session holds" in finished.stderr
        assert "nothing was changed" in finished.stderr and "pg_stat_activity" in finished.stderr
        engine = create_store_engine(url)
        try:
            assert version_rows(engine) == ["0009_alertmanager_push"]  # not half upgraded
        finally:
            engine.dispose()
        operator.rollback()  # the session ends

    server = LlmcostProcess(url).start(tmp_path)
    try:
        engine = create_store_engine(url)
        try:
            assert version_rows(engine) == [ALERTING_SCHEMA.head]
        finally:
            engine.dispose()
    finally:
        server.stop()
