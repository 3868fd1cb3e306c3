"""The durable outbox: notifications written in the transaction that caused them, delivered later.

Rows are written by `alerting.gateway.enqueue` (inside the lifecycle's transaction); listing, retrying
and purging them is `alerting.gateway.notifications`. Here is their delivery, at least once and ordered
per alert and channel:

- `claim` reserves due rows with a lease (`lease_owner`, `lease_until`) through a conditional update, so
  several processes never send the same row at once, and a row whose sender crashed becomes claimable
  again when its lease ends. Only the oldest pending row of an alert on a channel is claimable, so a
  resolve never overtakes its trigger (a retried trigger holds the resolve back; a dead one does not).
- `finish` records what the notifier returned: sent (and the channel reference for later updates),
  skipped, retried later (exponential backoff with jitter, or the receiver's `retry_after`) or dead
  (a permanent failure, or `max_attempts` used up). Counters `notifications.<channel>.<outcome>` are
  updated in the same transaction.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection

from alerting.gateway.claims import Claimed, Finished
from alerting.gateway.enqueue import DEAD, PENDING, SENT, SKIPPED
from alerting.gateway.grouping import (
    INCIDENT_CHANNELS,
    GroupingSettings,
    by_message,
    group_digest_key,
    incident_keys,
    incidents_acknowledged,
    incidents_ended,
    incidents_paging,
    listed_in,
    member_reference,
    send_digest,
    single_reference,
    summary_digest_key,
    told_alone,
)
from alerting.gateway.records import actor_from_json, alert_from_snapshot, dumps, loads, reopened_from_json
from alerting.gateway.settings import OutboxSettings
from alerting.gateway.tables import notification_outbox
from alerting.model import DeliveryResult, Notification, NotificationKind
from alerting.notify.base import Notifier, redact
from exporter.store import Store, driver_cursor, placeholder

log = logging.getLogger(__name__)

OUTCOMES = ("sent", "failed", "retried")
FOLDED = ("grouped", "summarised")
"""How a notification was delivered inside one message with others: a budget's group, a rate-limit summary.

Counted apart from OUTCOMES (`llm_notifications_folded_total`), so ratios over every outcome stay right."""
MAX_RETRY_AFTER = 3600.0
"""Longest wait a receiver's `Retry-After` can impose before the next attempt."""
MIN_RETRY_AFTER = 1.0
"""Shortest wait before a retry, whatever the receiver says (`Retry-After: 0` must not make a hot loop)."""


def counter_name(channel: str, outcome: str) -> str:
    """Name of the persisted counter behind `llm_notifications_total{channel, outcome}`."""
    return f"notifications.{channel}.{outcome}"


_SQL = {
    # The oldest due, unleased pending row of each alert on a channel: an alert's later rows wait for it.
    "due": "SELECT o.id, o.lease_until FROM notification_outbox AS o WHERE o.channel = ? AND o.status = 'pending' "
    "AND o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?) AND NOT EXISTS ("
    "SELECT 1 FROM notification_outbox AS e WHERE e.alert_id = o.alert_id AND e.channel = o.channel "
    "AND e.status = 'pending' AND e.id < o.id) ORDER BY o.id LIMIT ?",
    # More due rows of one group (same budget, kind and channel) than the one claimed: sent as one message.
    "group_due": "SELECT o.id, o.lease_until FROM notification_outbox AS o WHERE o.channel = ? AND o.group_key = ? "
    "AND o.kind = ? AND o.status = 'pending' "
    "AND o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?) AND NOT EXISTS ("
    "SELECT 1 FROM notification_outbox AS e WHERE e.alert_id = o.alert_id AND e.channel = o.channel "
    "AND e.status = 'pending' AND e.id < o.id) ORDER BY o.id LIMIT ?",
    "lease": "UPDATE notification_outbox SET lease_owner = ?, lease_until = ?, updated_at = ? "
    "WHERE id IN ({ids}) AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ?) RETURNING id",
    "claimed": "SELECT o.id, o.alert_id, o.channel, o.kind, o.attempts, o.payload, c.reference, o.group_key "
    "FROM notification_outbox AS o LEFT JOIN alert_channels AS c ON c.alert_id = o.alert_id "
    "AND c.channel = o.channel WHERE o.id IN ({ids}) ORDER BY o.id",
    "finish": "UPDATE notification_outbox SET status = ?, attempts = ?, lease_owner = NULL, lease_until = NULL, "
    "updated_at = ?, last_error = ?, sent_at = COALESCE(?, sent_at), "
    "next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ? AND lease_owner = ?",
    "reference": "UPDATE alert_channels SET reference = ?, updated_at = ? WHERE alert_id = ? AND channel = ?",
    "payload": "SELECT payload FROM notification_outbox WHERE id = ?",
    "progress": "UPDATE notification_outbox SET payload = ? WHERE id = ?",
}


