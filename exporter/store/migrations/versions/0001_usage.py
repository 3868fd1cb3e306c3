"""Usage events, series totals, 5-minute rollups and ingest counters: the base of the `exporter` branch.

Revision ID: 0001_usage
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_usage"
down_revision = None
branch_labels = ("exporter",)
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LABELS = ("provider", "model", "project", "service", "user", "status")
COUNTERS = (
    "requests",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "unpriced_requests",
)


def _counters() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in COUNTERS]


def upgrade() -> None:
    op.create_table(
        "usage_series",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        *(sa.Column(name, sa.String(256), nullable=False) for name in LABELS),
        *_counters(),
        sa.UniqueConstraint(*LABELS, name="uq_usage_series_labels"),
    )
    op.create_table(
        "usage_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(256), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("series_id", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger, nullable=False),
        sa.Column("cost_source", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("meta_json", sa.Text, nullable=True),
        sa.Column("ingested_at", sa.Float, nullable=False),
        sa.UniqueConstraint("request_id", name="uq_usage_events_request_id"),
    )
    op.create_table(
        "usage_rollup",
        sa.Column("series_id", sa.BigInteger, nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        *_counters(),
        sa.PrimaryKeyConstraint("series_id", "bucket", name="pk_usage_rollup"),
    )
    op.create_index("ix_usage_rollup_bucket", "usage_rollup", ["bucket"])
    op.create_table(
        "ingest_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("ingest_counters")
    op.drop_table("usage_rollup")
    op.drop_table("usage_events")
    op.drop_table("usage_series")
