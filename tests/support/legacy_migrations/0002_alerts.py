"""Alert gateway: alerts, audit trail, channel references, notification outbox, webhook receipts.

Revision ID: 0002_alerts
Revises: 0001_usage
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_alerts"
down_revision = "0001_usage"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN_ALERT = "state <> 'resolved'"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("alertname", sa.String(256), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("notified_severity", sa.String(16), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_notified_at", sa.Float, nullable=True),
        sa.Column("notify_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("acknowledged_by", sa.String(256), nullable=True),
        sa.Column("acknowledged_at", sa.Float, nullable=True),
        sa.Column("acknowledged_via", sa.String(32), nullable=True),
        sa.Column("resolved_at", sa.Float, nullable=True),
        sa.Column("generator_url", sa.Text, nullable=False, server_default=""),
        sa.Column("group_key", sa.Text, nullable=False, server_default=""),
        sa.Column("truncated_alerts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("silence_id", sa.String(128), nullable=True),
    )
    # One open incident per fingerprint; a resolved one no longer counts, so a re-fire is a new row.
    op.create_index(
        "uq_alerts_open_fingerprint",
        "alerts",
        ["fingerprint"],
        unique=True,
        sqlite_where=sa.text(_OPEN_ALERT),
        postgresql_where=sa.text(_OPEN_ALERT),
    )
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_table(
        "alert_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("by", sa.String(256), nullable=False, server_default=""),
        sa.Column("via", sa.String(32), nullable=False, server_default=""),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_events_alert", "alert_events", ["alert_id", "id"])
    op.create_table(
        "alert_channels",
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("first_enqueued_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "channel", name="pk_alert_channels"),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("alert_id", "channel", "seq", name="uq_outbox_alert_channel_seq"),
    )
    op.create_index("ix_outbox_due", "notification_outbox", ["channel", "status", "next_attempt_at"])
    op.create_index("ix_outbox_alert_order", "notification_outbox", ["alert_id", "channel", "status", "id"])
    op.create_table(
        "webhook_receipts",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("receipt_id", sa.String(128), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("source", "receipt_id", name="pk_webhook_receipts"),
    )
    op.create_index("ix_webhook_receipts_received", "webhook_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_table("notification_outbox")
    op.drop_table("alert_channels")
    op.drop_table("alert_events")
    op.drop_table("alerts")
