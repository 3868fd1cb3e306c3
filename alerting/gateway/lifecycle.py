"""The lifecycle stage: fire, resolve, acknowledge and unacknowledge alerts inside one DB transaction.

Every function takes the caller's connection (a write transaction), changes the alert row with a
conditional update (`notify_seq` acts as a version), writes the audit row and the outbox rows in that
same transaction, and returns a `Change`. Nothing is delivered here: after the commit the outbox
workers deliver, so a crash between accepting and delivering loses nothing.

Dedup comes from the database: the partial unique index on open fingerprints funnels concurrent fires
into one row (INSERT … ON CONFLICT DO NOTHING, then a locking read), and the conditional updates let
exactly one of several racing transactions enqueue a notification. The statements themselves are in
`alert_rows` (alert and audit rows) and `enqueue` (outbox rows).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from alerting.gateway.alert_rows import AlertRows
from alerting.gateway.changes import AlertConflict, AlertInput, AlertNotFound, Change
from alerting.gateway.dedup import Reason, decide, severity_rank
from alerting.gateway.enqueue import enqueue, notified_channels
from alerting.gateway.evidence import ReminderEvidence
from alerting.gateway.records import alert_from_row, dumps, loads, reopened_json, rfc3339
from alerting.gateway.settings import GatewaySettings
from alerting.gateway.silences import CHANNEL as SILENCES
from alerting.gateway.tables import alerts
from alerting.model import (
    INHIBITION_PREFIX,
    Actor,
    Alert,
    NotificationKind,
    Reopened,
    Silence,
    alert_family,
    level_rank,
)

__all__ = ["AlertConflict", "AlertInput", "AlertNotFound", "Change", "Lifecycle"]
"""The value types live in `alerting.gateway.changes`; callers of the stage may import them from here."""

EDITABLE_CHANNELS = ("slack",)
"""Channels whose message about an alert is edited in place when its figures change (`AlertInput.update`)."""

PAGING_CHANNELS = ("pagerduty",)
"""Channels whose open item keeps paging until it is closed (an incident escalates; a message does not).

