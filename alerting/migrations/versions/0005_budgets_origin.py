"""Budgets: where each definition came from, and the audited resets.

Revision ID: 0005_budgets_origin
Revises: 0009_alertmanager_push
Depends on: exporter_0003_sessions
Create Date: 2026-12-04

In the single chain this revision also added `usage_events.session`; that half is exporter's
`exporter_0003_sessions`, a dependency, so a store stamped here still reads as having both.

Additive only: existing budget rows keep their `source` (`config` or `api`) as their origin and have no
`origin_ref`, so no running `serve` prunes them (only an explicit `llmcost budgets apply --prune` can).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_budgets_origin"
down_revision = "0009_alertmanager_push"
branch_labels = None
depends_on = "exporter_0003_sessions"


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


def downgrade() -> None:
    op.drop_index("ix_budget_resets_budget_period", table_name="budget_resets")
    op.drop_table("budget_resets")
    with op.batch_alter_table("budgets") as batch:
        batch.drop_column("updated_by")
        batch.drop_column("origin_ref")
