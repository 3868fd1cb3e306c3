"""Stores as an older llmcost left them, and what a test compares before and after an upgrade.

Until each package owned its tables, all revisions were one linear chain in exporter's folder.
`legacy_migrations/` holds those revision files exactly as they were then (kept, never edited), so a
test can build a store at any revision of that chain, the way a deployed llmcost stamped it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, event, inspect, select
from sqlalchemy.engine import Engine

from exporter.store.engine import create_store_engine
from exporter.store.migration import SchemaPart, alembic_config

LEGACY_CHAIN = SchemaPart(
    branch="legacy", versions=Path(__file__).with_name("legacy_migrations"), head="0010_notify_groups"
)
LEGACY_REVISIONS = (  # in chain order (0005 and 0006 came after 0009)
    "0001_usage",
    "0002_alerts",
    "0003_budgets",
    "0004_scheduler",
    "0007_retention_provenance",
    "0009_alertmanager_push",
    "0005_budgets_origin",
    "0006_spend_watermark",
    "0010_notify_groups",
)
T0 = 1_795_000_200.0


def build_legacy_store(url: str, revision: str) -> None:
    """Create the store at `url` with the single chain, up to and including `revision`."""
    from alembic import command

    config = alembic_config([LEGACY_CHAIN])
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def version_rows(engine: Engine) -> list[str]:
    """The `alembic_version` rows, sorted."""
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    """Every table but alembic_version: columns (in order), primary key, unique constraints, indexes."""
    inspector = inspect(engine)
    snapshot: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        snapshot[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]), _options(i.get("dialect_options", {})))
                for i in inspector.get_indexes(table)
            ),
        }
    return snapshot


def _options(options: dict[str, Any]) -> str:
    """An index's dialect options (a partial index's WHERE clause) as comparable text."""
    return ", ".join(f"{key}={value}" for key, value in sorted(options.items()))


def seed_rows(engine: Engine) -> None:
    """One row in each table a store of any legacy revision has that people's data lives in."""
    metadata = MetaData()
    metadata.reflect(engine)
    rows: dict[str, dict[str, Any]] = {
        "usage_series": {
            "id": 1,
            "provider": "openai",
            "model": "gpt-4o",
            "project": "checkout",
            "service": "api",
            "user": "",
            "status": "ok",
            "requests": 3,
            "input_tokens": 300,
            "output_tokens": 90,
            "cost_nanousd": 4_500_000,
        },
        "usage_events": {
            "request_id": "req-1",
            "ts": T0,
            "series_id": 1,
            "input_tokens": 100,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 30,
            "reasoning_tokens": 0,
            "cost_nanousd": 1_500_000,
            "cost_source": "priced",
            "ingested_at": T0 + 1,
        },
        "usage_rollup": {"series_id": 1, "bucket": int(T0), "requests": 3, "cost_nanousd": 4_500_000},
        "ingest_counters": {"name": "accepted", "value": 3.0},
        "budgets": {"name": "monthly", "definition": '{"limit_usd": 100}', "source": "api", "updated_at": T0},
        "budget_spend": {"budget": "monthly", "key": "", "period_start": int(T0), "cost_nanousd": 4_500_000},
        "alerts": {
            "fingerprint": "f" * 32,
            "alertname": "LLMBudgetExceeded",
            "labels": "{}",
            "annotations": "{}",
            "severity": "critical",
            "state": "firing",
            "source": "budget",
            "starts_at": T0,
            "created_at": T0,
            "updated_at": T0,
        },
    }
    with engine.begin() as connection:
        for name, row in rows.items():
            if name in metadata.tables:
                connection.execute(metadata.tables[name].insert().values(**row))


def level_fingerprint(alertname: str, labels: Mapping[str, str]) -> str:
    """The fingerprint llmcost gave an alert before budget levels were one alert: its own name and labels."""
    identity = sorted({**labels, "alertname": alertname}.items())
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()[:16]


def legacy_alert(
    engine: Engine,
    alertname: str,
    labels: Mapping[str, str],
    *,
    severity: str,
    state: str = "firing",
    at: float = T0,
    acknowledged_by: str | None = None,
    channels: Mapping[str, Mapping[str, str] | None] | None = None,
) -> int:
    """An alert as a release before the budget level family stored it; `channels`: each one notified, its reference.

    Each budget level was an alert of its own, fingerprinted by its name, with its own Slack message
    (reference `{"channel", "ts"}`) and PagerDuty incident (`{"dedup_key": "llmcost-<fingerprint>"}`).
    """
    metadata = MetaData()
    metadata.reflect(engine, only=["alerts", "alert_channels"])
    alerts, alert_channels = metadata.tables["alerts"], metadata.tables["alert_channels"]
    with engine.begin() as connection:
        alert_id = connection.execute(
            alerts.insert().values(
                fingerprint=level_fingerprint(alertname, labels),
                alertname=alertname,
                labels=json.dumps(dict(sorted(labels.items())), separators=(",", ":")),
                annotations=json.dumps({"summary": f"{alertname} {labels.get('budget', '')}"}),
                severity=severity,
                notified_severity=severity,
                state=state,
                source="scheduler",
                starts_at=at,
                created_at=at,
                updated_at=at,
                last_notified_at=at,
                notify_seq=2 if acknowledged_by else 1,
                acknowledged_by=acknowledged_by,
                acknowledged_at=at + 60 if acknowledged_by else None,
                acknowledged_via="api" if acknowledged_by else None,
                resolved_at=at + 600 if state == "resolved" else None,
            )
        ).inserted_primary_key[0]
        for channel, reference in (channels or {}).items():
            connection.execute(
                alert_channels.insert().values(
                    alert_id=alert_id,
                    channel=channel,
                    reference=None if reference is None else json.dumps(reference, separators=(",", ":")),
                    first_enqueued_at=at,
                    updated_at=at,
                )
            )
    return int(alert_id)


def table_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but alembic_version, as dicts."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: [dict(row._mapping) for row in connection.execute(select(table))]
            for name, table in metadata.tables.items()
            if name != "alembic_version" and isinstance(table, Table)
        }


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def ddl(seen: list[str]) -> list[str]:
    """The statements that change the schema."""
    return [s for s in seen if s.split(" ", 1)[0].upper() in ("CREATE", "ALTER", "DROP")]


def only_the_quick_check(seen: list[str]) -> bool:
    """True when the statements are one read of the version table and nothing else of ours.

    What else may show: transaction control, and the driver's own questions when it first connects
    (server version, schema). Alembic would read the version table again, and write or lock.
    """
    ours = [s for s in seen if s.split(" ", 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK", "SHOW")]
    reads_of_versions = [s for s in ours if "alembic_version" in s]
    others = [s for s in ours if "alembic_version" not in s and not s.lower().startswith("select pg_catalog")]
    others = [s for s in others if not s.lower().startswith(("select current_schema", "select version"))]
    return reads_of_versions == ["SELECT version_num FROM alembic_version"] and not others
