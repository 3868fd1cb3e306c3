"""Sessions on usage events: the `session` column and its two partial indexes.

Revision ID: exporter_0003_sessions
Revises: exporter_0002_retention
Create Date: 2026-12-04

The usage half of the single chain's `0005_budgets_origin` (its budget half is the `alerting` branch's
revision of that name, which depends on this one).
"""

import sqlalchemy as sa
from alembic import op

revision = "exporter_0003_sessions"
down_revision = "exporter_0002_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("session", sa.String(256), nullable=True))
    # Partial: events without a session (most of them) cost these indexes nothing. One session's
    # calls are found by (session, ts); the sessions of a time range by (ts, session).
    for name, columns in (
        ("ix_usage_events_session", ["session", "ts"]),
        ("ix_usage_events_session_ts", ["ts", "session"]),
    ):
        op.create_index(
            name,
            "usage_events",
            columns,
            sqlite_where=sa.text("session IS NOT NULL"),
            postgresql_where=sa.text("session IS NOT NULL"),
        )


def downgrade() -> None:
    op.drop_index("ix_usage_events_session_ts", table_name="usage_events")
    op.drop_index("ix_usage_events_session", table_name="usage_events")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("session")
