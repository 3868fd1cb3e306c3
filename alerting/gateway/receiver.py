"""Inbound webhooks applied to the lifecycle: Alertmanager alerts, Slack buttons, PagerDuty incident events.

Each delivery is applied once: its id (or the payload's digest) is recorded in `webhook_receipts` in the
transaction that applies it, so a retry or a replay changes nothing. A duplicate storm is answered from a
small in-memory set of committed digests before it reaches the store.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection

from alerting.gateway.alertmanager import Webhook, parse_webhook
from alerting.gateway.changes import AlertConflict, AlertInput, AlertNotFound, Change
from alerting.gateway.enqueue import dialect_insert
from alerting.gateway.grouping import digest_members
from alerting.gateway.lifecycle import Lifecycle
from alerting.gateway.records import dumps, loads
from alerting.gateway.tables import alert_channels, alerts, webhook_receipts
from alerting.gateway.webhooks import PagerDutyEvent, SlackAction
from alerting.model import Actor
from alerting.push.tables import alertmanager_alerts
from exporter.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
STALE_INCIDENT_TOLERANCE = 300.0
"""A PagerDuty incident created this long before our alert is about an earlier occurrence."""


RESOLVED_IN_PAGERDUTY = "resolved the incident in PagerDuty; the alert resolves here when its condition ends"


def _pagerduty_action(event: PagerDutyEvent) -> tuple[str, Actor]:
    """What a PagerDuty incident event does to its alerts: `ack` or `unack`, and who did it.

    A resolved incident acknowledges its open alerts rather than resolving them. Whether the spend is back
    under the limit or the spike over is llmcost's to tell, not the responder's: resolved here while the
    budget is still over, the next evaluation raised the alert anew, which paged again at once and opened
    a second Slack message and mail thread. Acknowledged, it stays quiet (a rise in severity still re-opens
    it) and resolves on every channel when its condition ends.
    """
    if event.action == "resolve":
        return "ack", Actor(by=event.agent, via="pagerduty", comment=RESOLVED_IN_PAGERDUTY)
    assert event.action in ("ack", "unack")
    return event.action, Actor(by=event.agent, via="pagerduty")


def _alert_of_incident(conn: Connection, fp: str, incident_key: str) -> Any:
    """The alert a PagerDuty incident is about: the newest with its key's fingerprint, or an open one it names.

    The newest alert with the fingerprint in the incident's key, unless that one is resolved and an open
    alert's PagerDuty reference names the incident: a budget alert from before the level family
    (migration 0011_budget_alert_family) was re-keyed to the family's fingerprint but keeps the incident it
    opened under its old one, which earlier periods' resolved alerts still carry. Open alerts are few (and
    indexed), so the second look costs little.
    """
    a, c = alerts, alert_channels
    row = conn.execute(
        select(a.c.id, a.c.created_at, a.c.state).where(a.c.fingerprint == fp).order_by(a.c.id.desc()).limit(1)
    ).first()
    if row is None or row.state == "resolved":
        rekeyed = conn.execute(
            select(a.c.id, a.c.created_at, a.c.state)
            .join(c, c.c.alert_id == a.c.id)
            .where(a.c.state != "resolved", c.c.channel == "pagerduty")
            .where(c.c.reference == dumps({"dedup_key": incident_key}))
            .order_by(a.c.id.desc())
            .limit(1)
        ).first()
        row = rekeyed or row
    return row


class Writer(Protocol):
    """Runs `apply` in a write transaction and returns its result (`GatewayService._write`)."""

    def __call__(self, apply: Callable[[Connection], T]) -> T:
        """The result of `apply`, committed."""
        ...


@dataclass(frozen=True)
class WebhookResult:
    """What an Alertmanager or PagerDuty delivery did; `duplicate` when it had been applied before."""

    duplicate: bool
    changes: tuple[Change, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The response body."""
        body: dict[str, Any] = {"status": "duplicate" if self.duplicate else "ok"}
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        if not self.duplicate:
            body["alerts"] = counts
        if self.reason:
            body["reason"] = self.reason
        return body


