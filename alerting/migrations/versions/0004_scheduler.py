"""Scheduler: leader lease, per-tick job claims and the spike detector's persisted state.

Revision ID: 0004_scheduler
Revises: 0003_budgets
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_scheduler"
down_revision = "0003_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("renewed_at", sa.Float, nullable=False),
        sa.Column("term", sa.BigInteger, nullable=False, server_default="1"),
    )
    op.create_table(
        "scheduler_ticks",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("tick", sa.Float, nullable=False),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "spike_state",
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("series_key", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(256), nullable=False, server_default=""),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("project", sa.String(256), nullable=False, server_default=""),
        sa.Column("service", sa.String(256), nullable=False, server_default=""),
        sa.Column("user", sa.String(256), nullable=False, server_default=""),
        sa.Column("window_usd", sa.Float, nullable=False),
        sa.Column("baseline_usd", sa.Float, nullable=False),
        sa.Column("ratio", sa.Float, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("window_minutes", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("firing_since", sa.Float, nullable=True),
        sa.Column("evaluated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("group_name", "series_key", name="pk_spike_state"),
    )


def downgrade() -> None:
    op.drop_table("spike_state")
    op.drop_table("scheduler_ticks")
    op.drop_table("leader_leases")
