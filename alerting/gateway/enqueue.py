"""The outbox's write side: notification rows written in the transaction that caused them.

The lifecycle stage calls `enqueue` inside its write transaction, so a notification exists exactly when
the state change that caused it was committed; `alerting.gateway.outbox` delivers the rows later.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from alerting.gateway.grouping import GroupingSettings, group_key_for
from alerting.gateway.records import actor_json, dumps, reopened_json, snapshot
from alerting.gateway.tables import alert_channels, notification_outbox
from alerting.model import Actor, Alert, NotificationKind, Reopened
from exporter.store import DriverStatement

PENDING, SENT, SKIPPED, DEAD = "pending", "sent", "skipped", "dead"
STATUSES = (PENDING, SENT, SKIPPED, DEAD)
"""The states of an outbox row: waiting (or retrying), delivered, not needed by its channel, given up."""


def dialect_insert(dialect: str, table: Any) -> Any:
    """An INSERT supporting ON CONFLICT for the store's dialect."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def enqueue(
    conn: Connection,
    *,
    dialect: str,
    alert: Alert,
    kind: NotificationKind,
    channels: Iterable[str],
    seq: int,
    now: float,
    actor: Actor | None = None,
    previous_severity: str | None = None,
    reopened: Reopened | None = None,
    grouping: GroupingSettings | None = None,
) -> list[str]:
    """Write one outbox row per channel (inside the caller's transaction) and remember the channels.

    With `grouping`, a row about an instance of a per-key budget carries its group key and becomes due
    after `group_wait`, so the instances crossing together can be sent as one message (see `grouping`).
    """
    channels = list(dict.fromkeys(channels))
    if not channels:
        return []
    assert alert.id is not None
    payload: dict[str, Any] = {
        "alert": snapshot(alert),
        "actor": actor_json(actor),
        "previous_severity": previous_severity,
    }
    if reopened is not None:
        payload["reopened"] = reopened_json(reopened)
    text = dumps(payload)
    group = group_key_for(alert) if grouping is not None else None
    rows = []
    for channel in channels:
        grouped = group is not None and grouping is not None and grouping.groups(channel)
        due = now
        if grouped and grouping is not None and grouping.group_wait > 0:
            assert group is not None
            due = _group_due(conn, channel, group, kind, now) or now + grouping.group_wait
        rows.append(
            {
                "alert_id": alert.id,
                "channel": channel,
                "seq": seq,
                "kind": kind.value,
                "payload": text,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": due,
                "created_at": now,
                "updated_at": now,
                "group_key": group if grouped else None,
            }
        )
    _INSERT_OUTBOX.executemany(conn, rows)
    _remember_channels(dialect).executemany(
        conn,
        [{"alert_id": alert.id, "channel": c, "first_enqueued_at": now, "updated_at": now} for c in channels],
    )
    return channels


_INSERT_OUTBOX = DriverStatement(insert(notification_outbox))


def _group_due(conn: Connection, channel: str, group: str, kind: NotificationKind, now: float) -> float | None:
    """When the waiting group this row joins is due, or None if none is waiting.

    As in Alertmanager, a group's wait starts with its first alert; later ones join it, not waiting anew.
    """
    o = notification_outbox
    value = conn.execute(
        select(func.min(o.c.next_attempt_at)).where(
            o.c.channel == channel,
            o.c.group_key == group,
            o.c.kind == kind.value,
            o.c.status == PENDING,
            o.c.next_attempt_at > now,
        )
    ).scalar()
    return None if value is None else float(value)


@functools.cache
def _remember_channels(dialect: str) -> DriverStatement:
    return DriverStatement(
        dialect_insert(dialect, alert_channels).on_conflict_do_nothing(index_elements=["alert_id", "channel"])
    )


def notified_channels(conn: Connection, alert_id: int) -> list[str]:
    """Channels that have been sent (or will be sent) something about this alert."""
    rows = conn.execute(
        select(alert_channels.c.channel).where(alert_channels.c.alert_id == alert_id).order_by(alert_channels.c.channel)
    )
    return [r[0] for r in rows]