class _RecentDigests:
    """Digests of webhook payloads this process committed: a duplicate storm never reaches the store."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, digest: str) -> bool:
        with self._lock:
            return digest in self._items

    def add(self, digest: str) -> None:
        with self._lock:
            self._items[digest] = None
            self._items.move_to_end(digest)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _current_figures(conn: Connection, incoming: AlertInput) -> AlertInput:
    """One of llmcost's own alerts, with the figures llmcost holds for it now if it still fires at this level.

    Alertmanager delivers the annotations it held when it flushed the group: a delivery (a repeat, a
    retry) can carry figures older than those the scheduler has since stored in the gateway's record
    (`Lifecycle.refresh_figures`), and must not bring them back.
    """
    t = alertmanager_alerts
    row = conn.execute(
        select(t.c.alertname, t.c.annotations).where(t.c.fingerprint == incoming.fingerprint, t.c.ends_at.is_(None))
    ).first()
    if row is None or row.alertname != incoming.alertname:
        return incoming
    return dataclasses.replace(incoming, annotations=loads(row.annotations))


class WebhookReceiver:
    """Applies verified webhook deliveries through the lifecycle stage, each delivery once."""

    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        *,
        clock: Callable[[], float],
        write: Writer,
        receipt_retention: float = 0.0,
        external_labels: Mapping[str, str] | None = None,
    ) -> None:
        """Apply webhooks to the lifecycle's alerts.

        `receipt_retention`: how long delivery ids are kept (`alerting.receipt_retention`; 0: no age check);
        `external_labels`: this installation's (`alertmanager.external_labels`), see `parse_webhook`.
        """
        self.store = store
        self.lifecycle = lifecycle
        self.clock = clock
        self._write = write
        self.receipt_retention = receipt_retention
        self.external_labels = dict(external_labels or {})
        self._seen = _RecentDigests(10_000)

    def _receipt(self, conn: Connection, source: str, receipt_id: str, now: float) -> bool:
        """Record a webhook delivery; False when it was recorded before (a retry or replay)."""
        inserted = conn.execute(
            dialect_insert(self.store.dialect, webhook_receipts)
            .values(source=source, receipt_id=receipt_id, received_at=now)
            .on_conflict_do_nothing(index_elements=["source", "receipt_id"])
            .returning(webhook_receipts.c.receipt_id)
        ).first()
        return inserted is not None

    def _seen_in_store(self, source: str, receipt_id: str) -> bool:
        with self.store.reading() as conn:
            found = conn.execute(
                select(webhook_receipts.c.received_at).where(
                    webhook_receipts.c.source == source, webhook_receipts.c.receipt_id == receipt_id
                )
            ).first()
        return found is not None

    def receive_alertmanager(self, data: Any) -> WebhookResult:
        """Apply an Alertmanager webhook payload (decoded JSON); raises `PayloadError` if invalid."""
        hook = parse_webhook(data, self.external_labels)
        if hook.others:
            log.info(
                "left out %d alert(s) of another llmcost installation (not labelled %s): route them to its gateway",
                hook.others,
                self.external_labels,
            )
        if hook.digest in self._seen:
            return WebhookResult(duplicate=True)
        if self._seen_in_store("alertmanager", hook.digest):
            self._seen.add(hook.digest)
            return WebhookResult(duplicate=True)
        result = self._write(lambda conn: self._apply_alertmanager(conn, hook))
        self._seen.add(hook.digest)
        return result

    def _apply_alertmanager(self, conn: Connection, hook: Webhook) -> WebhookResult:
        now = self.clock()
        if not self._receipt(conn, "alertmanager", hook.digest, now):
            return WebhookResult(duplicate=True)
        actor = Actor(by="alertmanager", via="alertmanager")
        changes = []
        for item in hook.alerts:
            if item.status == "firing":
                incoming = _current_figures(conn, item.alert) if item.own else item.alert
                changes.append(self.lifecycle.fire(conn, incoming, now))
            else:
                changes.append(
                    self.lifecycle.resolve(
                        conn,
                        item.alert.fingerprint,
                        now,
                        actor=actor,
                        starts_at=item.alert.starts_at,
                        alertname=item.alert.alertname,
                    )
                )
        return WebhookResult(duplicate=False, changes=tuple(changes))

    def receive_slack_actions(self, actions: list[SlackAction]) -> list[Change]:
        """Apply verified Slack button presses; unknown or resolved alerts are ignored."""
        changes = []
        for action in actions:
            if action.digest:
                changes += self._ack_digest_from_slack(action)
                continue
            apply = self.lifecycle.ack if action.action == "ack" else self.lifecycle.unack
            actor = Actor(by=action.user, via="slack")
            try:
                changes.append(self._write(functools.partial(self._apply_one, apply, action.alert_id, actor)))
            except (AlertNotFound, AlertConflict) as exc:
                changes.append(Change("ignored", reason=f"{type(exc).__name__}: {exc}"))
        return changes

    def receive_pagerduty(self, event: PagerDutyEvent) -> WebhookResult:
        """Apply a verified PagerDuty webhook event once (deliveries deduplicated by event id)."""
        if event.action is None:
            return WebhookResult(duplicate=False, reason=f"event type {event.event_type} is not acted on")
        # PagerDuty's v3 signature covers no time: a delivery captured and sent again once its receipt is
        # purged would pass the signature and the dedup. No real delivery is days late (PagerDuty retries
        # for minutes), so one older than the receipts' memory is a replay.
        if (
            event.occurred_at is not None
            and self.receipt_retention > 0
            and self.clock() - event.occurred_at > self.receipt_retention
        ):
            return WebhookResult(duplicate=True, reason="older than alerting.receipt_retention: a replay")
        digest = event.digest
        if digest is not None:
            return self._write(lambda conn: self._apply_pagerduty_digest(conn, event, digest))
        fp = event.fingerprint
        if fp is None:
            return WebhookResult(duplicate=False, reason="not an llmcost incident")
        return self._write(lambda conn: self._apply_pagerduty(conn, event, fp))

    def _apply_pagerduty(self, conn: Connection, event: PagerDutyEvent, fp: str) -> WebhookResult:
        now = self.clock()
        if not self._receipt(conn, "pagerduty", event.id, now):
            return WebhookResult(duplicate=True)
        row = _alert_of_incident(conn, fp, event.incident_key)
        if row is None:
            return WebhookResult(duplicate=False, reason="no alert for this incident")
        if event.created_at is not None and row.created_at - event.created_at > STALE_INCIDENT_TOLERANCE:
            return WebhookResult(duplicate=False, reason="the incident is older than the alert")
        if event.created_at is not None:
            reopened_at = self.lifecycle.rows.reopened_at(conn, row.id)
            if reopened_at is not None and event.created_at < reopened_at:
                # e.g. the resolve of the acknowledged incident that the re-opening replaced
                return WebhookResult(duplicate=False, reason="the incident was replaced when the alert was re-opened")
        action, actor = _pagerduty_action(event)
        try:
            if action == "ack":
                change = self.lifecycle.ack(conn, row.id, actor, now)
            else:
                change = self.lifecycle.unack(conn, row.id, actor, now)
        except AlertConflict as exc:
            return WebhookResult(duplicate=False, reason=str(exc))
        return WebhookResult(duplicate=False, changes=(change,))

    def _ack_digest_from_slack(self, action: SlackAction) -> list[Change]:
        """Apply "Acknowledge all" of a grouped Slack message: every open alert it listed."""
        actor = Actor(by=action.user, via="slack")
        return self._write(lambda conn: self._apply_digest(conn, "slack", action.digest, "ack", actor))

    def _apply_pagerduty_digest(self, conn: Connection, event: PagerDutyEvent, digest: str) -> WebhookResult:
        if not self._receipt(conn, "pagerduty", event.id, self.clock()):
            return WebhookResult(duplicate=True)
        members = digest_members(conn, "pagerduty", digest)
        if event.created_at is not None:
            reopened_at = self.lifecycle.rows.last_reopened_at(conn, members)
            if reopened_at is not None and event.created_at < reopened_at:
                # The group's incident was resolved and triggered anew when alerts it listed were re-opened
                # (`alerting.notify.pagerduty`): this is about the replaced one, e.g. llmcost's own resolve.
                # Its other, still acknowledged alerts must not be resolved with it.
                return WebhookResult(duplicate=False, reason="the incident was replaced when its alerts were re-opened")
        action, actor = _pagerduty_action(event)
        changes = self._apply_digest(conn, "pagerduty", digest, action, actor, members)
        return WebhookResult(duplicate=False, changes=tuple(changes), reason="" if changes else "no open alert")

    def _apply_digest(
        self,
        conn: Connection,
        channel: str,
        digest: str,
        action: str,
        actor: Actor,
        members: list[int] | None = None,
    ) -> list[Change]:
        """Acknowledge, unacknowledge or resolve every open alert a grouped message on `channel` listed."""
        now = self.clock()
        changes = []
        for alert_id in digest_members(conn, channel, digest) if members is None else members:
            try:
                if action == "ack":
                    changes.append(self.lifecycle.ack(conn, alert_id, actor, now))
                elif action == "unack":
                    changes.append(self.lifecycle.unack(conn, alert_id, actor, now))
                else:
                    changes.append(self.lifecycle.resolve_id(conn, alert_id, now, actor=actor))
            except (AlertNotFound, AlertConflict) as exc:
                changes.append(Change("ignored", reason=f"{type(exc).__name__}: {exc}"))
        return changes

    def _apply_one(self, apply: Callable[..., Change], alert_id: int, actor: Actor, conn: Connection) -> Change:
        return apply(conn, alert_id, actor, self.clock())
