"""Budgets: where each definition came from, the audited resets; sessions on usage events.

Revision ID: 0005_budgets_origin
Revises: 0004_scheduler
Create Date: 2026-12-04

Additive only: existing budget rows keep their `source` (`config` or `api`) as their origin and have no
`origin_ref`, so no running `serve` prunes them (only an explicit `llmcost budgets apply --prune` can).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_budgets_origin"
down_revision = "0009_alertmanager_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The config file (absolute path) that made a `config` budget: `serve` prunes only its own file's.
    op.add_column("budgets", sa.Column("origin_ref", sa.String(1024), nullable=True))
    op.add_column("budgets", sa.Column("updated_by", sa.String(256), nullable=True))
    op.create_table(
        "budget_resets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("budget", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("reset_at", sa.Float, nullable=False),
        sa.Column("reset_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        # What the instance had counted in its period when it was reset (the audit, and the baseline a
        # rebuild from the rollups subtracts).
        sa.Column("cost_nanousd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_budget_resets_budget_period", "budget_resets", ["budget", "period_start"])
    op.add_column("usage_events", sa.Column("session", sa.String(256), nullable=True))
    # Partial: events without a session (most of them) cost these indexes nothing. One session's
    # calls are found by (session, ts); the sessions of a time range by (ts, session).
    for name, columns in (
        ("ix_usage_events_session", ["session", "ts"]),
        ("ix_usage_events_session_ts", ["ts", "session"]),
    ):
        op.create_index(
            name,
            "usage_events",
            columns,
            sqlite_where=sa.text("session IS NOT NULL"),
            postgresql_where=sa.text("session IS NOT NULL"),
        )


def downgrade() -> None:
    op.drop_index("ix_usage_events_session_ts", table_name="usage_events")
    op.drop_index("ix_usage_events_session", table_name="usage_events")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("session")
    op.drop_index("ix_budget_resets_budget_period", table_name="budget_resets")
    op.drop_table("budget_resets")
    with op.batch_alter_table("budgets") as batch:
        batch.drop_column("updated_by")
        batch.drop_column("origin_ref")
