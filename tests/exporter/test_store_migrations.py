"""Exporter's own schema: its branch alone makes the usage tables and upgrades an older store."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect

from exporter.events import UsageEvent
from exporter.store import EXPORTER_SCHEMA, Store
from exporter.store.migration import alembic_config, schema_is_current
from tests.support.legacy_schema import version_rows

USAGE_TABLES = {
    "usage_series",
    "usage_events",
    "usage_rollup",
    "usage_rollup_hourly",
    "ingest_counters",
    "rollup_backfill",
}


def test_an_exporter_store_has_the_usage_tables_and_none_of_alertings(db_url: str) -> None:
    store = Store(db_url)
    assert set(inspect(store.engine).get_table_names()) == USAGE_TABLES | {"alembic_version"}
    assert version_rows(store.engine) == [EXPORTER_SCHEMA.head]
    written = store.write_events([UsageEvent("r1", 1_795_000_200.0, "openai", "gpt-4o", cost_nanousd=7)])
    assert written.accepted == 1
    assert store.series_totals(["model"])[0].get("cost_nanousd") == 7
    store.close()


def test_the_declared_head_is_alembics_and_an_older_store_is_still_upgraded(db_url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config([EXPORTER_SCHEMA])
    assert ScriptDirectory.from_config(config).get_heads() == [EXPORTER_SCHEMA.head]

    store = Store(db_url)
    assert schema_is_current(store.engine, [EXPORTER_SCHEMA])
    with store.engine.begin() as connection:  # back to the revision before the newest
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    assert "rollup_backfill" not in inspect(store.engine).get_table_names()  # the newest revision makes it
    assert not schema_is_current(store.engine, [EXPORTER_SCHEMA])
    store.close()

    again = Store(db_url)  # the quick check must not skip the upgrade
    assert schema_is_current(again.engine, [EXPORTER_SCHEMA])
    assert "rollup_backfill" in inspect(again.engine).get_table_names()
    again.close()


def test_opening_a_current_store_does_not_load_alembic(sqlite_url: str) -> None:
    Store(sqlite_url).close()
    code = (
        f"import sys; from exporter.store import Store; Store({sqlite_url!r}).close(); print('alembic' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
