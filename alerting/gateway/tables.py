"""The gateway's tables (SQLAlchemy Core); migration `0002_alerts` creates them.

- `alerts`: one row per incident. A partial unique index on `fingerprint` over rows that are not resolved
  makes the database the arbiter of dedup: two requests (or processes) firing the same alert end up on
  one row, and a re-fire after a resolve is a new incident (a new row).
- `alert_events`: the audit trail (who, when, through which door, with what comment).
- `alert_channels`: the channels an alert was notified on and what each last delivery returned (Slack
  message ts, the email thread root, the PagerDuty dedup_key), so later notifications update the same
  message or thread.
- `notification_outbox`: one row per notification to deliver, written in the same transaction as the
  state change that caused it; `(alert_id, channel, seq)` is unique, `seq` being the alert's
  notification sequence number.
- `webhook_receipts`: ids of webhook deliveries already applied (Alertmanager payload digests,
  PagerDuty event ids), so a retried delivery changes nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite wants INTEGER PRIMARY KEY (rowid alias) for autoincrement; BigInteger elsewhere.
_ID = BigInteger().with_variant(Integer(), "sqlite")

OPEN_ALERT = "state <> 'resolved'"
"""Predicate of the partial unique index (also the ON CONFLICT target's WHERE)."""

alerts = Table(
    "alerts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("alertname", String(256), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False),  # JSON object
    Column("severity", String(16), nullable=False),
    Column("notified_severity", String(16), nullable=True),  # highest severity notified so far
    Column("state", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_notified_at", Float, nullable=True),
    Column("notify_seq", Integer, nullable=False, server_default="0"),
    Column("acknowledged_by", String(256), nullable=True),
    Column("acknowledged_at", Float, nullable=True),
    Column("acknowledged_via", String(32), nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("generator_url", Text, nullable=False, server_default=""),
    Column("group_key", Text, nullable=False, server_default=""),
    Column("truncated_alerts", Integer, nullable=False, server_default="0"),
    Column("silence_id", String(128), nullable=True),
)
Index(
    "uq_alerts_open_fingerprint",
    alerts.c.fingerprint,
    unique=True,
    sqlite_where=text(OPEN_ALERT),
    postgresql_where=text(OPEN_ALERT),
)
Index("ix_alerts_fingerprint", alerts.c.fingerprint)
Index("ix_alerts_state", alerts.c.state)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=True),
    Column("by", String(256), nullable=False, server_default=""),
    Column("via", String(32), nullable=False, server_default=""),
    Column("comment", Text, nullable=False, server_default=""),
    Column("detail", Text, nullable=True),  # JSON object
)
Index("ix_alert_events_alert", alert_events.c.alert_id, alert_events.c.id)

alert_channels = Table(
    "alert_channels",
    metadata,
    Column("alert_id", BigInteger, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("reference", Text, nullable=True),  # JSON object from the last successful delivery
    Column("first_enqueued_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("alert_id", "channel", name="pk_alert_channels"),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: alert snapshot, actor, previous severity
    Column("status", String(16), nullable=False),  # pending | sent | skipped | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    # `family|budget` for an instance of a per-key budget (see alerting.gateway.grouping), else NULL.
    Column("group_key", String(256), nullable=True),
    UniqueConstraint("alert_id", "channel", "seq", name="uq_outbox_alert_channel_seq"),
)
Index(
    "ix_outbox_due",
    notification_outbox.c.channel,
    notification_outbox.c.status,
    notification_outbox.c.next_attempt_at,
)
Index(
    "ix_outbox_group",
    notification_outbox.c.channel,
    notification_outbox.c.group_key,
    notification_outbox.c.status,
)
Index(
    "ix_outbox_alert_order",
    notification_outbox.c.alert_id,
    notification_outbox.c.channel,
    notification_outbox.c.status,
    notification_outbox.c.id,
)

webhook_receipts = Table(
    "webhook_receipts",
    metadata,
    Column("source", String(32), nullable=False),
    Column("receipt_id", String(128), nullable=False),
    Column("received_at", Float, nullable=False),
    PrimaryKeyConstraint("source", "receipt_id", name="pk_webhook_receipts"),
)
Index("ix_webhook_receipts_received", webhook_receipts.c.received_at)
