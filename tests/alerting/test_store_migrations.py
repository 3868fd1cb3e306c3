"""The product's store: exporter's and alerting's branches together, and stores the single chain left behind.

Before each package owned its migrations, one linear chain (0001 … 0010, tests/support/legacy_migrations/)
stamped every store. Such a store, at any of those revisions, must upgrade with the branches: keeping its
rows, creating only what it lacked (re-running a CREATE TABLE would fail), and ending with the schema a
new store gets.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import inspect

from alerting.store import ALERTING_SCHEMA, PRODUCT_MIGRATIONS, open_store
from exporter.store import EXPORTER_SCHEMA, Store, UnknownSchema
from exporter.store.engine import create_store_engine
from exporter.store.migration import alembic_config, schema_is_current
from tests.support.legacy_schema import (
    LEGACY_REVISIONS,
    build_legacy_store,
    ddl,
    only_the_quick_check,
    schema_snapshot,
    seed_rows,
    statements,
    table_rows,
    version_rows,
)

PARTS = (EXPORTER_SCHEMA, *PRODUCT_MIGRATIONS)
_legacy_snapshots: dict[str, dict[str, Any]] = {}
ADDED_SINCE_THE_CHAIN = "unpriced_adjust_requests BIGINT DEFAULT '0' NOT NULL"
"""The one column a revision added after the chain's end (exporter_0005_unpriced_now)."""


@pytest.fixture
def another_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[str], str]:
    """A further empty database of the same kind as `db_url`."""

    def make(name: str) -> str:
        if db_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / name}.db"
        return str(request.getfixturevalue("pg_cluster").create_database())

    return make


def legacy_snapshot(dialect: str, another_url: Callable[[str], str]) -> dict[str, Any]:
    """The schema the whole single chain made, with the columns added since (built once per dialect)."""
    if dialect not in _legacy_snapshots:
        url = another_url("legacy-full")
        build_legacy_store(url, LEGACY_REVISIONS[-1])
        engine = create_store_engine(url)
        with engine.begin() as connection:  # exporter_0005_unpriced_now's column, as a plain DDL statement
            connection.exec_driver_sql(f"ALTER TABLE usage_series ADD COLUMN {ADDED_SINCE_THE_CHAIN}")
        _legacy_snapshots[dialect] = schema_snapshot(engine)
        engine.dispose()
    return _legacy_snapshots[dialect]


def test_the_declared_heads_are_alembics() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(PARTS))
    assert set(script.get_heads()) == {EXPORTER_SCHEMA.head, ALERTING_SCHEMA.head}
    assert script.get_revision("alerting@head").revision == ALERTING_SCHEMA.head
    assert script.get_revision("exporter@head").revision == EXPORTER_SCHEMA.head
    # `implies`: exactly the other heads alerting's head depends on (directly or through its ancestors).
    ancestry = {rev.revision for rev in script.iterate_revisions(ALERTING_SCHEMA.head, "base")}
    assert ancestry & {EXPORTER_SCHEMA.head} == set(ALERTING_SCHEMA.implies)
    # PostgreSQL's alembic_version.version_num is VARCHAR(32); SQLite would accept a longer one silently.
    assert max(len(rev.revision) for rev in script.walk_revisions()) <= 32


def test_a_new_store_has_exactly_the_schema_the_single_chain_made(db_url: str, another_url: Any) -> None:
    store = open_store(db_url)
    assert schema_snapshot(store.engine) == legacy_snapshot(store.dialect, another_url)
    # Alembic keeps one row: alerting's head depends on exporter's, so it stands for both.
    assert version_rows(store.engine) == [ALERTING_SCHEMA.head]
    assert schema_is_current(store.engine, PARTS)
    store.close()


def test_an_exporter_store_gains_alertings_tables_when_the_product_opens_it(db_url: str, another_url: Any) -> None:
    Store(db_url).close()
    store = open_store(db_url)
    assert schema_snapshot(store.engine) == legacy_snapshot(store.dialect, another_url)
    assert schema_is_current(store.engine, PARTS)
    store.close()


