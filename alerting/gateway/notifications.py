"""The outbox as an operator sees it: listing notifications, retrying a dead letter, purging delivered rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from alerting.gateway.enqueue import DEAD, PENDING, SENT, SKIPPED
from alerting.gateway.records import rfc3339
from alerting.gateway.tables import notification_outbox
from exporter.store import Store


def notification_rows(
    store: Store,
    *,
    status: str | None = None,
    channel: str | None = None,
    alert_id: int | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Outbox rows as the API shows them, newest first."""
    o = notification_outbox
    stmt = select(
        o.c.id,
        o.c.alert_id,
        o.c.channel,
        o.c.kind,
        o.c.status,
        o.c.attempts,
        o.c.created_at,
        o.c.next_attempt_at,
        o.c.sent_at,
        o.c.last_error,
    ).order_by(o.c.id.desc())
    if status is not None:
        stmt = stmt.where(o.c.status == status)
    if channel is not None:
        stmt = stmt.where(o.c.channel == channel)
    if alert_id is not None:
        stmt = stmt.where(o.c.alert_id == alert_id)
    with store.reading() as conn:
        result = conn.execute(stmt.limit(limit)).all()
    return [
        {
            "id": int(r.id),
            "alert_id": int(r.alert_id),
            "channel": r.channel,
            "kind": r.kind,
            "status": r.status,
            "attempts": int(r.attempts),
            "created_at": rfc3339(r.created_at),
            "next_attempt_at": rfc3339(r.next_attempt_at) if r.status == PENDING else None,
            "sent_at": rfc3339(r.sent_at),
            "last_error": r.last_error,
        }
        for r in result
    ]


def requeue(store: Store, outbox_id: int, now: float) -> bool | None:
    """Give a dead letter another round of attempts; False if it is not dead, None if there is no such row."""
    o = notification_outbox
    with store.transaction() as conn:
        requeued = (
            conn.execute(
                update(o)
                .where(o.c.id == outbox_id, o.c.status == DEAD)
                .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
            ).rowcount
            == 1
        )
        if requeued or conn.execute(select(o.c.id).where(o.c.id == outbox_id)).first() is not None:
            return requeued
        return None


def purge_delivered(store: Store, older_than: float) -> int:
    """Delete delivered (sent or skipped) rows last updated before `older_than`; dead letters stay."""
    o = notification_outbox
    with store.transaction() as conn:
        return int(conn.execute(delete(o).where(o.c.status.in_((SENT, SKIPPED)), o.c.updated_at < older_than)).rowcount)
