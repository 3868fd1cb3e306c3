"""Marker: the usage tables are at exporter's spend watermark revision (no DDL here).

Revision ID: 0006_spend_watermark
Revises: 0005_budgets_origin
Depends on: exporter_0004_spend_watermark
Create Date: 2026-12-04

In the single chain this identifier named the revision that created `rollup_backfill`; that DDL is now
exporter's `exporter_0004_spend_watermark`. The identifier stays here, after `0005_budgets_origin`, so a
store the single chain stamped `0006_spend_watermark` still reads as having every alerting table up to
0005 (see 0007_retention_provenance.py).
"""

revision = "0006_spend_watermark"
down_revision = "0005_budgets_origin"
branch_labels = None
depends_on = "exporter_0004_spend_watermark"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
