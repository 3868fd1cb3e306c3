"""An upgrade refuses to migrate a store that a process of the older release still leads on.

Defect: an operator upgraded two replicas of the first release on one PostgreSQL one at a time, as
docs/deployment.md does a rolling restart. The new `llmcost serve` migrated the store under the old one,
which went on leading: it raised its per-level budget alerts again under its own fingerprints beside the
family alert the upgrade had re-keyed, and one project past its daily budget paged three times (the old
process's `LLMBudgetExceeded`, the new family alert, a grouped incident). Found by running the first
release (15281b5) and main on the same store; the first release renews its scheduler lease every 5 s
with a ttl of 15 s and, stopped with SIGTERM, leaves it to run out.

Here the old process is its lease, renewed as the first release's leader renews it (plain SQL, so the
test needs no old checkout). While it is renewed, `serve` exits 3 naming the holder and changes nothing;
once its holder stops, the next `serve` waits for it to run out and upgrades.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from alerting.store import ALERTING_SCHEMA
from exporter.store.engine import create_store_engine
from tests.support.legacy_schema import build_legacy_store, version_rows
from tests.support.pg import free_port
from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

HOLDER = "old-host:4242:0f1e2d3c4b5a"
TTL = 8.0  # the first release's is 15 s; shorter here so that the lease left behind runs out sooner
# The first release's leader: a lease row, then renewed by its holder every heartbeat.
_TAKE = text(
    "INSERT INTO leader_leases (name, holder, expires_at, acquired_at, renewed_at, term) "
    "VALUES ('scheduler', :holder, :now + :ttl, :now, :now, 1)"
)
_RENEW = text(
    "UPDATE leader_leases SET expires_at = :now + :ttl, renewed_at = :now WHERE name = 'scheduler' AND holder = :holder"
)


@contextmanager
def old_leader(url: str) -> Iterator[None]:
    """The first release's scheduler leading on `url` until the block ends; it then stops without handing over."""
    engine = create_store_engine(url)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(1.0):
            with engine.begin() as connection:
                connection.execute(_RENEW, {"holder": HOLDER, "now": time.time(), "ttl": TTL})

    with engine.begin() as connection:
        connection.execute(_TAKE, {"holder": HOLDER, "now": time.time(), "ttl": TTL})
    renewing = threading.Thread(target=renew, daemon=True)
    renewing.start()
    try:
        yield
    finally:
        stop.set()
        renewing.join()
        with engine.begin() as connection:  # its last heartbeat, just before it stopped
            connection.execute(_RENEW, {"holder": HOLDER, "now": time.time(), "ttl": TTL})
        engine.dispose()


def schema_versions(url: str) -> list[str]:
    engine = create_store_engine(url)
    try:
        return version_rows(engine)
    finally:
        engine.dispose()


def test_serve_refuses_to_upgrade_under_a_leading_old_process_and_upgrades_once_it_stopped(
    db_url: str, tmp_path: Path
) -> None:
    build_legacy_store(db_url, "0004_scheduler")  # the schema the first release left
    serve = [*LLMCOST, "serve", "--db", db_url, "--listen", f"127.0.0.1:{free_port()}"]
    with old_leader(db_url):
        refused = subprocess.run(serve, capture_output=True, text=True, timeout=90)
        assert refused.returncode == 3, refused.stderr
        assert f"its 'scheduler' lease, held by '{HOLDER}'" in refused.stderr
        assert "Stop every llmcost process of the version that wrote the store" in refused.stderr
        assert "nothing was changed" in refused.stderr
        assert schema_versions(db_url) == ["0004_scheduler"]

    # Stopped as the first release stops on SIGTERM: its lease is left to run out, and the upgrade waits.
    server = LlmcostProcess(db_url).start(tmp_path)
    try:
        assert schema_versions(db_url) == [ALERTING_SCHEMA.head]
        assert "waiting up to" in server.log()
    finally:
        server.stop()
