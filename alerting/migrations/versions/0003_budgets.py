"""Budget definitions, spend per budget instance and period, and evaluation state.

Revision ID: 0003_budgets
Revises: 0002_alerts
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_budgets"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "budget_spend",
        sa.Column("budget", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("budget", "key", "period_start", name="pk_budget_spend"),
    )
    op.create_table(
        "budget_state",
        sa.Column("budget", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("projected", sa.Float, nullable=False),
        sa.Column("projected_low", sa.Float, nullable=False),
        sa.Column("projected_high", sa.Float, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("budget", "key", name="pk_budget_state"),
    )


def downgrade() -> None:
    op.drop_table("budget_state")
    op.drop_table("budget_spend")
    op.drop_table("budgets")
