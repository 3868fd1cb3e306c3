"""The grouping stage: many instances of one budget crossing together become ONE message per channel.

The same holds for the spikes one detection pass starts (`alerting.model.SERIES_ALERTS`): one burst
raises the total, its project and its model at once, and a platform-wide surge many projects. Their
group key is `<alertname>|@<detection pass>` (`pass_group_key`, from `SPIKE_PASS_ANNOTATION`), the pass
fires (resolves) them in one transaction, and they are one message from `PASS_GROUP_THRESHOLD` (2) on:
one problem, one thread per channel. A spike of a later pass is another group, so it pages anew.

A per-key budget (`key: "*"`) has one alert per instance (project, user, …). When one request crosses
the budget for fifty projects, each instance is its own alert (and keeps its own state, acknowledgement
and history), but people should not get fifty Slack posts, fifty pages and fifty mails. As Alertmanager
groups with `group_by: [alertname, budget]`:

- every outbox row of a budget instance carries a group key, `<alert family>|<budget>`
  (`group_key_for`); the instances one budget pass crosses are fired in ONE transaction
  (`GatewayService.fire_many`), so they are all queued when the first is claimed, and
  `alerting.group_wait` (default 0) can hold them longer to catch instances crossing in later passes;
- when a worker claims such a row and at least `alerting.group_threshold` rows of the same group, kind
  and channel are due, it claims them all and the notifier sends one message listing them
  (`alerting.notify.digest.Digest`); PagerDuty gets one incident per budget (dedup_key
  `llmcost-group-<hash of the group>`), unless `notifications.pagerduty.group: false`;
- fewer than the threshold are sent one by one, exactly as alerts of fixed-key budgets are.

Each member row is recorded with the digest's result, and its channel reference points to the digest
(`member_reference`), so pressing "Acknowledge all" in Slack or acknowledging the group's incident in
PagerDuty acknowledges every alert the digest listed (`digest_members`).

On PagerDuty a group's incident can be acknowledged, and PagerDuty only appends a `trigger` on an
acknowledged incident to its log (nobody is paged). So there a grouped message is sent to the incident
its instances are listed in, and instances not listed in one yet (new projects crossing) join the group's
incident that is still paging, or open a new one (`llmcost-group-<hash>-<n>`) when every incident of the
group is acknowledged (`incident_keys`): new problems page, the acknowledged ones are not paged again, and
each incident's webhooks concern only the instances it listed.

A per-channel rate limit (`notifications.<channel>.max_per_minute`, see `alerting.gateway.workers`)
folds whatever exceeds it into one summary digest (`llmcost-digest-<outbox id>`), never dropping it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from alerting.gateway.records import dumps, loads
from alerting.gateway.tables import alert_channels, alerts, notification_outbox
from alerting.model import (
    PASS_MARK,
    PUSHED_ONLY_LABELS,
    SERIES_ALERTS,
    SPIKE_PASS_ANNOTATION,
    Alert,
    DeliveryResult,
    Notification,
    NotificationKind,
    alert_family,
)
from alerting.notify.base import Notifier
from alerting.notify.digest import GROUP_THREAD_KINDS, Digest

GROUP_LABELS = ("budget", "key")
"""An alert carrying both (non-empty) is an instance of a per-key budget: it can be grouped."""
INCIDENT_CHANNELS = frozenset({"pagerduty"})
"""Channels where a message to an acknowledged grouped message notifies nobody (PagerDuty's incidents)."""
PASS_GROUP_THRESHOLD = 2
"""Due notifications of one detection pass's spikes from which they are one message, whatever
`group_threshold` says: they are one problem, and two threads for it are one too many."""
_PAGING_KINDS = frozenset({NotificationKind.FIRING, NotificationKind.REPEAT, NotificationKind.ESCALATED})


@dataclass(frozen=True)
class GroupingSettings:
    """`alerting.group_wait`, `alerting.group_threshold`, and per channel `group` / `max_per_minute`."""

    group_wait: float = 0.0
    """Seconds a groupable notification waits for the rest of its group before it is due.

    0 (the default): no wait. The instances one pass crosses are fired in one transaction
    (`GatewayService.fire_many`), so they are due together anyway, and a lone instance is sent at once.
    """
    group_threshold: int = 3
    """Due notifications of one group (same budget, kind and channel) from which they are sent as one."""
    max_group: int = 1000
    """Notifications folded into one message at most (the rest make the next message)."""
    ungrouped: frozenset[str] = frozenset()
    """Channels configured with `group: false` (every instance notified on its own)."""
    max_per_minute: Mapping[str, int] = field(default_factory=dict)
    """Per channel: messages per rolling minute at most (absent or 0: no limit)."""

    def threshold(self, group_key: str) -> int:
        """Due notifications of `group_key` from which they are sent as one message.

        `group_threshold` for the instances of a budget (or the series of one label set), which are
        separate problems, each with its own thread until many come at once; `PASS_GROUP_THRESHOLD` for
        the spikes one detection pass started, which are one problem.
        """
        if is_pass_group(group_key):
            return min(self.group_threshold, PASS_GROUP_THRESHOLD)
        return self.group_threshold

    def groups(self, channel: str) -> bool:
        """True when notifications on `channel` may be grouped."""
        return self.group_threshold > 0 and channel not in self.ungrouped


def group_key_for(alert: Alert) -> str | None:
    """The group an alert belongs to, or None (an alert never grouped).

    `<family>|<budget>` for an instance of a per-key budget; for a watched series (`SERIES_ALERTS`)
    `<alertname>|@<detection pass>` (`pass_group_key`), or `<alertname>|<label names>` for one fired
    without `SPIKE_PASS_ANNOTATION` (before it existed, or by another caller).
    """
    started = alert.annotations.get(SPIKE_PASS_ANNOTATION, "")
    if alert.alertname in SERIES_ALERTS and started:
        return pass_group_key(alert.alertname, started)
    if alert.alertname in SERIES_ALERTS:
        names = sorted(k for k, v in alert.labels.items() if v and k not in PUSHED_ONLY_LABELS)
        return f"{alert.alertname}|{','.join(names)}"[:256] if names else None  # the total is one series
    budget, key = (alert.labels.get(label, "") for label in GROUP_LABELS)
    if not budget or not key:
        return None
    family = alert_family(alert.alertname) or alert.alertname
    return f"{family}|{budget}"[:256]


def pass_group_key(alertname: str, started: str) -> str:
    """The group of the series alerts one detection pass started (`started`: its `SPIKE_PASS_ANNOTATION`).

    One burst raises the total, its project and its model in the same pass: one problem, so one message
    per channel listing them, whatever label set watches each. A spike starting in a later pass is a new
    problem: another group, another message and incident.
    """
    return f"{alertname}|{PASS_MARK}{started}"[:256]


def is_pass_group(group_key: str) -> bool:
    """True for the group of one detection pass's spikes (`pass_group_key`)."""
    return group_key.partition("|")[2].startswith(PASS_MARK)


def group_digest_key(group_key: str) -> str:
    """The stable key of a group's messages: PagerDuty's dedup_key, so one budget is one incident."""
    return "llmcost-group-" + hashlib.sha256(group_key.encode("utf-8")).hexdigest()[:16]


def summary_digest_key(lead_outbox_id: int) -> str:
    """The key of one rate-limit summary message."""
    return f"llmcost-digest-{lead_outbox_id}"


def listed_in(notification: Notification, digest_key: str) -> str | None:
    """The key of the grouped message of `digest_key`'s group (itself or a later one) listing this alert."""
    digest = (notification.reference or {}).get("digest")
    key = digest.get("key") if isinstance(digest, Mapping) else None
    if isinstance(key, str) and (key == digest_key or key.startswith(digest_key + "-")):
        return key
    return None


def listed_message(notification: Notification) -> str | None:
    """The grouped message this alert is listed in on its channel, as stable text (its reference), or None.

    Slack's keeps the message's channel and ts, mail's its Message-ID: two grouped messages of one budget
    (instances crossing at different times) share their group key but not this. A mail's subject is left
    out: grouped mails sent before it was kept have none, and replies to them store it empty.
    """
    digest = (notification.reference or {}).get("digest")
    if not isinstance(digest, Mapping):
        return None
    return dumps({name: value for name, value in digest.items() if name != "subject"})


def told_alone(notification: Notification) -> bool:
    """True for news of an alert that was notified on its own, told in its own message, thread or incident.

    Its reminder, (un)acknowledgement and resolve (`GROUP_THREAD_KINDS`) go where the alert was told, as
    they do for an alert listed in a grouped message, however many instances of its budget fall due in
    the same tick: folded into one new grouped message, they opened a second Slack thread and mail thread
    for problems already told, and on PagerDuty a new incident (an extra page) on the group's key, while
    the acknowledgements left the alerts' own incidents escalating. Instances notified one by one (fewer
    than `group_threshold` at a time, or by a release that did not group) are such alerts.
    """
    reference = notification.reference or {}
    return notification.kind in GROUP_THREAD_KINDS and bool(reference) and "digest" not in reference


def by_message(notifications: Sequence[Notification]) -> dict[str | None, list[int]]:
    """Positions of the notifications by the grouped message whose thread they are told in (None: none).

    Reminders, (un)acknowledgements and resolves (`GROUP_THREAD_KINDS`) of alerts listed in different
    grouped messages are one reply in each message's thread: folded into one message, they had no one
    thread to go to, and were posted as a new message (a new mail thread) the alerts then moved to.
    Other kinds start a message of their own: all in one part.
    """
    parts: dict[str | None, list[int]] = {}
    for position, notification in enumerate(notifications):
        message = listed_message(notification) if notification.kind in GROUP_THREAD_KINDS else None
        parts.setdefault(message, []).append(position)
    return parts


def incident_keys(
    conn: Connection, channel: str, digest_key: str, notifications: Sequence[Notification], lead_id: int
) -> list[str]:
    """Per notification, the incident of its group it goes to on an `INCIDENT_CHANNELS` channel.

    An alert already listed in one of the group's incidents stays with it (its acknowledgement, resolve
    or re-opening concern that incident). An alert listed in none, notified as firing, joins the group's
    incident that is still paging (one with a firing alert), else opens a new one, `<digest_key>-<lead_id>`,
    when the group's open incidents are all acknowledged: a trigger on those would page nobody.
    """
    new_key = digest_key
    if any(listed_in(n, digest_key) is None and _pages(n) for n in notifications):
        paging, any_open = _open_incidents(conn, channel, digest_key)
        new_key = paging or (f"{digest_key}-{lead_id}" if any_open else digest_key)
    return [listed_in(n, digest_key) or (new_key if _pages(n) else digest_key) for n in notifications]


def incidents_ended(
    conn: Connection, channel: str, digest_key: str, notifications: Sequence[Notification]
) -> list[str | None]:
    """Per notification, the group incident its resolve ends on an `INCIDENT_CHANNELS` channel, else None.

    Resolves sent one by one go to each alert's own `dedup_key`, which never had an incident: the resolve
    of the last open alert an incident listed must resolve that incident, or it stays open (and pages on).
    """
    if channel not in INCIDENT_CHANNELS:
        return [None] * len(notifications)
    keys = [listed_in(n, digest_key) if n.kind is NotificationKind.RESOLVED else None for n in notifications]
    ended = {key for key in set(keys) if key is not None and not digest_members(conn, channel, key)}
    return [key if key in ended else None for key in keys]


def incidents_acknowledged(
    conn: Connection, channel: str, digest_key: str, notifications: Sequence[Notification]
) -> list[str | None]:
    """Per notification, the group incident its acknowledgement quiets on an `INCIDENT_CHANNELS` channel, else None.

    Acknowledgements sent one by one (`llmcost alerts ack`, `POST /v1/alerts/{id}/ack`, the console) go to
    each alert's own `dedup_key`, which never had an incident: once no alert an incident listed is firing
    any more, the incident must be acknowledged, or PagerDuty keeps escalating a problem everyone it names
    has acknowledged in llmcost. While one of them still fires, the incident keeps paging for it.
    """
    if channel not in INCIDENT_CHANNELS:
        return [None] * len(notifications)
    keys = [listed_in(n, digest_key) if n.kind is NotificationKind.ACKNOWLEDGED else None for n in notifications]
    quiet = {key for key in set(keys) if key is not None and not digest_members(conn, channel, key, firing=True)}
    return [key if key in quiet else None for key in keys]


def incidents_paging(
    conn: Connection, channel: str, digest_key: str, notifications: Sequence[Notification]
) -> list[bool]:
    """Per notification, True for an unacknowledgement whose group incident still pages for another alert.

    The Events API has no "unacknowledge", so an unack re-opens an incident by resolving it and triggering
    it anew, which pages: right when the incident is acknowledged, a second page for one already ringing
    when it is not. An incident still pages while an alert it lists is firing and known there as firing
    (no unack of it is waiting to be sent): llmcost acknowledges a group's incident only with its last
    firing alert, and PagerDuty's own acknowledgement acknowledges every alert it lists. Of several
    unacks of one acknowledged incident sent one by one, the first re-opens it and the others find it paging.
    """
    if channel not in INCIDENT_CHANNELS:
        return [False] * len(notifications)
    keys = [listed_in(n, digest_key) if n.kind is NotificationKind.UNACKNOWLEDGED else None for n in notifications]
    paging = {key: _told_firing(conn, channel, key) for key in set(keys) if key is not None}
    flags = []
    for key in keys:
        flags.append(key is not None and paging[key])
        if key is not None:
            paging[key] = True  # re-opened by this one, if it was not paging
    return flags


def _told_firing(conn: Connection, channel: str, key: str) -> bool:
    """True when an alert the incident `key` lists is firing and no unack of it waits to be sent there."""
    outbox = notification_outbox
    unack_waiting = exists().where(
        outbox.c.alert_id == alerts.c.id,
        outbox.c.channel == channel,
        outbox.c.kind == NotificationKind.UNACKNOWLEDGED.value,
        outbox.c.status == "pending",  # `enqueue.PENDING`: enqueue imports this module
    )
    row = conn.execute(
        select(alerts.c.id)
        .join(alert_channels, alert_channels.c.alert_id == alerts.c.id)
        .where(
            alert_channels.c.channel == channel,
            alert_channels.c.reference.contains(f'"key":{dumps(key)}', autoescape=True),
            alerts.c.state == "firing",
            ~unack_waiting,
        )
        .limit(1)
    ).first()
    return row is not None


def _pages(notification: Notification) -> bool:
    """True for a notification that should page and does not re-open (re-opening resolves and re-triggers)."""
    return notification.kind in _PAGING_KINDS and notification.reopened is None


def _open_incidents(conn: Connection, channel: str, digest_key: str) -> tuple[str | None, bool]:
    """The group's latest incident listing a firing alert (or None), and whether any lists an open alert."""
    prefix = dumps(digest_key)[:-1]  # `"llmcost-group-…` without its closing quote: the key and later ones
    rows = conn.execute(
        select(alert_channels.c.reference, alerts.c.state)
        .join(alerts, alerts.c.id == alert_channels.c.alert_id)
        .where(
            alert_channels.c.channel == channel,
            alert_channels.c.reference.contains(f'"key":{prefix}', autoescape=True),
            alerts.c.state != "resolved",
        )
        .order_by(alert_channels.c.updated_at.desc(), alert_channels.c.alert_id.desc())
    ).all()
    for reference, state in rows:
        key = ((loads(reference) or {}).get("digest") or {}).get("key")
        if state == "firing" and isinstance(key, str):
            return key, True
    return None, bool(rows)


def member_reference(digest_key: str, reference: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a member alert stores as its channel reference after a digest was delivered.

    Nested under `digest`, so that a later notification about this one alert does not edit (Slack) or
    re-key (PagerDuty) the shared message: its reminder, acknowledgement and resolve are told in the
    shared message's thread (`alerting.notify.digest.GROUP_THREAD_KINDS`), its escalation starts a message
    of its own, as a new alert's would.
    """
    return {"digest": {**(reference or {}), "key": digest_key}}


def single_reference(channel: str, notification: Notification, reference: dict[str, Any]) -> dict[str, Any]:
    """What an alert stores as its channel reference after a notification about it alone was delivered.

    On an `INCIDENT_CHANNELS` channel an alert listed in a group's incident stays listed in it: its own
    acknowledgement or unacknowledgement goes to its own `dedup_key` (no incident), and storing that in
    place of the membership made the alert leave the incident. Acknowledged one by one, only the last
    (sent folded, as the incident's acknowledgement) was still a member, so PagerDuty's unacknowledgement
    of the incident (an ack timeout) un-acked that one alone, and the resolves one by one ended the
    incident while alerts it listed were still open. Other channels store what was sent.
    """
    listed = (notification.reference or {}).get("digest")
    if channel in INCIDENT_CHANNELS and isinstance(listed, Mapping) and isinstance(listed.get("key"), str):
        return {"digest": dict(listed)}
    return reference


def digest_members(conn: Connection, channel: str, digest_key: str, *, firing: bool = False) -> list[int]:
    """Ids of the open alerts a digest on `channel` listed (what acknowledging the digest acknowledges).

    `firing`: only those neither resolved nor acknowledged (what its PagerDuty incident still pages for).
    """
    needle = dumps(digest_key)  # the exact JSON text of the key inside the stored reference
    state = alerts.c.state == "firing" if firing else alerts.c.state != "resolved"
    rows = conn.execute(
        select(alert_channels.c.alert_id)
        .join(alerts, alerts.c.id == alert_channels.c.alert_id)
        .where(
            alert_channels.c.channel == channel,
            alert_channels.c.reference.contains(f'"key":{needle}', autoescape=True),
            state,
        )
        .order_by(alert_channels.c.alert_id)
    ).all()
    return [int(r[0]) for r in rows]


def send_digest(notifier: Notifier, digest: Digest) -> DeliveryResult:
    """Send `digest` as one message through `notifier` (only channels whose notifier has `send_digest`)."""
    send = getattr(notifier, "send_digest", None)
    if send is None:  # the outbox only folds rows of `digest_channels`: a configuration slip, not a retry
        return DeliveryResult.fail(f"{notifier.channel}: this notifier cannot send a grouped message")
    result: DeliveryResult = send(digest)
    return result


def digest_channels(notifiers: Mapping[str, Notifier]) -> list[str]:
    """The channels whose notifier can send one message for many notifications."""
    return [name for name, notifier in notifiers.items() if callable(getattr(notifier, "send_digest", None))]
