"""One message about many notifications: a group of budget instances, or a rate-limit summary.

The gateway's grouping stage (`alerting.gateway.grouping`) folds notifications into a `Digest` when many
instances of one budget cross together, or when a channel reached `max_per_minute`; each notifier renders
it as one message (`send_digest`) listing the instances, the ones beyond `LIST_MAX` as "and N more".
Nothing here decides what to fold: this module only describes and renders the fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerting.model import PASS_MARK, PUSHED_ONLY_LABELS, SERIES_ALERTS, Notification, NotificationKind
from alerting.notify.text_limits import truncate

LIST_MAX = 25
"""Instances listed by name in one message; the rest are counted ("and N more")."""
LINE_MAX = 200
REASON_MAX = 500
"""Characters of the one reason a grouped resolve gives (a person's comment may be 4,000)."""
ACK_DIGEST_ACTION_ID = "llmcost_ack_digest"
"""Slack button acknowledging every alert a digest message lists (value: the digest key)."""
DIGEST_KEY_PREFIXES = ("llmcost-group-", "llmcost-digest-")
"""Digest keys: `llmcost-group-<hash>` (one per budget group) or `llmcost-digest-<outbox id>` (a summary)."""
GROUP_THREAD_KINDS = frozenset(
    {
        NotificationKind.REPEAT,
        NotificationKind.RESOLVED,
        NotificationKind.ACKNOWLEDGED,
        NotificationKind.UNACKNOWLEDGED,
    }
)
"""What is told about alerts a grouped message listed in that message's thread (Slack) and mail thread.

One problem, one thread: their reminders, acknowledgements, unacknowledgements and resolves, alone or
grouped again (an unacknowledgement told as a new post made the alert leave its group there). An
escalation (a new severity, which re-opens acknowledged alerts and pages anew) starts a message of its own.
"""

_VERBS = {
    NotificationKind.FIRING: "firing",
    NotificationKind.REPEAT: "still firing",
    NotificationKind.ESCALATED: "escalated",
    NotificationKind.ACKNOWLEDGED: "acknowledged",
    NotificationKind.UNACKNOWLEDGED: "unacknowledged",
    NotificationKind.RESOLVED: "resolved",
    NotificationKind.UPDATED: "updated",
}


def is_digest_key(key: str) -> bool:
    """True for a key naming a digest (a grouped message), not one alert."""
    return key.startswith(DIGEST_KEY_PREFIXES) and len(key) <= 128


@dataclass(frozen=True)
class Digest:
    """Several notifications of one channel delivered as one message."""

    key: str
    """Stable name of the message: PagerDuty's dedup_key, the Slack button's value."""
    notifications: tuple[Notification, ...]
    group: str = ""
    """`family|budget` for a group of instances of one budget, `alertname|@<pass>` for the spikes one
    detection pass started (`alertname|label names` for those fired before passes were named); "" for a
    rate-limit summary."""
    lead_id: int = 0
    """The first outbox row of the digest: names this one message (mail Message-ID) across retries."""

    @property
    def kind(self) -> NotificationKind | None:
        """The kind every notification shares, or None for a mixed summary."""
        kinds = {n.kind for n in self.notifications}
        return kinds.pop() if len(kinds) == 1 else None

    @property
    def severity(self) -> str:
        """The highest severity among the notifications."""
        order = ("info", "warning", "critical")
        return max((n.alert.severity for n in self.notifications), key=order.index)

    @property
    def alert_ids(self) -> list[int]:
        """Ids of the alerts the digest lists."""
        return [n.alert.id for n in self.notifications if n.alert.id is not None]

    @property
    def acknowledgeable(self) -> bool:
        """True when the message should offer "Acknowledge all" (something in it is firing)."""
        return any(
            n.kind
            in (
                NotificationKind.FIRING,
                NotificationKind.REPEAT,
                NotificationKind.ESCALATED,
                NotificationKind.UNACKNOWLEDGED,
            )
            for n in self.notifications
        )

    def title(self) -> str:
        """One line: how many, of what, doing what."""
        n = len(self.notifications)
        kind = self.kind
        if self.group:
            family, _, budget = self.group.partition("|")
            verb = (_VERBS[kind] if kind is not None else "changed") + self._who()
            # "series" is its own singular: "1 series of total firing" is right as it is.
            if family in SERIES_ALERTS and budget.startswith(PASS_MARK):  # the spikes one pass started
                title = f"{n} series of {self._label_sets()} {verb} ({family}, {self.severity})"
            elif family in SERIES_ALERTS:  # `budget` holds the watched label names
                title = f"{n} series of {budget} {verb} ({family}, {self.severity})"
            else:
                title = f"{n} {_count_noun(n, 'instance')} of budget {budget} {verb} ({family}, {self.severity})"
            return truncate(title + self._reopened(), LINE_MAX)
        noun = _count_noun(n, "notification")
        return truncate(f"{n} {noun} summarised: notification rate limit reached", LINE_MAX)

    def _label_sets(self) -> str:
        """The watched label sets of the listed series: `total, project and model,provider`."""
        sets = sorted(
            {label_set(n) for n in self.notifications}, key=lambda names: (names.count(",") + bool(names), names)
        )
        shown = [names or "total" for names in sets]
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"

    def _who(self) -> str:
        """` by alice via slack at 2026-12-07 03:12 UTC` for a change one person made to every listed alert, else "".

        "5 instances of budget per-project acknowledged" alone leaves the on-call guessing whether a
        colleague took it, and when.
        """
        kind = self.kind
        if kind not in (NotificationKind.ACKNOWLEDGED, NotificationKind.UNACKNOWLEDGED, NotificationKind.RESOLVED):
            return ""
        actors = {(n.actor.by, n.actor.via) for n in self.notifications if n.actor is not None and n.actor.by}
        if len(actors) != 1 or any(n.actor is None for n in self.notifications):
            return ""
        [(by, via)] = actors
        times = [
            n.alert.acknowledged_at if kind is NotificationKind.ACKNOWLEDGED else n.alert.resolved_at
            for n in self.notifications
        ]
        latest = max((t for t in times if t is not None), default=None)
        when = f" at {latest.strftime('%Y-%m-%d %H:%M UTC')}" if latest is not None else ""
        return f" by {by} via {via}{when}"

    def reason(self) -> str:
        """`Why: …` for a resolve whose alerts were all ended by one actor for one reason, else "".

        An alert's own resolve says why after who ("by llmcost via scheduler: the daily period ended
        (2026-12-07 in UTC); …", "by dave via budgets: budget reset by dave: …"); the grouped resolve of
        many said only who, and a period's end read like any other resolve.
        """
        if self.kind is not NotificationKind.RESOLVED or not self._who():
            return ""
        comments = {n.actor.comment for n in self.notifications if n.actor is not None}
        comment = comments.pop() if len(comments) == 1 else ""
        return truncate(f"Why: {comment}", REASON_MAX) if comment else ""

    def _reopened(self) -> str:
        """`: re-opened, …` when the escalation re-opened acknowledged alerts (see `Notification.reopened`)."""
        held = [n.reopened for n in self.notifications if n.reopened is not None]
        if not held:
            return ""
        which = "re-opened" if len(held) == len(self.notifications) else f"{len(held)} of them re-opened"
        severities = sorted({r.severity for r in held if r.severity})
        if severities:
            which += f", the acknowledgement was for {' and '.join(severities)}"
        return f": {which}"

    def lines(self) -> tuple[list[str], int]:
        """One line per listed notification (at most `LIST_MAX`), and how many more are not listed.

        A resolve whose alerts ended for reasons of their own (spikes, each with its figures) gives each
        line its reason in place of the firing summary: no one reason goes under the title then.
        """
        shown = self.notifications[:LIST_MAX]
        own = self.kind is NotificationKind.RESOLVED and not self.reason()
        return [line(n, why=own) for n in shown], len(self.notifications) - len(shown)

    def text(self) -> str:
        """Plain-text body: the title, the reason (if any), the list, and "and N more"."""
        listed, hidden = self.lines()
        reason = self.reason()
        body = [self.title(), *([reason] if reason else []), "", *(f"- {item}" for item in listed)]
        if hidden:
            body.append(f"- and {hidden} more")
        return "\n".join(body)


def _count_noun(n: int, singular: str) -> str:
    """`singular` for one, its plural (an `s` more) for any other count: "1 instance", "5 instances"."""
    return singular if n == 1 else f"{singular}s"


def label_set(notification: Notification) -> str:
    """The names of the labels a series alert is split by, joined by commas ("" for the total)."""
    labels = notification.alert.labels
    return ",".join(sorted(k for k, v in labels.items() if v and k not in PUSHED_ONLY_LABELS))


def instance(notification: Notification) -> str:
    """What tells this alert from the others of its group: its budget key, else its labels (`total`: none)."""
    labels = notification.alert.labels
    if labels.get("key"):
        return labels["key"]
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if not shown and notification.alert.alertname in SERIES_ALERTS:
        return "total"
    return shown or notification.alert.alertname


def line(notification: Notification, *, why: bool = False) -> str:
    """`<instance>: <alertname> <severity> <verb> — <summary>`, bounded.

    `why`: the reason its actor gave (a resolve's "spend fell back below 1.5x the baseline: …") in place of
    the summary, which describes the alert as it fired.
    """
    alert = notification.alert
    comment = notification.actor.comment if why and notification.actor is not None else ""
    summary = comment or alert.annotations.get("summary", "")
    text = f"{instance(notification)}: {alert.alertname} {alert.severity} {_VERBS[notification.kind]}"
    if summary:
        text += f" — {summary}"
    return truncate(text, LINE_MAX)
