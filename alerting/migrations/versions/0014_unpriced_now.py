"""Marker: the usage tables are at exporter's unpriced-now revision (no DDL here).

Revision ID: 0014_unpriced_now
Revises: 0013_mail_thread_subject
Depends on: exporter_0005_unpriced_now
Create Date: 2026-12-07

The product's store needs `usage_series.unpriced_adjust_requests` (the console's unpriced calls now).
Depending on exporter's revision here keeps alerting's head standing for both branches, so Alembic
records one row, as it did since `0006_spend_watermark` (see exporter/store/migration.py).
"""

revision = "0014_unpriced_now"
down_revision = "0013_mail_thread_subject"
branch_labels = None
depends_on = "exporter_0005_unpriced_now"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