def _cursor(conn: Connection) -> Any:
    """A DB-API cursor on `conn`'s connection, inside its transaction.

    The outbox runs a few statements per notification; the SQL is pre-built (`_SQL`), and on the driver's
    cursor each costs tens of µs instead of the ~150 µs of SQLAlchemy's execution context around it.
    """
    return driver_cursor(conn)


def _earlier_pending() -> Any:
    """EXISTS an older pending row of the same alert on the same channel (the row must wait for it)."""
    o = notification_outbox
    earlier = o.alias("earlier")
    return exists().where(
        earlier.c.alert_id == o.c.alert_id,
        earlier.c.channel == o.c.channel,
        earlier.c.status == PENDING,
        earlier.c.id < o.c.id,
    )


class Outbox:
    """Claims, delivers and records notifications; one per process, shared by its workers."""

    def __init__(
        self,
        store: Store,
        settings: OutboxSettings,
        *,
        owner: str,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        grouping: GroupingSettings | None = None,
        digest_channels: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.settings = settings
        self.grouping = grouping or GroupingSettings()
        self.digest_channels = frozenset(digest_channels)
        """Channels whose notifier can send a digest (`send_digest`): only these group or summarise."""
        self.owner = owner
        self.clock = clock
        self._rng = rng or random.Random()
        self._placeholder = placeholder(store.dialect)
        self._sql = {name: sql.replace("?", self._placeholder) for name, sql in _SQL.items()}
        # PostgreSQL: rows another process is claiming right now are skipped, not waited for. SQLite
        # needs nothing: the transaction holds the database write lock.
        locking = " FOR UPDATE OF o SKIP LOCKED" if store.dialect == "postgresql" else ""
        # The same, without rows whose claim by another sender ran out (see `settle_and_claim`).
        not_others = f" AND (o.lease_owner IS NULL OR o.lease_owner = {self._placeholder}) ORDER BY o.id LIMIT"
        for name in ("due", "group_due"):
            self._sql[f"{name}_own"] = self._sql[name].replace(" ORDER BY o.id LIMIT", not_others)
        for name in ("due", "group_due", "due_own", "group_due_own"):
            self._sql[f"{name}_locked"] = self._sql[name] + locking

    # --- delivery ---------------------------------------------------------------------------------

    def claim(self, channel: str, limit: int, now: float | None = None) -> list[Claimed]:
        """Reserve up to `limit` due rows of `channel`, at most one per alert (its oldest pending row)."""
        return self.settle_and_claim([], channel, limit, now)[1]

    def settle_and_claim(
        self,
        results: Sequence[tuple[Claimed, DeliveryResult]],
        channel: str,
        limit: int,
        now: float | None = None,
        *,
        summarise: bool = False,
        others_unfinished: bool = True,
    ) -> tuple[list[Finished], list[Claimed]]:
        """Record finished attempts (see `record`) and claim up to `limit` more rows, in one transaction.

        `summarise` (the channel's rate limit allows one more message only): everything due, up to
        `grouping.max_group` rows, is claimed as ONE summary digest instead of `limit` rows.

        `others_unfinished=False`: rows another sender claimed and never recorded are left alone even when
        their lease ran out. After a store outage their senders are most likely alive, holding results
        they could not record (the lease ran out during the outage, not because they died); the worker
        passes it for one lease after an outage (`alerting.gateway.workers`).

        A busy worker does this once per round instead of two transactions: on SQLite every writer queues
        for one lock, so the number of transactions is what bounds fan-out.
        """
        now = self.clock() if now is None else now
        own = () if others_unfinished else (self.owner,)
        due = "due" if others_unfinished else "due_own"
        if not results:
            # Idle polls (every worker, every poll_interval) only read: no write lock unless there is work.
            with self.store.reading() as reader:
                if reader.exec_driver_sql(self._sql[due], (channel, now, now, *own, 1)).first() is None:
                    return [], []
        with self.store.transaction() as conn:
            finished = self._record_in(conn, results, now)
            claimed = self._claim_in(conn, channel, limit, now, summarise=summarise, own=own) if limit > 0 else []
        return finished, claimed

    def _claim_in(
        self,
        conn: Connection,
        channel: str,
        limit: int,
        now: float,
        *,
        summarise: bool = False,
        own: tuple[str, ...] = (),
    ) -> list[Claimed]:
        """Lease due rows; `own` (this owner) leaves out rows other senders claimed and never recorded."""
        cursor = _cursor(conn)
        digests = channel in self.digest_channels
        summarise = summarise and digests
        wanted = self.grouping.max_group if summarise else limit
        cursor.execute(self._sql["due_own_locked" if own else "due_locked"], (channel, now, now, *own, wanted))
        claimed = self._lease(conn, cursor.fetchall(), now)
        if digests and self.grouping.groups(channel):
            claimed = self._gather_groups(conn, channel, claimed, now, own)
        if summarise and len(claimed) > 1:
            return [self._summary(claimed)]
        return claimed

    def _lease(self, conn: Connection, due: Sequence[tuple[int, float | None]], now: float) -> list[Claimed]:
        """Lease the `due` rows (id, lease_until) that nobody else took meanwhile."""
        if not due:
            return []
        cursor = _cursor(conn)
        ids = [row[0] for row in due]
        # A pending row with a lease was claimed before and its result never recorded: its sender died,
        # perhaps after sending.
        unfinished = {row[0] for row in due if row[1] is not None}
        lease = (self.owner, now + self.settings.lease, now)
        cursor.execute(self._sql["lease"].format(ids=self._in_list(len(ids))), (*lease, *ids, now))
        claimed_ids = [r[0] for r in cursor.fetchall()]
        if not claimed_ids:
            return []
        cursor.execute(self._sql["claimed"].format(ids=self._in_list(len(claimed_ids))), tuple(claimed_ids))
        return self._paging([self._claimed(row, unfinished) for row in cursor.fetchall()], conn)

    @staticmethod
    def _paging(claimed: list[Claimed], conn: Connection) -> list[Claimed]:
        """Mark the unacks going to a group incident that still pages (`grouping.incidents_paging`)."""
        unacks = [c for c in claimed if c.kind is NotificationKind.UNACKNOWLEDGED and c.group_key is not None]
        if not unacks or unacks[0].channel not in INCIDENT_CHANNELS:
            return claimed
        marked: dict[int, Claimed] = {}
        for group in dict.fromkeys(c.group_key for c in unacks):
            assert group is not None
            items = [c for c in unacks if c.group_key == group]
            flags = incidents_paging(conn, items[0].channel, group_digest_key(group), [c.notification for c in items])
            for item, paging in zip(items, flags, strict=True):
                if paging:
                    marked[item.id] = replace(item, notification=replace(item.notification, incident_paging=True))
        return [marked.get(c.id, c) for c in claimed]

    def _gather_groups(
        self, conn: Connection, channel: str, claimed: list[Claimed], now: float, own: tuple[str, ...] = ()
    ) -> list[Claimed]:
        """Fold claimed rows of one group, with the other due rows of that group, into one digest each.

        A group (same budget, kind and channel) reaching `group_threshold` due rows is sent as one message;
        a smaller one is sent row by row, as today. On PagerDuty the message goes to each incident its rows
        belong to (`grouping.incident_keys`): one digest per incident; elsewhere, what is told in a grouped
        message's thread goes to each grouped message its rows are listed in (`_by_message`).
        """
        cursor = _cursor(conn)
        by_group: dict[tuple[str, str], list[Claimed]] = {}
        for item in claimed:
            if item.group_key is not None:
                by_group.setdefault((item.group_key, item.kind.value), []).append(item)
        if not by_group:
            return claimed
        folded: dict[int, Claimed] = {}
        digests: list[Claimed] = []
        singles: list[Claimed] = []
        for (group, kind), items in by_group.items():
            if kind == NotificationKind.RESOLVED.value:
                # An alert notified on its own is resolved in its own message, thread or incident, even when
                # others of its group resolve with it: only those a grouped message listed are resolved there.
                alone = {i.id for i in items if listed_in(i.notification, group_digest_key(group)) is None}
                items = [i for i in items if i.id not in alone]
                if not items:
                    continue
            room = max(self.grouping.max_group - len(items), 0)
            query = self._sql["group_due_own_locked" if own else "group_due_locked"]
            cursor.execute(query, (channel, group, kind, now, now, *own, room))
            more = cursor.fetchall()
            # On PagerDuty a resolve ends an incident, not a message: resolves go one by one to each alert's
            # own incident (if it was paged alone), and end a group's incident only with its last open alert.
            # A grouped resolve went to the group's key: the alerts paged alone kept their incidents open
            # for ever, and the group's ended while alerts it listed still fired.
            resolving = channel in INCIDENT_CHANNELS and kind == NotificationKind.RESOLVED.value
            if resolving or len(items) + len(more) < self.grouping.threshold(group):
                # Sent one by one: the resolve of the last open instance of a group incident resolves it,
                # and the acknowledgement of its last firing one acknowledges it (else it escalates on).
                notes = [i.notification for i in items]
                if kind == NotificationKind.ACKNOWLEDGED.value:
                    ended = incidents_acknowledged(conn, channel, group_digest_key(group), notes)
                else:
                    ended = incidents_ended(conn, channel, group_digest_key(group), notes)
                for key in dict.fromkeys(k for k in ended if k is not None):
                    part = [item for item, k in zip(items, ended, strict=True) if k == key]
                    digest = replace(part[0], members=tuple(part), digest_key=key, group=group)
                    digests.append(digest)
                    folded.update((item.id, digest) for item in part)
                continue
            leased = self._lease(conn, more, now)
            if kind == NotificationKind.RESOLVED.value:
                singles += [i for i in leased if listed_in(i.notification, group_digest_key(group)) is None]
                leased = [i for i in leased if listed_in(i.notification, group_digest_key(group)) is not None]
            members = sorted([*items, *leased], key=lambda c: c.id)
            if len(members) < self.grouping.threshold(group):  # another sender took some meanwhile
                singles.extend(leased)  # leased: ours to send, one by one
                continue
            mine = {item.id for item in leased}
            for key, part, grouped in self._by_message(conn, channel, group, members):
                if not grouped:
                    singles.extend(item for item in part if item.id in mine)  # the claimed ones are sent as they are
                    continue
                digest = replace(part[0], members=tuple(part), digest_key=key, group=group)
                digests.append(digest)
                folded.update((item.id, digest) for item in part)
        out: list[Claimed] = []
        seen: set[int] = set()
        for item in [*claimed, *digests]:
            target = folded.get(item.id, item)
            if target.id not in seen or not target.members:
                seen.add(target.id)
                out.append(target)
            # A digest replaces every claimed member; keep only its first appearance.
        return out + singles

    def _by_message(
        self, conn: Connection, channel: str, group: str, members: list[Claimed]
    ) -> list[tuple[str, list[Claimed], bool]]:
        """The group's rows by the message they go to: (its key, its rows, whether they are sent as one).

        A row about an alert notified on its own goes alone to its own message or incident
        (`grouping.told_alone`). Of the others, on PagerDuty, per incident (`grouping.incident_keys`), each
        one message. Elsewhere, per grouped message whose thread they are told in (`grouping.by_message`):
        one reply in each thread, and a lone alert's row is sent alone (it replies in its thread naming the
        alert); rows listed in no grouped message are one new message from `group_threshold` on, else sent
        one by one, as ever.
        """
        key = group_digest_key(group)
        out = [(key, [member], False) for member in members if told_alone(member.notification)]
        members = [member for member in members if not told_alone(member.notification)]
        if not members:
            return out
        if channel in INCIDENT_CHANNELS:
            keys = incident_keys(conn, channel, key, [m.notification for m in members], members[0].id)
            incidents: dict[str, list[Claimed]] = {}
            for member, incident in zip(members, keys, strict=True):
                incidents.setdefault(incident, []).append(member)
            return out + [(incident, part, True) for incident, part in incidents.items()]
        parts = by_message([m.notification for m in members])
        for message, positions in parts.items():
            part = [members[i] for i in positions]
            alone = len(part) == 1 if message is not None else len(part) < self.grouping.threshold(group)
            out.append((key, part, not alone))
        return out

    def _summary(self, claimed: list[Claimed]) -> Claimed:
        """All claimed rows (digests flattened) as one rate-limit summary."""
        rows = sorted((row for item in claimed for row in item.rows), key=lambda c: c.id)
        lead = rows[0]
        return replace(lead, members=tuple(rows), digest_key=summary_digest_key(lead.id), group="")

    def _in_list(self, n: int) -> str:
        return ", ".join([self._placeholder] * n)

    @staticmethod
    def _claimed(row: Any, unfinished: set[int] | frozenset[int] = frozenset()) -> Claimed:
        row_id, alert_id, channel, kind_name, attempts, payload_json, reference, group_key = row
        payload = loads(payload_json)
        kind = NotificationKind(kind_name)
        notification = Notification(
            kind=kind,
            alert=alert_from_snapshot(payload["alert"]),
            channel=channel,
            reference=loads(reference),
            actor=actor_from_json(payload.get("actor")),
            previous_severity=payload.get("previous_severity"),
            reopened=reopened_from_json(payload.get("reopened")),
            outbox_id=int(row_id),
            maybe_delivered=bool(payload.get("maybe_delivered")) or row_id in unfinished,
            settled_recipients=tuple(payload.get("settled_recipients") or ()),
        )
        return Claimed(int(row_id), int(alert_id), channel, kind, int(attempts), notification, group_key)

    def send(self, notifier: Notifier, claimed: Claimed) -> DeliveryResult:
        """Run the notifier; a notifier bug becomes a retryable failure instead of killing a worker."""
        try:
            if claimed.members:
                return send_digest(notifier, claimed.digest())
            return notifier.send(claimed.notification)
        except Exception as exc:  # a notifier must not raise, but a worker must survive one that does
            error = redact(f"{claimed.channel}: unexpected {type(exc).__name__}: {exc}")
            log.error("notifier raised on outbox row %s: %s", claimed.id, error)
            return DeliveryResult.retry(error)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempts + 1`: exponential with jitter, or longer if the receiver asks.

        The receiver's `Retry-After` is the least wait, not the wait: taken as it was, Slack's usual
        `Retry-After: 1` spent `max_attempts` (10) in ten seconds of rate limiting and dead-lettered the
        alert, where the same attempts span about 13 minutes of a receiver answering 500.
        """
        ceiling = min(self.settings.max_backoff, self.settings.initial_backoff * 2 ** max(attempts - 1, 0))
        wait = ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # "equal jitter": spread, never near zero
        if retry_after is not None:
            asked = min(max(retry_after, MIN_RETRY_AFTER), max(self.settings.max_backoff, MAX_RETRY_AFTER))
            wait = max(wait, asked)
        return wait

    def finish(self, claimed: Claimed, result: DeliveryResult, now: float | None = None) -> Finished:
        """Record the result of one delivery attempt (one transaction)."""
        return self.record([(claimed, result)], now)[0]

    def _outcome(self, claimed: Claimed, result: DeliveryResult, now: float) -> tuple[str, str | None, float | None]:
        attempts = claimed.attempts + 1
        if result.ok:
            return (SKIPPED, None, None) if result.skipped else (SENT, "sent", None)
        if result.retryable and attempts < self.settings.max_attempts:
            return PENDING, "retried", now + self.backoff(attempts, result.retry_after)
        return DEAD, "failed", None

    def record(self, results: Sequence[tuple[Claimed, DeliveryResult]], now: float | None = None) -> list[Finished]:
        """Record the results of several delivery attempts in one transaction.

        Pre-built driver-level statements keep this cheap: it runs once per delivered notification, and on
        SQLite every writer queues for the same lock.
        """
        if not results:
            return []
        now = self.clock() if now is None else now
        with self.store.transaction() as conn:
            return self._record_in(conn, results, now)

    def _record_in(
        self, conn: Connection, results: Sequence[tuple[Claimed, DeliveryResult]], now: float
    ) -> list[Finished]:
        finished: list[Finished] = []
        references: list[tuple[str, float, int, str]] = []
        counters: dict[str, float] = {}
        cursor = _cursor(conn)
        for delivery, result in results:
            if delivery.members and result.ok and not result.skipped:
                folded = "grouped" if delivery.group else "summarised"
                name = counter_name(delivery.channel, folded)
                counters[name] = counters.get(name, 0) + len(delivery.members)
            for claimed in delivery.rows:
                self._record_row(cursor, delivery, claimed, result, now, finished, references, counters)
        if references:
            cursor.executemany(self._sql["reference"], references)
        self.store.add_counters(counters, conn=conn)
        return finished

    def _record_row(
        self,
        cursor: Any,
        delivery: Claimed,
        claimed: Claimed,
        result: DeliveryResult,
        now: float,
        finished: list[Finished],
        references: list[tuple[str, float, int, str]],
        counters: dict[str, float],
    ) -> None:
        """Record one outbox row's outcome; a digest's member rows all share the digest's result."""
        status, outcome, next_attempt = self._outcome(claimed, result, now)
        params = (
            status,
            claimed.attempts + 1,
            now,
            result.error[:2000] or None,
            now if result.ok else None,
            next_attempt,
            claimed.id,
            self.owner,
        )
        cursor.execute(self._sql["finish"], params)
        if cursor.rowcount != 1:
            # Our lease ran out and another sender took the row over: it records the outcome.
            log.warning("outbox row %s: lease lost before the result was recorded", claimed.id)
            finished.append(Finished(claimed.id, claimed.channel, status, None, lease_lost=True))
            return
        settled = result.settled_recipients  # a digest's are kept by each of its rows
        if status == PENDING and (settled or result.maybe_delivered):
            # The message may have gone out, wholly (a lost answer) or in part (some mail recipients took
            # it): the row remembers it, so the retry does not repeat it.
            cursor.execute(self._sql["payload"], (claimed.id,))
            payload = loads(cursor.fetchone()[0])
            if settled:
                payload["settled_recipients"] = list(settled)
            if result.maybe_delivered:
                payload["maybe_delivered"] = True
            cursor.execute(self._sql["progress"], (dumps(payload), claimed.id))
        if result.ok and not result.skipped and result.reference is not None:
            if delivery.members:
                reference = member_reference(delivery.digest_key, result.reference)
            else:
                reference = single_reference(claimed.channel, claimed.notification, result.reference)
            references.append((dumps(reference), now, claimed.alert_id, claimed.channel))
        if outcome is not None:
            name = counter_name(claimed.channel, outcome)
            counters[name] = counters.get(name, 0) + 1
        finished.append(Finished(claimed.id, claimed.channel, status, outcome, next_attempt))
        if status == DEAD:
            log.warning("notification %s on %s is a dead letter: %s", claimed.id, claimed.channel, result.error)
        elif status == PENDING:
            log.info("notification %s on %s will be retried: %s", claimed.id, claimed.channel, result.error)

    def deliver(self, channel: str, notifier: Notifier, *, limit: int, now: float | None = None) -> list[Finished]:
        """Claim due rows of one channel, send them one after the other and record the results."""
        return self.record([(c, self.send(notifier, c)) for c in self.claim(channel, limit, now)])

    def next_due(self, channel: str) -> float | None:
        """When the earliest pending row of `channel` becomes due (or its lease ends), or None."""
        o = notification_outbox
        later = func.greatest if self.store.dialect == "postgresql" else func.max  # two-argument max()
        due = later(o.c.next_attempt_at, func.coalesce(o.c.lease_until, o.c.next_attempt_at))
        with self.store.reading() as conn:
            # Rows queued behind an earlier one of the same alert wait for it, not for their own time.
            value = conn.execute(
                select(func.min(due)).where(o.c.channel == channel, o.c.status == PENDING, ~_earlier_pending())
            ).scalar()
        return None if value is None else float(value)
