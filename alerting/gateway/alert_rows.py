"""The statements the lifecycle stage runs on the `alerts` and `alert_events` tables.

Built once per dialect: every alert of a webhook storm runs them, so the hottest ones are
`DriverStatement`s run on the driver's cursor (see `exporter.store.driver_sql`). Every method works in
the caller's write transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection

from alerting.gateway.enqueue import dialect_insert
from alerting.gateway.records import alert_from_row, dumps, loads, to_datetime
from alerting.gateway.tables import OPEN_ALERT, alert_events, alerts
from alerting.model import Actor, Alert, Silence
from exporter.store import DriverRow, DriverStatement


class AlertRows:
    """Reads and conditional writes of alert rows, and their audit rows."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        open_row = select(alerts).where(alerts.c.fingerprint == bindparam("fp"), alerts.c.state != "resolved")
        self._select_open = DriverStatement(open_row.with_for_update() if dialect == "postgresql" else open_row)
        self._insert_alert = DriverStatement(
            dialect_insert(dialect, alerts)
            .on_conflict_do_nothing(index_elements=["fingerprint"], index_where=text(OPEN_ALERT))
            .returning(*alerts.c)
        )
        self._insert_event = DriverStatement(insert(alert_events))
        self._select_resolved_since = DriverStatement(
            select(alerts.c.id)
            .where(
                alerts.c.fingerprint == bindparam("fp"),
                alerts.c.state == "resolved",
                alerts.c.starts_at >= bindparam("starts_at"),
            )
            .limit(1)
        )

    def locked(self, conn: Connection, *where: Any) -> Any:
        """The alert row matching `where`, locked for this transaction on PostgreSQL; None if none."""
        stmt = select(alerts).where(*where)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        return conn.execute(stmt).first()

    def open_row(self, conn: Connection, fp: str) -> DriverRow | None:
        """The open (firing or acknowledged) alert row with this fingerprint, locked on PostgreSQL."""
        return self._select_open.first(conn, {"fp": fp})

    def resolved_since(self, conn: Connection, fp: str, starts_at: float) -> bool:
        """True when an occurrence of this alert starting at or after `starts_at` was already resolved."""
        return self._select_resolved_since.first(conn, {"fp": fp, "starts_at": starts_at}) is not None

    def reopened_at(self, conn: Connection, alert_id: int) -> float | None:
        """When the alert last went from acknowledged back to firing by llmcost's doing, or None.

        An escalation past the acknowledged severity, or an unack anywhere but in PagerDuty: PagerDuty's
        acknowledged incident was then resolved and a new one triggered (`alerting.notify.pagerduty`), so
        PagerDuty's news about incidents created before this time is about the replaced one.
        """
        return self.last_reopened_at(conn, [alert_id])

    def last_reopened_at(self, conn: Connection, alert_ids: Sequence[int]) -> float | None:
        """The latest `reopened_at` of these alerts (those a grouped PagerDuty incident listed), or None."""
        if not alert_ids:
            return None
        e = alert_events
        value = conn.execute(
            select(func.max(e.c.at)).where(
                e.c.alert_id.in_(alert_ids),
                e.c.from_state == "acknowledged",
                e.c.to_state == "firing",
                e.c.via != "pagerduty",
            )
        ).scalar()
        return None if value is None else float(value)

    def insert(self, conn: Connection, values: Mapping[str, Any]) -> DriverRow | None:
        """Insert a new open alert; None when another transaction's open row with its fingerprint won."""
        return self._insert_alert.first(conn, values)

    def update(self, conn: Connection, alert_id: int, **values: Any) -> None:
        """Set columns of one alert row."""
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))

    def audit(
        self,
        conn: Connection,
        alert_id: int,
        now: float,
        action: str,
        from_state: str | None,
        to_state: str | None,
        actor: Actor | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a row to the alert's audit trail."""
        self._insert_event.execute(
            conn,
            {
                "alert_id": alert_id,
                "at": now,
                "action": action,
                "from_state": from_state,
                "to_state": to_state,
                "by": actor.by if actor else "",
                "via": actor.via if actor else "",
                "comment": actor.comment if actor else "",
                "detail": dumps(dict(detail)) if detail else None,
            },
        )

    def bump(self, conn: Connection, row: Any, state_guard: Any, **values: Any) -> tuple[int, Alert] | None:
        """Apply `values` and take the next notification number, if nobody changed the row meanwhile."""
        seq = int(row.notify_seq) + 1
        fresh = conn.execute(
            update(alerts)
            .where(alerts.c.id == row.id, alerts.c.notify_seq == row.notify_seq, state_guard)
            .values(notify_seq=seq, **values)
            .returning(*alerts.c)
        ).first()
        return None if fresh is None else (seq, alert_from_row(fresh))


def with_silences(conn: Connection, listed: Sequence[Alert]) -> list[Alert]:
    """`listed` with who silenced each silenced alert in Alertmanager, with what comment, until when.

    The row keeps only the silence's id; the rest is in the alert's `silenced` audit row (`inhibited`, for
    an alert an inhibition holds: the inhibiting alert's name and labels).
    """
    ids = [a.id for a in listed if a.silence is not None and a.id is not None]
    if not ids:
        return list(listed)
    e = alert_events
    rows = conn.execute(
        select(e.c.alert_id, e.c.by, e.c.comment, e.c.detail)
        .where(e.c.alert_id.in_(ids), e.c.action.in_(("silenced", "inhibited")))
        .order_by(e.c.id)
    ).all()
    found: dict[tuple[int, str], Silence] = {}
    for row in rows:
        detail = loads(row.detail) or {}
        silence_id = str(detail.get("silence_id", ""))
        found[(int(row.alert_id), silence_id)] = Silence(
            silence_id, row.by, row.comment, to_datetime(detail.get("ends_at"))
        )
    return [
        dataclasses.replace(a, silence=found.get((a.id, a.silence.id), a.silence))
        if a.silence is not None and a.id is not None
        else a
        for a in listed
    ]
