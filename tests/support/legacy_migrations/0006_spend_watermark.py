"""Spend watermark: a log of ingest batches that wrote to old buckets (backfills, late events).

Revision ID: 0006_spend_watermark
Revises: 0004_scheduler
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_spend_watermark"
down_revision = "0005_budgets_origin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_backfill",
        sa.Column("generation", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("oldest_bucket", sa.BigInteger, nullable=False),
        sa.Column("written_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollup_backfill")