def test_exporter_alone_on_a_product_store_says_what_to_open_it_with(db_url: str) -> None:
    """A library user opening the application's store with exporter's branch only gets a plain answer."""
    open_store(db_url).close()
    with pytest.raises(UnknownSchema, match=rf"{ALERTING_SCHEMA.head}.*alerting\.store\.open_store"):
        Store(db_url)
    store = open_store(db_url)  # the store is untouched: the product still opens it
    assert version_rows(store.engine) == [ALERTING_SCHEMA.head]
    store.close()


@pytest.mark.parametrize("revision", LEGACY_REVISIONS)
def test_a_store_the_single_chain_stamped_upgrades_creating_only_what_it_lacked(
    db_url: str, another_url: Any, revision: str
) -> None:
    build_legacy_store(db_url, revision)
    engine = create_store_engine(db_url)
    seed_rows(engine)
    before_rows = table_rows(engine)
    before_tables = set(inspect(engine).get_table_names())
    engine.dispose()

    store = open_store(db_url, auto_migrate=False)
    with statements(store.engine) as seen:
        store.migrate()
    expected = legacy_snapshot(store.dialect, another_url)
    assert schema_snapshot(store.engine) == expected
    created = {s.split(" ")[2] for s in ddl(seen) if s.startswith("CREATE TABLE")}
    assert created == set(expected) - before_tables  # nothing made twice, nothing missing
    if revision == LEGACY_REVISIONS[-1]:
        # The chain's end: alerting's data revisions since, and the one column added since.
        assert [s.split(" ADD COLUMN ")[-1].split(" ")[0] for s in ddl(seen)] == ["unpriced_adjust_requests"], ddl(seen)

    after_rows = table_rows(store.engine)
    for table, rows in before_rows.items():  # every row kept, columns added since at their defaults
        assert [{k: row[k] for k in before} for row, before in zip(after_rows[table], rows, strict=True)] == rows
    assert store.series_totals(["project"])[0].get("cost_nanousd") == 4_500_000
    assert store.event_count() == 1
    store.close()

    again = open_store(db_url, auto_migrate=False)  # a later start: nothing to do
    with statements(again.engine) as seen:
        again.migrate()
    assert only_the_quick_check(seen), seen
    assert version_rows(again.engine) == [ALERTING_SCHEMA.head]
    again.close()


def test_a_reading_command_names_the_revisions_it_needs_on_an_older_store(sqlite_url: str) -> None:
    from exporter.store import StoreNotFound

    build_legacy_store(sqlite_url, "0004_scheduler")
    with pytest.raises(StoreNotFound) as raised:
        open_store(sqlite_url, read_only=True)
    message = str(raised.value)
    assert "0004_scheduler" in message
    assert ALERTING_SCHEMA.head in message
    assert "llmcost serve" in message


def test_opening_a_current_product_store_does_not_load_alembic(sqlite_url: str) -> None:
    open_store(sqlite_url).close()  # one row, alerting's head: it stands for exporter's too
    code = (
        "import sys; from alerting.store import open_store; "
        f"open_store({sqlite_url!r}).close(); print('alembic' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


MIGRATE_AT_ONCE = """
import sys, time
from alerting.store import open_store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # both processes begin together
open_store(sys.argv[1]).close()
print("ok")
"""


@pytest.mark.real_process
@pytest.mark.parametrize("legacy", [None, "0004_scheduler"])
def test_processes_migrating_one_store_at_once_all_succeed(db_url: str, another_url: Any, legacy: str | None) -> None:
    """Several `llmcost` processes starting together on a new or an older store: one upgrades, the others wait."""
    import time

    if legacy:
        build_legacy_store(db_url, legacy)
    start = time.time() + 2.0  # after the interpreters have imported everything
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT_ONCE, db_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [(proc.returncode, out) for proc, (out, _) in zip(procs, results, strict=True)] == [(0, "ok\n")] * 3, results
    engine = create_store_engine(db_url)
    assert schema_snapshot(engine) == legacy_snapshot(engine.dialect.name, another_url)
    assert version_rows(engine) == [ALERTING_SCHEMA.head]
    engine.dispose()
