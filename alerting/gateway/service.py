"""`GatewayService`: the alert gateway of one process, wired from the store and the configuration.

Stages, each in its own module: webhook parsing (`alertmanager`, `webhooks`), dedup (`dedup`), state
changes with their outbox rows in one transaction (`lifecycle`), durable delivery (`outbox`, `workers`)
and fan-out to the notifiers (`channels`). This class opens transactions around the stages, wakes the
workers after each commit, and exposes its metrics. It knows no transport: `alerting.gateway.http`
builds the HTTP routes from a service.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.registry import Collector
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from alerting.gateway.alertmanager import Webhook, parse_webhook
from alerting.gateway.channels import build_channels
from alerting.gateway.collector import GatewayCollector
from alerting.gateway.config import GatewaySettings, settings_from_config
from alerting.gateway.grouping import digest_channels, digest_members
from alerting.gateway.lifecycle import AlertConflict, AlertInput, AlertNotFound, Change, Lifecycle
from alerting.gateway.outbox import PENDING, Outbox, dialect_insert
from alerting.gateway.records import alert_from_row, loads, rfc3339
from alerting.gateway.tables import alert_events, alerts, webhook_receipts
from alerting.gateway.webhooks import PagerDutyEvent, SlackAction
from alerting.model import Actor, Alert, AlertSource, Severity
from alerting.notify import Notifier
from exporter.config import Config
from exporter.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected (PostgreSQL)
FIRE_MANY_CHUNK = 500
"""Alerts per transaction in `fire_many` (bounded lock time; a group of 500 is one message anyway)."""
STALE_INCIDENT_TOLERANCE = 300.0
"""A PagerDuty incident created this long before our alert is about an earlier occurrence."""


@dataclass(frozen=True)
class TickResult:
    """What one `tick` did."""

    repeats: int
    receipts_purged: int
    outbox_purged: int


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


def _retryable(exc: StoreUnavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and getattr(cause.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class GatewayService:
    """Dedup, lifecycle, durable outbox and fan-out for every alert of this process.

    `start_workers=False` leaves delivery to explicit `deliver_pending()` calls (tests, one-shot CLI
    commands); with workers, deliveries start right after each commit and `tick` runs every
    `alerting.tick_interval`.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        start_workers: bool = True,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.settings: GatewaySettings = settings_from_config(config)
        self.lifecycle = Lifecycle(self.settings, store.dialect)
        self.notifiers = build_channels(self.settings, notifiers)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.outbox = Outbox(
            store,
            self.settings.outbox,
            owner=owner,
            clock=clock,
            grouping=self.settings.grouping,
            digest_channels=digest_channels(self.notifiers),
        )
        self._seen = _RecentDigests(10_000)
        self._workers = None
        self._ticker = None
        if start_workers:
            from alerting.gateway.workers import DeliveryWorkers, Ticker

            self._workers = DeliveryWorkers(
                self.outbox,
                self.notifiers,
                concurrency=self.settings.outbox.concurrency,
                poll_interval=self.settings.outbox.poll_interval,
                max_per_minute=self.settings.grouping.max_per_minute,
            )
            self._workers.start()
            if self.settings.tick_interval > 0:
                self._ticker = Ticker(self.tick, self.settings.tick_interval)
                self._ticker.start()

    # --- transactions -----------------------------------------------------------------------------

    def _write(self, apply: Callable[[Connection], T]) -> T:
        """Run `apply` in a write transaction (retried on a PostgreSQL deadlock), then wake the workers."""
        for attempt in range(5):
            try:
                with self.store.transaction() as conn:
                    result = apply(conn)
                break
            except StoreUnavailable as exc:
                if attempt == 4 or not _retryable(exc):
                    raise
                time.sleep(0.01 * 2**attempt)
        self.wake()
        return result

    def wake(self) -> None:
        """Make the delivery workers look for due notifications now."""
        if self._workers is not None:
            self._workers.wake()

    # --- what the scheduler calls -----------------------------------------------------------------

    def fire(
        self,
        alertname: str,
        labels: Mapping[str, str],
        *,
        severity: Severity,
        annotations: Mapping[str, str] | None = None,
        starts_at: float | None = None,
        generator_url: str = "",
        source: AlertSource = "scheduler",
    ) -> Change:
        """Report an alert as firing; notifies per the dedup stage (first, severity rose, repeat due)."""
        incoming = AlertInput(
            alertname=alertname,
            labels=dict(labels),
            severity=severity,
            annotations=dict(annotations or {}),
            source=source,
            starts_at=starts_at,
            generator_url=generator_url,
        )
        return self._write(lambda conn: self.lifecycle.fire(conn, incoming, self.clock()))

    def fire_many(self, alerts: Sequence[AlertInput]) -> list[Change]:
        """Report several alerts as firing in ONE transaction (one budget pass crossing many instances).

        Their notifications are committed together, so the grouping stage sees them all at once and sends
        one message per channel for a budget's instances (`alerting.gateway.grouping`).
        """
        ordered = sorted(alerts, key=lambda a: a.fingerprint)  # one lock order: no deadlock between passes
        changes: list[Change] = []
        for start in range(0, len(ordered), FIRE_MANY_CHUNK):
            chunk = ordered[start : start + FIRE_MANY_CHUNK]
            changes += self._write(functools.partial(self._fire_chunk, chunk))
        return changes

    def resolve_many(self, items: Sequence[tuple[str, Mapping[str, str]]], *, via: str = "scheduler") -> list[Change]:
        """Resolve several alerts (alertname, labels) in one transaction; see `fire_many`."""
        fps = sorted(AlertInput(alertname=n, labels=dict(labels), severity="info").fingerprint for n, labels in items)
        actor = Actor(by="", via=via)
        changes: list[Change] = []
        for start in range(0, len(fps), FIRE_MANY_CHUNK):
            chunk = fps[start : start + FIRE_MANY_CHUNK]
            changes += self._write(functools.partial(self._resolve_chunk, chunk, actor))
        return changes

    def _fire_chunk(self, chunk: Sequence[AlertInput], conn: Connection) -> list[Change]:
        return [self.lifecycle.fire(conn, incoming, self.clock()) for incoming in chunk]

    def _resolve_chunk(self, chunk: Sequence[str], actor: Actor, conn: Connection) -> list[Change]:
        return [self.lifecycle.resolve(conn, fp, self.clock(), actor=actor) for fp in chunk]

    def resolve(
        self, alertname: str, labels: Mapping[str, str], *, by: str = "", via: str = "scheduler", comment: str = ""
    ) -> Change:
        """Report that an alert stopped firing; one resolve notification per channel it was sent to."""
        fp = AlertInput(alertname=alertname, labels=dict(labels), severity="info").fingerprint
        actor = Actor(by=by, via=via, comment=comment)
        return self._write(lambda conn: self.lifecycle.resolve(conn, fp, self.clock(), actor=actor))

    def tick(self, now: float | None = None) -> TickResult:
        """Enqueue due repeats and clean up old receipts and delivered rows; safe in several processes."""
        now = self.clock() if now is None else now
        repeats = self._write(lambda conn: self.lifecycle.repeat_due(conn, now))
        with self.store.transaction() as conn:
            purged = conn.execute(
                delete(webhook_receipts).where(webhook_receipts.c.received_at < now - self.settings.receipt_retention)
            ).rowcount
        outbox_purged = self.outbox.purge(now - self.settings.outbox.retention)
        return TickResult(len(repeats), int(purged), outbox_purged)

    # --- acknowledgements -------------------------------------------------------------------------

    def ack(self, alert_id: int, *, by: str, via: str = "api", comment: str = "") -> Change:
        """Acknowledge an alert (idempotent); raises `AlertNotFound` or `AlertConflict` (resolved)."""
        actor = Actor(by=by, via=via, comment=comment)
        return self._write(lambda conn: self.lifecycle.ack(conn, alert_id, actor, self.clock()))

    def unack(self, alert_id: int, *, by: str, via: str = "api", comment: str = "") -> Change:
        """Put an acknowledged alert back to firing (idempotent); raises like `ack`."""
        actor = Actor(by=by, via=via, comment=comment)
        return self._write(lambda conn: self.lifecycle.unack(conn, alert_id, actor, self.clock()))

    # --- webhooks ---------------------------------------------------------------------------------

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
        hook = parse_webhook(data)
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
                changes.append(self.lifecycle.fire(conn, item.alert, now))
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
            apply = self.ack if action.action == "ack" else self.unack
            try:
                changes.append(apply(action.alert_id, by=action.user, via="slack"))
            except (AlertNotFound, AlertConflict) as exc:
                changes.append(Change("ignored", reason=f"{type(exc).__name__}: {exc}"))
        return changes

    def receive_pagerduty(self, event: PagerDutyEvent) -> WebhookResult:
        """Apply a verified PagerDuty webhook event once (deliveries deduplicated by event id)."""
        if event.action is None:
            return WebhookResult(duplicate=False, reason=f"event type {event.event_type} is not acted on")
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
        row = conn.execute(
            select(alerts.c.id, alerts.c.created_at)
            .where(alerts.c.fingerprint == fp)
            .order_by(alerts.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return WebhookResult(duplicate=False, reason="no alert for this incident")
        if event.created_at is not None and row.created_at - event.created_at > STALE_INCIDENT_TOLERANCE:
            return WebhookResult(duplicate=False, reason="the incident is older than the alert")
        actor = Actor(by=event.agent, via="pagerduty")
        try:
            if event.action == "ack":
                change = self.lifecycle.ack(conn, row.id, actor, now)
            elif event.action == "unack":
                change = self.lifecycle.unack(conn, row.id, actor, now)
            else:
                change = self.lifecycle.resolve_id(conn, row.id, now, actor=actor)
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
        actor = Actor(by=event.agent, via="pagerduty")
        assert event.action is not None
        changes = self._apply_digest(conn, "pagerduty", digest, event.action, actor)
        return WebhookResult(duplicate=False, changes=tuple(changes), reason="" if changes else "no open alert")

    def _apply_digest(self, conn: Connection, channel: str, digest: str, action: str, actor: Actor) -> list[Change]:
        """Acknowledge, unacknowledge or resolve every open alert a grouped message on `channel` listed."""
        now = self.clock()
        changes = []
        for alert_id in digest_members(conn, channel, digest):
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

    # --- reading ----------------------------------------------------------------------------------

    def _read(self, fn: Callable[[Connection], T]) -> T:
        with self.store.reading() as conn:
            return fn(conn)

    def alerts(self, state: str | None = None, *, limit: int = 1000) -> list[Alert]:
        """Alerts, newest first, optionally in one state."""
        stmt = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(alerts.c.state == state)
        return self._read(lambda conn: [alert_from_row(r) for r in conn.execute(stmt)])

    def alert(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        row = self._read(lambda conn: conn.execute(select(alerts).where(alerts.c.id == alert_id)).first())
        return None if row is None else alert_from_row(row)

    def history(self, alert_id: int) -> list[dict[str, Any]]:
        """The audit trail of an alert, oldest first."""
        e = alert_events
        stmt = select(e).where(e.c.alert_id == alert_id).order_by(e.c.id)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [
            {
                "at": rfc3339(r.at),
                "action": r.action,
                "from_state": r.from_state,
                "to_state": r.to_state,
                "by": r.by,
                "via": r.via,
                "comment": r.comment,
                "detail": loads(r.detail),
            }
            for r in rows
        ]

    def notifications(
        self, *, status: str | None = None, channel: str | None = None, alert_id: int | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Outbox rows (pending, sent, skipped or dead), newest first."""
        return self.outbox.rows(status=status, channel=channel, alert_id=alert_id, limit=limit)

    def requeue(self, outbox_id: int) -> bool:
        """Retry a dead letter from scratch; False if the row is not dead."""
        done = self.outbox.requeue(outbox_id)
        self.wake()
        return done

    # --- delivery without workers -----------------------------------------------------------------

    def deliver_pending(self, *, limit: int = 100) -> int:
        """Deliver every notification due now, channel by channel, in this thread; returns how many."""
        total = 0
        for channel, notifier in self.notifiers.items():
            while True:
                finished = self.outbox.deliver(channel, notifier, limit=limit)
                total += len(finished)
                if all(f.status == PENDING for f in finished):  # nothing left, or only retries for later
                    break
        return total

    # --- wiring -----------------------------------------------------------------------------------

    def collectors(self) -> list[Collector]:
        """Collectors for the process registry."""
        return [GatewayCollector(self.store, list(self.notifiers))]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the ticker and the workers (deliveries in flight finish; pending rows stay in the outbox)."""
        if self._ticker is not None:
            self._ticker.stop(timeout)
            self._ticker = None
        if self._workers is not None:
            self._workers.stop(timeout)
            self._workers = None
        for notifier in self.notifiers.values():
            close = getattr(notifier, "close", None)
            if callable(close):
                close()
