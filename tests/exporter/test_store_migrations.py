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
    from alembic.script import ScriptDirectory

    config = alembic_config([EXPORTER_SCHEMA])
    assert ScriptDirectory.from_config(config).get_heads() == [EXPORTER_SCHEMA.head]

    store = Store(db_url)
    assert schema_is_current(store.engine, [EXPORTER_SCHEMA])
    downgrade_one(store)  # back to the revision before the newest
    assert "unpriced_adjust_requests" not in series_columns(store)  # the newest revision adds it
    assert not schema_is_current(store.engine, [EXPORTER_SCHEMA])
    store.close()

    again = Store(db_url)  # the quick check must not skip the upgrade
    assert schema_is_current(again.engine, [EXPORTER_SCHEMA])
    assert "unpriced_adjust_requests" in series_columns(again)
    again.close()


def downgrade_one(store: Store) -> None:
    """Take `store` back one revision, to the schema the release before wrote."""
    from alembic import command

    config = alembic_config([EXPORTER_SCHEMA])
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")


def series_columns(store: Store) -> set[str]:
    return {column["name"] for column in inspect(store.engine).get_columns("usage_series")}


def test_the_upgrade_counts_what_an_earlier_reprice_priced_as_priced_now(db_url: str) -> None:
    # A store repriced by a release before exporter_0005_unpriced_now corrected only its rollups: the
    # upgrade takes the calls unpriced now from them, so the console does not show priced calls as unpriced.

    from exporter.pricing import PriceBook, parse_overrides
    from exporter.repricing import Repricer

    model = {"provider": "self-hosted", "model": "llama-internal"}
    store = Store(db_url)
    unpriced = [
        UsageEvent(f"r{i}", 1_795_000_200.0 + i * 3600, **model, input_tokens=1000, cost_source="unpriced")
        for i in range(3)
    ]
    other = UsageEvent("m", 1_795_000_200.0, "self-hosted", "mistral-internal", input_tokens=5, cost_source="unpriced")
    assert store.write_events([*unpriced, other]).accepted == 4
    # The first two calls priced: the last one and the other model's stay unpriced.
    price = parse_overrides([{**model, "input_per_mtok": 1.0, "output_per_mtok": 0}])
    Repricer(store, PriceBook(price)).run(0.0, until=1_795_000_200.0 + 7000)
    totals = store.series_totals((), adjustments=True)[0]
    assert (totals.get("unpriced_requests"), totals.get("unpriced_adjust_requests")) == (4, -2)

    downgrade_one(store)  # the release before: the column and its count gone
    store.close()

    again = Store(db_url)  # upgrades
    totals = again.series_totals((), adjustments=True)[0]
    assert (totals.get("unpriced_requests"), totals.get("unpriced_adjust_requests")) == (4, -2)
    by_model = {
        row.labels[0]: row.get("unpriced_adjust_requests") for row in again.series_totals(["model"], adjustments=True)
    }
    assert by_model == {"llama-internal": -2, "mistral-internal": 0}
    again.close()


def test_the_upgrade_counts_calls_an_earlier_reprice_made_unpriced_from_a_price_of_zero(db_url: str) -> None:
    """Defect: the upgrade read only series with unpriced arrivals or a cost correction, and missed these.

    Calls priced at $0 (a free model, or error calls of no tokens) that a later price file left unpriced:
    their cost stayed 0, so their series had no correction, and it had no call arriving unpriced. The
    console then showed them as priced (0 unpriced now) while `llmcost report` counted them unpriced.
    """

    from exporter.pricing import PriceBook, parse_overrides
    from exporter.repricing import Repricer

    free = {"provider": "self-hosted", "model": "llama-free"}
    store = Store(db_url)
    calls = [
        UsageEvent(f"f{i}", 1_795_000_200.0 + i * 3600, **free, input_tokens=100, cost_nanousd=0, cost_source="priced")
        for i in range(3)
    ]
    # The reverse, pinned beside it: a call that arrived unpriced, priced at $0 by the reprice.
    later = {"provider": "self-hosted", "model": "llama-later"}
    calls.append(UsageEvent("l", 1_795_000_200.0, **later, input_tokens=100, cost_source="unpriced"))
    assert store.write_events(calls).accepted == 4
    # A price file without llama-free, pricing llama-later at $0.
    zero = parse_overrides([{**later, "input_per_mtok": 0, "output_per_mtok": 0}])
    Repricer(store, PriceBook(zero)).run(0.0, until=1_795_000_200.0 + 4 * 3600)

    def unpriced_now(opened: Store) -> dict[str, int]:
        return {
            row.labels[0]: int(row.get("unpriced_requests") + row.get("unpriced_adjust_requests"))
            for row in opened.series_totals(["model"], adjustments=True)
        }

    assert unpriced_now(store) == {"llama-free": 3, "llama-later": 0}
    downgrade_one(store)  # the release before: the column and its count gone
    store.close()

    again = Store(db_url)  # upgrades
    assert unpriced_now(again) == {"llama-free": 3, "llama-later": 0}
    again.close()


def test_opening_a_current_store_does_not_load_alembic(sqlite_url: str) -> None:
    Store(sqlite_url).close()
    code = (
        f"import sys; from exporter.store import Store; Store({sqlite_url!r}).close(); print('alembic' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