When an alert falls to a severity no longer routed to such a channel, its item there is closed (`_fell`).
"""


class Lifecycle:
    """Applies alert state changes; shared by the HTTP handlers, the scheduler entry points and `tick`."""

    def __init__(self, settings: GatewaySettings, dialect: str, evidence: ReminderEvidence | None = None) -> None:
        self.settings = settings
        self.dialect = dialect
        self.rows = AlertRows(dialect)
        self.evidence = evidence or ReminderEvidence()
        """What vouches that an alert the scheduler evaluates still fires before `repeat_due` reminds of it."""

    # --- fire -------------------------------------------------------------------------------------

    def fire(self, conn: Connection, incoming: AlertInput, now: float) -> Change:
        """Record that an alert is firing and enqueue what the dedup stage decides."""
        fp = incoming.fingerprint
        row = self.rows.open_row(conn, fp)
        if row is None:
            # A late or replayed report of an occurrence that was already resolved must not reopen it.
            starts_at = incoming.starts_at
            if (
                incoming.source == "alertmanager"
                and starts_at is not None
                and self.rows.resolved_since(conn, fp, starts_at)
            ):
                return Change("ignored", reason="this occurrence was already resolved")
            created = self._create(conn, incoming, now)
            if created is not None:
                return created
            # A concurrent transaction created it first (and notified): continue with its row.
            row = self.rows.open_row(conn, fp)
            assert row is not None
        if incoming.source == "alertmanager" and level_rank(incoming.alertname) < level_rank(row.alertname):
            # Alertmanager still holds the earlier level of an escalating alert until its resolve (pushed
            # when the level rose) reaches it: that report must not lower the alert and make it rise again.
            return Change("ignored", alert_from_row(row), reason="an earlier level of an alert that has since risen")
        level_rose = level_rank(incoming.alertname) > level_rank(row.alertname)
        # A budget's levels only rise within a period: its fall is a deliberate change (a limit raised),
        # never a flap, so it stands down (`_fell`). Other alerts falling back are not news.
        fell = alert_family(incoming.alertname) is not None and severity_rank(incoming.severity) < severity_rank(
            row.severity
        )
        held_alertname = row.alertname  # the level an acknowledgement held for, before this report
        if incoming.source == "alertmanager" and row.silence_id is not None:
            # Alertmanager delivers no silenced or inhibited alert: one it delivers firing is held no longer.
            self._unsilence_row(conn, row, now, "delivered by Alertmanager: no longer held there")
            row = self.rows.open_row(conn, fp)
        refreshed = self._refresh(conn, row, incoming, now)
        if refreshed:
            row = self.rows.open_row(conn, fp)
        change = self._notify_if_due(
            conn, row, now, via=incoming.source, level_rose=level_rose, held_alertname=held_alertname
        )
        if fell and not change.changed and row is not None and row.state == "firing":
            return self._fell(conn, row, now, via=incoming.source)
        if incoming.update and refreshed and not change.changed and row is not None and row.state == "firing":
            return self._edit_in_place(conn, row, now, via=incoming.source)
        return change

    def refresh_figures(self, conn: Connection, incoming: AlertInput, now: float) -> Change:
        """Store an open alert's new figures (its annotations), at the level it is at; notify nobody.

        For llmcost's own alerts on the Alertmanager path: their figures change with each evaluation, and
        Alertmanager's webhook sends a group again only when its alerts come or go, or after
        repeat_interval, never for new annotations, so the gateway kept the first figures for hours. It
        takes them from the scheduler instead, as on the direct path (`fire` refreshes them). Nothing
        more: a new alert, a new level and a resolve still come through Alertmanager, where silences,
        inhibitions and routes apply. `incoming.update` edits the messages in place, as `fire` does.
        """
        row = self.rows.open_row(conn, incoming.fingerprint)
        if row is None or row.alertname != incoming.alertname:
            return Change("ignored", reason="not open at this level: Alertmanager brings it")
        notes = dict(incoming.annotations)
        if loads(row.annotations) == notes:
            return Change("unchanged", alert_from_row(row))
        self.rows.update(conn, row.id, updated_at=now, annotations=dumps(notes))
        row = self.rows.open_row(conn, incoming.fingerprint)
        if incoming.update and row is not None and row.state == "firing":
            return self._edit_in_place(conn, row, now, via=incoming.source)
        return Change("unchanged", alert_from_row(row), reason="figures refreshed")

    def fall(self, conn: Connection, incoming: AlertInput, now: float) -> Change:
        """Apply at once a budget alert's fall to a lower level (its limit raised), on the Alertmanager path.

        Alertmanager knows each level as an alert of its own, so a fall reaches it as the end of the
        higher level and a new, lower one (`AlertmanagerSink`). Delivered back, that end resolved the
        whole alert, and the lower level, starting where the alert had started, was then dropped as a
        replay of an occurrence already resolved: a budget still at warning had no alert, where the
        direct path keeps it firing at warning. Applied here first, the alert is at the lower level
        when the end of the higher one arrives, which `resolve` then ignores as an earlier level's. Only
        an alert open at a higher level of its family falls; anything else comes through Alertmanager.
        """
        row = self.rows.open_row(conn, incoming.fingerprint)
        if (
            row is None
            or alert_family(incoming.alertname) is None
            or level_rank(incoming.alertname) >= level_rank(row.alertname)
        ):
            return Change("ignored", reason="not open at a higher level: Alertmanager brings it")
        return self.fire(conn, dataclasses.replace(incoming, source="scheduler"), now)

    def _edit_in_place(self, conn: Connection, row: Any, now: float, *, via: str) -> Change:
        """Show a firing alert's new figures where its messages can be edited (Slack), telling nobody.

        Not a reminder: the repeat clock and the notified severity stay, no thread reply, no mail (a mail
        cannot be edited, and the resolve mail carries the figures), no PagerDuty event (an open incident
        keeps its first summary; a new trigger would only add to its log). Acknowledged alerts keep their
        message as acknowledged: their stored figures are refreshed all the same and the resolve shows them.
        """
        bumped = self.rows.bump(conn, row, alerts.c.state == "firing", updated_at=now)
        if bumped is None:
            return Change("unchanged", alert_from_row(row), reason="changed concurrently")
        seq, alert = bumped
        known = notified_channels(conn, row.id)
        channels = self._enqueue_edits(conn, alert, known, seq, now)
        self.rows.audit(
            conn, row.id, now, "updated", row.state, row.state, Actor(by="", via=via), {"channels": channels}
        )
        return Change("updated", alert, channels=tuple(channels), reason="figures changed")

    def _enqueue_edits(self, conn: Connection, alert: Alert, known: list[str], seq: int, now: float) -> list[str]:
        """Queue an edit of the alert's messages on the editable channels it was already told on.

        Never grouped: each alert's own message is edited (a listed alert's is skipped by the notifier).
        """
        return enqueue(
            conn,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.UPDATED,
            channels=[c for c in EDITABLE_CHANNELS if c in known],
            seq=seq,
            now=now,
        )

    def _fell(self, conn: Connection, row: Any, now: float, *, via: str) -> Change:
        """A firing budget alert fell to a lower severity (its limit was raised): stand down quietly.

        Nobody is notified (no thread reply, no mail), but nothing keeps saying what no longer holds: the
        Slack message is edited to the new level, and an open PagerDuty incident that the new severity
        is not routed to is resolved. Left open, it kept escalating to the next on-call for a critical
        level that the person who raised the limit had just ended. `notified_severity` comes down to the
        new severity, so a later rise (spend reaching critical of the new limit) is a rise again: it is
        told in the existing threads and pages again under the same `dedup_key`. Acknowledged alerts are
        left as they are: their incident is acknowledged, and the acknowledgement holds for the level
        it was given at.
        """
        known = notified_channels(conn, row.id)
        routed = set(self.settings.channels_for(row.severity))
        bumped = self.rows.bump(conn, row, alerts.c.state == "firing", notified_severity=row.severity, updated_at=now)
        if bumped is None:
            return Change("unchanged", alert_from_row(row), reason="changed concurrently")
        seq, alert = bumped
        closed = enqueue(
            conn,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.RESOLVED,
            channels=[c for c in PAGING_CHANNELS if c in known and c not in routed],
            seq=seq,
            now=now,
            actor=Actor(by="", via=via, comment=f"fell to {alert.alertname} ({alert.severity})"),
        )  # never grouped: only this alert's own incident stands down
        edited = self._enqueue_edits(conn, alert, known, seq, now)
        channels = closed + edited
        self.rows.audit(
            conn,
            row.id,
            now,
            "fell",
            row.state,
            row.state,
            Actor(by="", via=via),
            {"channels": channels, "closed": closed, "severity": alert.severity},
        )
        return Change("updated", alert, channels=tuple(channels), reason="severity fell")

    def _create(self, conn: Connection, incoming: AlertInput, now: float) -> Change | None:
        """Insert a new incident, already counted as notified (a new alert's decision is always "first").

        Returns None when the partial unique index says another transaction created it meanwhile.
        """
        decision = decide(
            state="firing",
            severity=incoming.severity,
            notified_severity=None,
            last_notified_at=None,
            now=now,
            repeat_interval=self.settings.repeat_interval,
        )
        row = self.rows.insert(
            conn,
            {
                "fingerprint": incoming.fingerprint,
                "alertname": incoming.alertname,
                "labels": dumps(incoming.stored_labels),
                "annotations": dumps(dict(incoming.annotations)),
                "severity": incoming.severity,
                "notified_severity": incoming.severity,
                "state": "firing",
                "source": incoming.source,
                "starts_at": incoming.starts_at if incoming.starts_at is not None else now,
                "created_at": now,
                "updated_at": now,
                "last_notified_at": now,
                "notify_seq": 1,
                "generator_url": incoming.generator_url,
                "group_key": incoming.group_key,
                "truncated_alerts": incoming.truncated_alerts,
                "acknowledged_by": None,
                "acknowledged_at": None,
                "acknowledged_via": None,
                "resolved_at": None,
                "silence_id": None,
            },
        )
        if row is None:
            return None
        alert = alert_from_row(row)
        assert alert.id is not None and decision.kind is not None
        channels = enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=decision.kind,
            channels=self.settings.channels_for(alert.severity),
            seq=1,
            now=now,
        )
        self.rows.audit(
            conn,
            alert.id,
            now,
            "fired",
            None,
            "firing",
            Actor(by="", via=incoming.source),
            detail={"reason": decision.reason.value, "channels": channels},
        )
        return Change("fired", alert, decision, tuple(channels), decision.reason.value)

    def _refresh(self, conn: Connection, row: Any, incoming: AlertInput, now: float) -> bool:
        """Store what a re-fire says now (annotations, severity, …); True if anything changed."""
        values = {
            "alertname": incoming.alertname,  # differs only for a level of an escalating family
            "annotations": dumps(dict(incoming.annotations)),
            "severity": incoming.severity,
            "generator_url": incoming.generator_url or row.generator_url,
            "group_key": incoming.group_key or row.group_key,
            "truncated_alerts": incoming.truncated_alerts,
        }
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if changed:
            self.rows.update(conn, row.id, updated_at=now, **changed)
            if "severity" in changed or "alertname" in changed:
                self.rows.audit(
                    conn,
                    row.id,
                    now,
                    "severity_changed",
                    row.state,
                    row.state,
                    detail={
                        "from": row.severity,
                        "to": incoming.severity,
                        "from_alertname": row.alertname,
                        "to_alertname": incoming.alertname,
                    },
                )
        return bool(changed)

    def _notify_if_due(
        self,
        conn: Connection,
        row: Any,
        now: float,
        *,
        via: str = "gateway",
        level_rose: bool = False,
        held_alertname: str | None = None,
    ) -> Change:
        """Enqueue what the dedup stage decides for a (still) firing alert.

        A severity rise of an acknowledged alert re-opens it: the acknowledgement was given at a lower
        severity, so the alert is firing again (reminders resume, it can be acknowledged again) and
        every channel is told, with who acknowledged which level (`Notification.reopened`); a silence
        llmcost created for the acknowledgement is expired.
        """
        decision = decide(
            state=row.state,
            severity=row.severity,
            notified_severity=row.notified_severity,
            last_notified_at=row.last_notified_at,
            now=now,
            repeat_interval=self.settings.repeat_interval,
            level_rose=level_rose,
        )
        kind = decision.kind
        if kind is None:
            return Change("unchanged", alert_from_row(row), decision, reason=decision.reason.value)
        highest = row.severity
        if severity_rank(row.notified_severity) > severity_rank(row.severity):
            highest = row.notified_severity
        reopened = None
        values: dict[str, Any] = {"notified_severity": highest, "last_notified_at": now, "updated_at": now}
        if row.state == "acknowledged" and decision.reason is Reason.SEVERITY_ROSE:
            reopened = Reopened(
                by=row.acknowledged_by or "",
                via=row.acknowledged_via or "",
                alertname=held_alertname or row.alertname,
                severity=row.notified_severity or "",
            )
            values.update(state="firing", acknowledged_by=None, acknowledged_at=None, acknowledged_via=None)
        bumped = self.rows.bump(conn, row, alerts.c.state == row.state, **values)
        if bumped is None:  # another transaction notified first
            return Change("unchanged", alert_from_row(row), decision, reason="notified concurrently")
        seq, alert = bumped
        targets = self.settings.channels_for(alert.severity)
        # A channel hearing of the alert for the first time (e.g. mail once a budget alert rises past its
        # info level) gets a first message, which starts its thread; the others an update of theirs.
        known = set(notified_channels(conn, row.id)) if kind is not NotificationKind.FIRING else set()
        updates = [c for c in targets if c in known]
        channels = enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=kind,
            channels=updates,
            seq=seq,
            now=now,
            previous_severity=row.notified_severity if kind is NotificationKind.ESCALATED else None,
            reopened=reopened,
        )
        channels += enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.FIRING,
            channels=[c for c in targets if c not in known],
            seq=seq,
            now=now,
        )
        detail: dict[str, Any] = {"reason": decision.reason.value, "channels": channels}
        if reopened is not None:
            detail["reopened"] = reopened_json(reopened)
            if SILENCES in known:  # the acknowledgement's silence goes with it
                enqueue(
                    conn,
                    dialect=self.dialect,
                    alert=alert,
                    kind=NotificationKind.UNACKNOWLEDGED,
                    channels=[SILENCES],
                    seq=seq,
                    now=now,
                )
        action = {Reason.FIRST: "fired", Reason.SEVERITY_ROSE: "escalated", Reason.LEVEL_ROSE: "escalated"}.get(
            decision.reason, "repeat"
        )
        if action == "repeat" and not channels:  # routed nowhere (info): the clock restarts silently
            return Change("unchanged", alert, decision, reason="no channel is routed for this severity")
        self.rows.audit(conn, row.id, now, action, row.state, alert.state, Actor(by="", via=via), detail=detail)
        return Change(action, alert, decision, tuple(channels), decision.reason.value)

    def repeat_due(self, conn: Connection, now: float, limit: int = 500) -> list[Change]:
        """Enqueue repeats for firing alerts whose repeat interval has elapsed.

        An alert the scheduler evaluates (budgets, spikes) only once a pass of its job has seen it since its
        reminder fell due (`alerting.gateway.evidence`); until then it waits, and the pass may resolve it.
        """
        repeat_interval = self.settings.repeat_interval
        rows = conn.execute(
            select(alerts.c.id)
            .where(
                alerts.c.state == "firing",
                alerts.c.silence_id.is_(None),  # silenced or inhibited in Alertmanager: no reminders, as there
                alerts.c.last_notified_at <= now - repeat_interval,
                # In the query, not after it: alerts waiting for a pass must not fill the `limit` every tick.
                self.evidence.reminder_vouched(conn, repeat_interval),
            )
            .order_by(alerts.c.id)
            .limit(limit)
        ).all()
        changes = []
        for (alert_id,) in rows:
            row = self.rows.locked(conn, alerts.c.id == alert_id, alerts.c.state == "firing")
            if row is not None and row.silence_id is None:
                change = self._notify_if_due(conn, row, now)
                if change.changed:
                    changes.append(change)
        return changes

    # --- resolve ----------------------------------------------------------------------------------

    def resolve(
        self,
        conn: Connection,
        fp: str,
        now: float,
        *,
        actor: Actor,
        starts_at: float | None = None,
        alertname: str | None = None,
        figures: tuple[str, dict[str, str]] | None = None,
    ) -> Change:
        """Resolve the open alert with this fingerprint (`starts_at`: only if it started no later).

        `alertname`: the name the resolve is about. For a level of an escalating family it must be the
        alert's current level: the end of an earlier level (Alertmanager is told when the level rises)
        does not end the alert. `figures`: (alertname, annotations) read when the resolve was decided;
        stored with it, and so shown by it, when the alert is still at that alertname.
        """
        row = self.rows.open_row(conn, fp)
        if row is None:
            return Change("ignored", reason="no open alert with this fingerprint")
        if starts_at is not None and row.starts_at > starts_at:
            return Change("ignored", alert_from_row(row), reason="the resolve is about an earlier occurrence")
        if alertname is not None and alert_family(alertname) is not None and alertname != row.alertname:
            reason = f"an earlier level ended; the alert is {row.alertname}"
            return Change("ignored", alert_from_row(row), reason=reason)
        notes = figures[1] if figures is not None and figures[0] == row.alertname else None
        return self._resolve_row(conn, row, now, actor, notes)

    def resolve_id(self, conn: Connection, alert_id: int, now: float, *, actor: Actor) -> Change:
        """Resolve an alert by id (no-op if it is already resolved)."""
        row = self.rows.locked(conn, alerts.c.id == alert_id)
        if row is None:
            raise AlertNotFound(alert_id)
        if row.state == "resolved":
            return Change("unchanged", alert_from_row(row), reason="already resolved")
        return self._resolve_row(conn, row, now, actor)

    def _resolve_row(
        self, conn: Connection, row: Any, now: float, actor: Actor, annotations: dict[str, str] | None = None
    ) -> Change:
        # With the figures of now (a budget whose limit was raised): its last ones said what no longer holds.
        fresh = {} if annotations is None else {"annotations": dumps(annotations)}
        bumped = self.rows.bump(
            conn,
            row,
            alerts.c.state != "resolved",
            state="resolved",
            resolved_at=now,
            updated_at=now,
            silence_id=None,
            **fresh,
        )
        if bumped is None:
            return Change("unchanged", alert_from_row(row), reason="changed concurrently")
        seq, alert = bumped
        self.rows.audit(conn, row.id, now, "resolved", row.state, "resolved", actor)
        channels = enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.RESOLVED,
            channels=notified_channels(conn, row.id),
            seq=seq,
            now=now,
            actor=actor,
        )
        return Change("resolved", alert, channels=tuple(channels))

    # --- acknowledge ------------------------------------------------------------------------------

    def ack(self, conn: Connection, alert_id: int, actor: Actor, now: float) -> Change:
        """Acknowledge a firing alert: stops repeats, updates every channel notified so far."""
        row = self.rows.locked(conn, alerts.c.id == alert_id)
        if row is None:
            raise AlertNotFound(alert_id)
        if row.state == "resolved":
            raise AlertConflict(f"alert {alert_id} is resolved")
        if row.state == "acknowledged":
            return Change("unchanged", alert_from_row(row), reason="already acknowledged")
        bumped = self.rows.bump(
            conn,
            row,
            alerts.c.state == "firing",
            state="acknowledged",
            acknowledged_by=actor.by[:256],
            acknowledged_at=now,
            acknowledged_via=actor.via[:32],
            updated_at=now,
            silence_id=None,  # acknowledged says more; unacknowledged, the silence watch finds it again
        )
        if bumped is None:
            return Change("unchanged", alert_from_row(row), reason="changed concurrently")
        seq, alert = bumped
        self.rows.audit(conn, row.id, now, "acknowledged", "firing", "acknowledged", actor)
        targets = notified_channels(conn, row.id)
        if self.settings.silences.silence_on_ack and alert.source == "alertmanager":
            targets.append(SILENCES)  # later unack/resolve reach it as a notified channel
        channels = enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.ACKNOWLEDGED,
            channels=targets,
            seq=seq,
            now=now,
            actor=actor,
        )
        return Change("acknowledged", alert, channels=tuple(channels))

    def unack(self, conn: Connection, alert_id: int, actor: Actor, now: float) -> Change:
        """Put an acknowledged alert back to firing: channels are told, repeats resume."""
        row = self.rows.locked(conn, alerts.c.id == alert_id)
        if row is None:
            raise AlertNotFound(alert_id)
        if row.state == "resolved":
            raise AlertConflict(f"alert {alert_id} is resolved")
        if row.state == "firing":
            return Change("unchanged", alert_from_row(row), reason="not acknowledged")
        bumped = self.rows.bump(
            conn,
            row,
            alerts.c.state == "acknowledged",
            state="firing",
            acknowledged_by=None,
            acknowledged_at=None,
            acknowledged_via=None,
            last_notified_at=now,
            updated_at=now,
        )
        if bumped is None:
            return Change("unchanged", alert_from_row(row), reason="changed concurrently")
        seq, alert = bumped
        self.rows.audit(conn, row.id, now, "unacknowledged", "acknowledged", "firing", actor)
        channels = enqueue(
            conn,
            grouping=self.settings.grouping,
            dialect=self.dialect,
            alert=alert,
            kind=NotificationKind.UNACKNOWLEDGED,
            channels=notified_channels(conn, row.id),
            seq=seq,
            now=now,
            actor=actor,
        )
        return Change("unacknowledged", alert, channels=tuple(channels))

    # --- silenced or inhibited in Alertmanager ----------------------------------------------------

    def silence(self, conn: Connection, alert_id: int, silence: Silence, now: float) -> Change:
        """Record that a silence (or an inhibition) in Alertmanager holds this firing alert: no reminders.

        Nothing is notified: Alertmanager, which holds it, says nothing either. The audit row (`silenced`,
        or `inhibited`) keeps who made the silence, its comment and end, or the alert inhibiting this one
        (`alert_rows.with_silences` shows them).
        """
        row = self.rows.locked(conn, alerts.c.id == alert_id, alerts.c.state == "firing")
        if row is None or row.silence_id == silence.id:
            return Change("unchanged", None if row is None else alert_from_row(row), reason="nothing to change")
        self.rows.update(conn, row.id, silence_id=silence.id[:128], updated_at=now)
        ends_at = None if silence.ends_at is None else silence.ends_at.timestamp()
        self.rows.audit(
            conn,
            row.id,
            now,
            "inhibited" if silence.inhibition else "silenced",
            row.state,
            row.state,
            Actor(by=silence.by[:256], via="alertmanager", comment=silence.comment),
            detail={"silence_id": silence.id, "ends_at": ends_at, "until": rfc3339(ends_at)},
        )
        fresh = self.rows.locked(conn, alerts.c.id == alert_id)
        return Change("inhibited" if silence.inhibition else "silenced", alert_from_row(fresh))

    def unsilence(self, conn: Connection, alert_id: int, now: float, comment: str) -> Change:
        """The silence (or inhibition) holding this alert ended while it still fires: reminders resume (when due)."""
        row = self.rows.locked(conn, alerts.c.id == alert_id)
        if row is None or row.silence_id is None:
            return Change("unchanged", None if row is None else alert_from_row(row), reason="not silenced")
        self._unsilence_row(conn, row, now, comment)
        fresh = self.rows.locked(conn, alerts.c.id == alert_id)
        return Change("unsilenced", alert_from_row(fresh))

    def _unsilence_row(self, conn: Connection, row: Any, now: float, comment: str) -> None:
        self.rows.update(conn, row.id, silence_id=None, updated_at=now)
        actor = Actor(by="alertmanager", via="alertmanager", comment=comment)
        action = "uninhibited" if row.silence_id.startswith(INHIBITION_PREFIX) else "unsilenced"
        self.rows.audit(conn, row.id, now, action, row.state, row.state, actor, {"silence_id": row.silence_id})
