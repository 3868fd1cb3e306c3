"""Marker: the usage tables are at exporter's retention and price provenance revision (no DDL here).

Revision ID: 0007_retention_provenance
Revises: 0004_scheduler
Depends on: exporter_0002_retention
Create Date: 2026-12-04

In the single chain this identifier named the revision that added the hourly rollups and the provenance
columns; that DDL is now exporter's `exporter_0002_retention`. The identifier stays here, on
the `alerting` branch after `0004_scheduler`, because a store the single chain stamped
`0007_retention_provenance` also has the alerting tables of 0002-0004: Alembic reads a version row as
"this revision, everything it revises and everything it depends on is applied", so this place in the
graph keeps that row meaning exactly what was applied, and nothing is created twice.
"""

revision = "0007_retention_provenance"
down_revision = "0004_scheduler"
branch_labels = None
depends_on = "exporter_0002_retention"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
