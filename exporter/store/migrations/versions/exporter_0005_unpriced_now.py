"""Unpriced now: per series, what `llmcost reprice` changed in its count of calls stored without a price.

Revision ID: exporter_0005_unpriced_now
Revises: exporter_0004_spend_watermark
Create Date: 2026-12-07

`usage_series.unpriced_requests` counts the calls that arrived without a price (it backs the
`llm_unpriced_requests_total` counter, which must never go down). `unpriced_adjust_requests` holds,
signed, what repricing changed since (-1 a call priced, +1 a call a new price file left unpriced), so
the calls unpriced now are one scan of `usage_series` away, as the all-time cost is.

A store repriced by an earlier release corrected only its rollups, which hold every recorded call in
exactly one of their two tables (exporter/store/rollups.py): the upgrade sets the column to their sum
minus the arrival count, so the console's figure is right from the first start after it.
"""

import sqlalchemy as sa
from alembic import op

revision = "exporter_0005_unpriced_now"
down_revision = "exporter_0004_spend_watermark"
branch_labels = None
depends_on = None

_ROLLUP_UNPRICED = "COALESCE((SELECT SUM(r.unpriced_requests) FROM {table} r WHERE r.series_id = usage_series.id), 0)"


def upgrade() -> None:
    # Plain ADD COLUMN with a default: SQLite and PostgreSQL add it without a rewrite.
    op.add_column(
        "usage_series", sa.Column("unpriced_adjust_requests", sa.BigInteger, nullable=False, server_default="0")
    )
    # One pass per series over its rollups through their (series_id, bucket) primary keys; a series
    # never repriced gets 0. Every series is read: calls priced at $0 (a free model, error calls of no
    # tokens) that a reprice left unpriced changed no cost, and their series may have had no call arriving
    # unpriced, so nothing on the series tells them apart (a filter on those missed them, and the console
    # showed them priced while the report counted them unpriced). A later reprice counts only its own.
    now = " + ".join(_ROLLUP_UNPRICED.format(table=t) for t in ("usage_rollup", "usage_rollup_hourly"))
    op.execute(f"UPDATE usage_series SET unpriced_adjust_requests = {now} - unpriced_requests")


def downgrade() -> None:
    with op.batch_alter_table("usage_series") as batch:
        batch.drop_column("unpriced_adjust_requests")
