"""Alertmanager push: the alerts llmcost posts to Alertmanager's API v2 (`alerting.push`).

Revision ID: 0009_alertmanager_push
Revises: 0004_scheduler
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_alertmanager_push"
down_revision = "0007_retention_provenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alertmanager_alerts",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("alertname", sa.String(256), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alertmanager_alerts_ends_at", "alertmanager_alerts", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_alertmanager_alerts_ends_at", "alertmanager_alerts")
    op.drop_table("alertmanager_alerts")
