"""Notification groups: the group an outbox row belongs to (many instances of one budget crossing together).

Revision ID: 0010_notify_groups
Revises: 0006_spend_watermark
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_notify_groups"
down_revision = "0006_spend_watermark"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows of alerts that are never grouped (and every row written before) carry none.
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("group_key", sa.String(256), nullable=True))
    op.create_index("ix_outbox_group", "notification_outbox", ["channel", "group_key", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_group", "notification_outbox")
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("group_key")
