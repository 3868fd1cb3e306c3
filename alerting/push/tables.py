"""`alertmanager_alerts`: the alerts llmcost pushes to Alertmanager, one row per fingerprint.

A row is firing while `ends_at` is NULL; resolving sets `ends_at`, and the row is pushed with it for
`resolved_resend` more seconds. Firing again after a resolve reopens the row with a new `starts_at`
(a new occurrence, as Alertmanager sees it).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, MetaData, String, Table, Text

metadata = MetaData()

alertmanager_alerts = Table(
    "alertmanager_alerts",
    metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("alertname", String(256), nullable=False),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("generator_url", Text, nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)
Index("ix_alertmanager_alerts_ends_at", alertmanager_alerts.c.ends_at)
