"""`GatewayService`: the alert gateway of one process, wired from the store and its typed settings.

Stages, each in its own module: webhook parsing (`alertmanager`, `webhooks`) and applying (`receiver`),
dedup (`dedup`), state changes with their outbox rows in one transaction (`lifecycle`, `alert_rows`,
`enqueue`), durable delivery (`outbox`, `workers`) and fan-out to the notifiers (`channels`). This class
opens transactions around the stages, wakes the workers after each commit, and exposes its metrics. It
knows no transport: `alerting.gateway.http` builds the HTTP routes from a service.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.registry import Collector
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from alerting.gateway.alert_rows import with_silences
from alerting.gateway.changes import AlertInput, AlertNotFound, Change
from alerting.gateway.channels import build_channels
from alerting.gateway.collector import GatewayCollector
from alerting.gateway.evidence import ReminderEvidence
from alerting.gateway.grouping import digest_channels
from alerting.gateway.lifecycle import Lifecycle
from alerting.gateway.notifications import notification_rows, purge_delivered, requeue
from alerting.gateway.outbox import PENDING, Outbox
from alerting.gateway.receiver import WebhookReceiver, WebhookResult
from alerting.gateway.records import alert_from_row, loads, rfc3339
from alerting.gateway.settings import GatewaySettings
from alerting.gateway.silence_watch import SilenceWatch, firing_received, silenced_acknowledged
from alerting.gateway.tables import alert_events, alerts, notification_outbox, webhook_receipts
from alerting.gateway.webhooks import PagerDutyEvent, SlackAction
from alerting.model import Actor, Alert, AlertSource, Severity, Silence
from alerting.notify import Notifier
from alerting.sink import Figures, Reasons, figures_key
from exporter.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected (PostgreSQL)
FIRE_MANY_CHUNK = 500
"""Alerts per transaction in `fire_many` (bounded lock time; a group of 500 is one message anyway)."""
LLMCOST = "llmcost"
"""Who resolved an alert llmcost itself ended for a reason it states (`resolve_many`'s `reasons`, no `by`)."""


@dataclass(frozen=True)
class TickResult:
    """What one `tick` did."""

    repeats: int
    receipts_purged: int
    outbox_purged: int
    silenced_resolved: int = 0
    """Alerts resolved because they ended in Alertmanager while a silence (or an inhibition) there held them."""
    silenced: int = 0
    """Firing alerts marked as held by a silence (or an inhibition) in Alertmanager."""
    unsilenced: int = 0
    """Alerts marked held that Alertmanager holds neither silenced nor inhibited again."""


def _retryable(exc: StoreUnavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and getattr(cause.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class GatewayService:
    """Dedup, lifecycle, durable outbox and fan-out for every alert of this process.

    `start_workers=False` leaves delivery to explicit `deliver_pending()` calls (tests, one-shot CLI
    commands); with workers, deliveries start right after each commit and `tick` runs every
    `alerting.tick_interval`. `reminder_evidence`: the scheduler's passes that must have seen an alert
    still firing before `tick` reminds of it (`alerting.gateway.evidence`; the application wires the
    jobs it schedules); without it every firing alert is reminded of once `repeat_interval` has passed.
    """

    def __init__(
        self,
        store: Store,
        settings: GatewaySettings,
        *,
        clock: Callable[[], float] = time.time,
        start_workers: bool = True,
        notifiers: Mapping[str, Notifier] | None = None,
        reminder_evidence: ReminderEvidence | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.lifecycle = Lifecycle(self.settings, store.dialect, reminder_evidence)
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
        self.webhooks = WebhookReceiver(
            store,
            self.lifecycle,
            clock=clock,
            write=self._write,
            receipt_retention=self.settings.receipt_retention,
            external_labels=self.settings.external_labels,
        )
        silences = self.settings.silences
        watching = bool(silences.urls) and (silences.silence_on_ack or silences.follow_silences)
        self.silence_watch = (
            SilenceWatch(
                silences.urls, resolve_after=silences.resolve_after, external_labels=self.settings.external_labels
            )
            if watching
            else None
        )
        self._workers = None
        self._ticker = None
        if start_workers:
            from alerting.gateway.workers import DeliveryWorkers, Ticker
            from exporter.redaction import url_secrets

            self._workers = DeliveryWorkers(
                self.outbox,
                self.notifiers,
                concurrency=self.settings.outbox.concurrency,
                poll_interval=self.settings.outbox.poll_interval,
                max_per_minute=self.settings.grouping.max_per_minute,
            )
            self._workers.start()
            self._say_pending_of_unconfigured_channels()
            if self.settings.tick_interval > 0:
                self._ticker = Ticker(self.tick, self.settings.tick_interval, secrets=url_secrets(self.store.url))
                self._ticker.start()

    def _say_pending_of_unconfigured_channels(self) -> None:
        """Warn once at start about pending notifications of a channel this config no longer has.

        They are kept (a process never deletes what it may not own, and they go out if the channel
        comes back), but without a word an incident they would resolve stays open and nobody knows why.
        """
        o = notification_outbox
        try:
            with self.store.reading() as conn:
                rows = conn.execute(
                    select(o.c.channel, func.count()).where(o.c.status == PENDING).group_by(o.c.channel)
                ).all()
        except StoreUnavailable:
            return  # the workers report the outage
        for channel, count in rows:
            if channel not in self.notifiers:
                log.warning(
                    "%d notification%s for %s pending, but %s is not configured: kept, and sent if it is "
                    "configured again (GET /v1/notifications?channel=%s lists them)",
                    count,
                    "" if count == 1 else "s",
                    channel,
                    channel,
                    channel,
                )

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
        update: bool = False,
    ) -> Change:
        """Report an alert as firing; notifies per the dedup stage (first, severity rose, repeat due).

        `update`: the figures in `annotations` grew enough to edit the messages already sent (see `AlertInput`).
        """
        incoming = AlertInput(
            alertname=alertname,
            labels=dict(labels),
            severity=severity,
            annotations=dict(annotations or {}),
            source=source,
            starts_at=starts_at,
            generator_url=generator_url,
            update=update,
        )
        return self._write(lambda conn: self.lifecycle.fire(conn, incoming, self.clock()))

    def refresh_figures(
        self,
        alertname: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        *,
        severity: Severity,
        update: bool = False,
    ) -> Change:
        """New figures of an open alert at this level, stored without a notification (see `Lifecycle.refresh_figures`).

        `update`: the figures grew enough to edit the messages already sent (see `AlertInput`).
        """
        incoming = AlertInput(
            alertname=alertname, labels=dict(labels), severity=severity, annotations=dict(annotations), update=update
        )
        return self._write(lambda conn: self.lifecycle.refresh_figures(conn, incoming, self.clock()))

    def fall(
        self,
        alertname: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        *,
        severity: Severity,
        generator_url: str = "",
    ) -> Change:
        """An open budget alert fell to this lower level: applied at once (see `Lifecycle.fall`)."""
        incoming = AlertInput(
            alertname=alertname,
            labels=dict(labels),
            severity=severity,
            annotations=dict(annotations),
            generator_url=generator_url,
        )
        return self._write(lambda conn: self.lifecycle.fall(conn, incoming, self.clock()))

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

    def resolve_many(
        self,
        items: Sequence[tuple[str, Mapping[str, str]]],
        *,
        by: str = "",
        via: str = "scheduler",
        started_by: float | None = None,
        figures: Figures | None = None,
        reasons: Reasons | None = None,
    ) -> list[Change]:
        """Resolve several alerts (alertname, labels) in one transaction; see `fire_many`.

        `started_by`: only alerts that started no later than this are resolved (an evaluation's start
        time: an alert raised after it read the state is not one it saw; see `alerting.sink.resolve_all`).
        `figures`: annotations of some of them as they are now, stored with the resolve and shown by it
        (`figures_key(alertname, labels)`; applied only to an alert still at that alertname).
        `reasons`: why some of them end (a budget's period ended, a person's reset), by the same keys:
        recorded as by `by` (`llmcost` when unnamed) via `via` with the reason as comment, so their messages
        say who and why.
        """
        fps: list[str] = []
        now: dict[str, tuple[str, dict[str, str]]] = {}
        actors: dict[str, Actor] = {}
        for name, labels in items:
            fps.append(AlertInput(alertname=name, labels=dict(labels), severity="info").fingerprint)
            notes = (figures or {}).get(figures_key(name, labels))
            if notes is not None:
                now[fps[-1]] = (name, dict(notes))
            reason = (reasons or {}).get(figures_key(name, labels))
            if reason:
                actors[fps[-1]] = Actor(by=by or LLMCOST, via=via, comment=reason)
        fps.sort()
        actor = Actor(by=by, via=via)
        changes: list[Change] = []
        for start in range(0, len(fps), FIRE_MANY_CHUNK):
            chunk = [(fp, actors.get(fp, actor)) for fp in fps[start : start + FIRE_MANY_CHUNK]]
            changes += self._write(functools.partial(self._resolve_chunk, chunk, started_by, now))
        return changes

    def _fire_chunk(self, chunk: Sequence[AlertInput], conn: Connection) -> list[Change]:
        return [self.lifecycle.fire(conn, incoming, self.clock()) for incoming in chunk]

    def _resolve_chunk(
        self,
        chunk: Sequence[tuple[str, Actor]],
        started_by: float | None,
        figures: Mapping[str, tuple[str, dict[str, str]]],
        conn: Connection,
    ) -> list[Change]:
        return [
            self.lifecycle.resolve(conn, fp, self.clock(), actor=actor, starts_at=started_by, figures=figures.get(fp))
            for fp, actor in chunk
        ]

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
        outbox_purged = purge_delivered(self.store, now - self.settings.outbox.retention)
        silenced, unsilenced, ended = self._follow_silences(now)
        resolved = self._resolve_ended_silenced(now) + self._resolve_ended(ended, now)
        return TickResult(len(repeats), int(purged), outbox_purged, resolved, silenced, unsilenced)

    def _follow_silences(self, now: float) -> tuple[int, int, list[int]]:
        """Mark firing alerts silenced or inhibited in Alertmanager, or no longer (see `silence_watch`).

        Returns how many were marked silenced and unsilenced, and the silenced ones that ended there.
        """
        if self.silence_watch is None or not self.settings.silences.follow_silences:
            return 0, 0, []
        watch = self.silence_watch
        try:
            found = watch.follow(lambda: self._read(firing_received), now)
            for alert_id, silence in found.silenced:
                self._write(functools.partial(self._silence, alert_id, silence, now))
                if silence.inhibition:
                    log.info("alert %s is inhibited in Alertmanager (by %r)", alert_id, silence.comment)
                else:
                    log.info(
                        "alert %s is silenced in Alertmanager (silence %s by %r)", alert_id, silence.id, silence.by
                    )
            for alert_id in found.unsilenced:
                self._write(functools.partial(self._unsilence, alert_id, now))
                log.info("alert %s is no longer silenced or inhibited in Alertmanager: reminders resume", alert_id)
        except StoreUnavailable:
            log.warning("silences in Alertmanager not followed: the store is unavailable", exc_info=True)
            return 0, 0, []
        return len(found.silenced), len(found.unsilenced), found.ended

    def _silence(self, alert_id: int, silence: Silence, now: float, conn: Connection) -> Change:
        return self.lifecycle.silence(conn, alert_id, silence, now)

    def _unsilence(self, alert_id: int, now: float, conn: Connection) -> Change:
        return self.lifecycle.unsilence(conn, alert_id, now, "no longer silenced or inhibited in Alertmanager")

    def _resolve_ended_silenced(self, now: float) -> int:
        """Resolve acknowledged alerts that ended in Alertmanager under our silence (see `silence_watch`)."""
        if self.silence_watch is None or not self.settings.silences.silence_on_ack:
            return 0
        try:
            ended = self.silence_watch.ended(lambda: self._read(silenced_acknowledged), now)
        except StoreUnavailable:
            log.warning("silenced alerts not checked: the store is unavailable", exc_info=True)
            return 0
        return self._resolve_ended(ended, now)

    def _resolve_ended(self, ended: Sequence[int], now: float) -> int:
        """Resolve alerts gone from Alertmanager while held there, as its resolved webhook would have."""
        # The same actor, one resolve per notified channel (the `alertmanager` channel among them, which
        # expires llmcost's own silence).
        actor = Actor(
            by="alertmanager", via="alertmanager", comment="ended in Alertmanager while silenced or inhibited there"
        )
        resolved = 0
        for alert_id in ended:
            try:
                change = self._write(functools.partial(self._resolve_silenced, alert_id, now, actor))
            except AlertNotFound:
                continue
            if change.action == "resolved":
                resolved += 1
                log.info("alert %s resolved: gone from Alertmanager while silenced or inhibited there", alert_id)
        return resolved

    def _resolve_silenced(self, alert_id: int, now: float, actor: Actor, conn: Connection) -> Change:
        return self.lifecycle.resolve_id(conn, alert_id, now, actor=actor)

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

    def receive_alertmanager(self, data: Any) -> WebhookResult:
        """Apply an Alertmanager webhook payload (decoded JSON); raises `PayloadError` if invalid."""
        return self.webhooks.receive_alertmanager(data)

    def receive_slack_actions(self, actions: list[SlackAction]) -> list[Change]:
        """Apply verified Slack button presses; unknown or resolved alerts are ignored."""
        return self.webhooks.receive_slack_actions(actions)

    def receive_pagerduty(self, event: PagerDutyEvent) -> WebhookResult:
        """Apply a verified PagerDuty webhook event once (deliveries deduplicated by event id)."""
        return self.webhooks.receive_pagerduty(event)

    # --- reading ----------------------------------------------------------------------------------

    def _read(self, fn: Callable[[Connection], T]) -> T:
        with self.store.reading() as conn:
            return fn(conn)

    def alerts(self, state: str | None = None, *, limit: int = 1000) -> list[Alert]:
        """Alerts, newest first, optionally in one state."""
        stmt = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(alerts.c.state == state)
        return self._read(lambda conn: with_silences(conn, [alert_from_row(r) for r in conn.execute(stmt)]))

    def alert_count(self, state: str | None = None) -> int:
        """How many alerts the store holds, optionally in one state (what `alerts` lists only the newest of)."""
        stmt = select(func.count()).select_from(alerts)
        if state is not None:
            stmt = stmt.where(alerts.c.state == state)
        return int(self._read(lambda conn: conn.execute(stmt).scalar_one()))

    def alert(self, alert_id: int) -> Alert | None:
        """One alert by id."""

        def read(conn: Connection) -> Alert | None:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            return None if row is None else with_silences(conn, [alert_from_row(row)])[0]

        return self._read(read)

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
        return notification_rows(self.store, status=status, channel=channel, alert_id=alert_id, limit=limit)

    def requeue(self, outbox_id: int) -> bool | None:
        """Retry a dead letter from scratch; False if the row is not dead, None if there is no such row."""
        done = requeue(self.store, outbox_id, self.clock())
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
        if self.silence_watch is not None:
            self.silence_watch.close()
        for notifier in self.notifiers.values():
            close = getattr(notifier, "close", None)
            if callable(close):
                close()
