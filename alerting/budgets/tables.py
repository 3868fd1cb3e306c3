"""Budget tables (created by migration 0003_budgets)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, MetaData, PrimaryKeyConstraint, String, Table, Text

metadata = MetaData()

# Definitions: the config file is the source of truth for the names it declares (source="config");
# the API manages the others (source="api").
budgets = Table(
    "budgets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
)

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
