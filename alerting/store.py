"""The product's store: exporter's usage tables plus alerting's own (alerts, budgets, scheduler, spikes, push).

Alerting's tables are migrated by the `alerting` Alembic branch in alerting/migrations/versions/; its
first revision depends on exporter's first, and later ones on the exporter revisions the single chain
applied before them (so a store stamped by that chain upgrades without re-running anything).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from alerting.upgrade_guard import refuse_while_older_process_leads
from exporter.store import SchemaPart, Store

ALERTING_SCHEMA = SchemaPart(
    branch="alerting",
    versions=Path(__file__).with_name("migrations") / "versions",
    head="0014_unpriced_now",
    implies=("exporter_0005_unpriced_now",),  # through 0014_unpriced_now
    before_upgrade=refuse_while_older_process_leads,
)
"""Alerting's branch: pass it to `Store(..., migrations=...)` wherever a store serves the full product."""

PRODUCT_MIGRATIONS: tuple[SchemaPart, ...] = (ALERTING_SCHEMA,)
"""Every schema part the product needs beyond exporter's."""


def open_store(
    url: str,
    *,
    clock: Callable[[], float] = time.time,
    auto_migrate: bool = True,
    read_only: bool = False,
    must_exist: bool = False,
) -> Store:
    """A `Store` with alerting's tables: created or upgraded on open unless `read_only` (see `Store`)."""
    return Store(
        url,
        clock=clock,
        auto_migrate=auto_migrate,
        read_only=read_only,
        must_exist=must_exist,
        migrations=PRODUCT_MIGRATIONS,
    )
