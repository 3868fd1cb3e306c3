"""Budget tables (created by migration 0003_budgets)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

metadata = MetaData()

# Definitions and their origin (`source`): "config" (applied from a config file, `origin_ref` is its
# absolute path), "api" (PUT /v1/budgets/NAME) or "cli" (`llmcost budgets create`). A config apply never
# touches api/cli budgets; `serve` prunes only budgets its own config file made (docs/budgets.md).
budgets = Table(
    "budgets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("origin_ref", String(1024), nullable=True),
    Column("updated_by", String(256), nullable=True),
)

# Audited resets (migration 0005): a fresh count for the instance's current period from `reset_at`;
# the counters are what it had counted before, subtracted when the period is rebuilt from the rollups.
budget_resets = Table(
    "budget_resets",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("budget", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("reset_at", Float, nullable=False),
    Column("reset_by", String(256), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("cost_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
    Column("requests", BigInteger, nullable=False, server_default="0"),
)
Index("ix_budget_resets_budget_period", budget_resets.c.budget, budget_resets.c.period_start)

# Spend per budget instance and period, maintained inside every ingest transaction.
budget_spend = Table(
    "budget_spend",
    metadata,
    Column("budget", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("budget", "key", "period_start", name="pk_budget_spend"),
)

# What the last evaluation found per instance: projection and the alert levels it raised.
budget_state = Table(
    "budget_state",
    metadata,
    Column("budget", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("projected", Float, nullable=False),
    Column("projected_low", Float, nullable=False),
    Column("projected_high", Float, nullable=False),
    Column("method", String(32), nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("budget", "key", name="pk_budget_state"),
)

REVISION_COUNTER = "budgets.revision"
