"""Retention and price provenance: hourly rollups, 1-hour cache writes, price source, cost corrections.

Revision ID: exporter_0002_retention
Revises: 0001_usage
Create Date: 2026-12-04

The DDL of the single chain's `0007_retention_provenance` (see alerting/migrations/versions/ for why that
identifier now names a revision without DDL on the `alerting` branch).
"""

import sqlalchemy as sa
from alembic import op

revision = "exporter_0002_retention"
down_revision = "0001_usage"
branch_labels = None
depends_on = None

_COUNTERS = (
    "requests",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "unpriced_requests",
)


def upgrade() -> None:
    op.create_table(
        "usage_rollup_hourly",
        sa.Column("series_id", sa.BigInteger, nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _COUNTERS),
        sa.PrimaryKeyConstraint("series_id", "bucket", name="pk_usage_rollup_hourly"),
    )
    op.create_index("ix_usage_rollup_hourly_bucket", "usage_rollup_hourly", ["bucket"])
    # Plain ADD COLUMN (nullable or with a default): SQLite and PostgreSQL add these without a rewrite.
    op.add_column("usage_events", sa.Column("cache_write_1h_tokens", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("usage_events", sa.Column("price_source", sa.String(256), nullable=True))
    op.add_column("usage_events", sa.Column("price_from", sa.String(32), nullable=True))
    op.add_column(
        "usage_series", sa.Column("cost_adjust_up_nanousd", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "usage_series", sa.Column("cost_adjust_down_nanousd", sa.BigInteger, nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("usage_series") as batch:
        batch.drop_column("cost_adjust_down_nanousd")
        batch.drop_column("cost_adjust_up_nanousd")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("price_from")
        batch.drop_column("price_source")
        batch.drop_column("cache_write_1h_tokens")
    op.drop_index("ix_usage_rollup_hourly_bucket", "usage_rollup_hourly")
    op.drop_table("usage_rollup_hourly")
