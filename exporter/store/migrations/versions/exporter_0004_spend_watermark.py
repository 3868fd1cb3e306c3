"""Spend watermark: a log of ingest batches that wrote to old buckets (backfills, late events).

Revision ID: exporter_0004_spend_watermark
Revises: exporter_0003_sessions
Create Date: 2026-12-04

The DDL of the single chain's `0006_spend_watermark` (which now names a revision without DDL on the
`alerting` branch).
"""

import sqlalchemy as sa
from alembic import op

revision = "exporter_0004_spend_watermark"
down_revision = "exporter_0003_sessions"
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
