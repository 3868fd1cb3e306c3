"""The alerting vocabulary: alerts, the notifications sent about them and what a delivery returned.

Plain dataclasses without I/O, shared by the scheduler, the gateway (dedup, outbox) and the notifiers.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
AlertState = Literal["firing", "acknowledged", "resolved"]
AlertSource = Literal["scheduler", "alertmanager"]

SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
"""Severities from lowest to highest; an alert escalates when its index rises."""
ALERT_STATES: tuple[AlertState, ...] = ("firing", "acknowledged", "resolved")
ALERT_SOURCES: tuple[AlertSource, ...] = ("scheduler", "alertmanager")
ORIGIN_LABEL = "llmcost_origin"
"""Label on the alerts llmcost pushes to Alertmanager: the gateway recognises them when they come back."""
PUSHED_ONLY_LABELS = (ORIGIN_LABEL, "severity")
"""Labels added for Alertmanager's routing only; without them a returning alert has its own fingerprint."""


ESCALATING_ALERTS: dict[str, tuple[str, ...]] = {
    "LLMBudget": (
        "LLMBudgetInfo",
        "LLMBudgetForecastOverrun",
        "LLMBudgetWarning",
        "LLMBudgetCritical",
        "LLMBudgetExceeded",
    ),
}
"""Alert names that are the levels of one alert, lowest first, under the family's name.

A budget instance crossing info, warning, critical and exceeded is one alert: its fingerprint is taken
with the family's name, so the alert keeps its id, its Slack message, mail thread and PagerDuty incident,
while its `alertname` and severity follow the level reached. The forecast (projected over the limit) is
the level above info: it usually comes first, and the crossings that follow confirm the same problem, so
they carry on its thread instead of opening a second one beside it.
"""
SERIES_ALERTS = frozenset({"LLMCostSpike"})
"""Alerts raised per watched series: those one detection pass starts (a burst's total, project and model, or
a spike of each of many projects) are grouped into one message per channel, as the instances of a per-key
budget are (`SPIKE_PASS_ANNOTATION`)."""
SPIKE_PASS_ANNOTATION = "detection_pass"  # noqa: S105 - an annotation name, not a secret
"""Annotation of an `LLMCostSpike` naming the detection pass that started it (RFC 3339, e.g.
`2026-12-07T13:05:00Z`). The spikes one pass starts describe one problem (a burst raises the total, its
project and its model at once): the gateway groups them by it into one message per channel
(`alerting.gateway.grouping.group_key_for`). It comes back from Alertmanager with the other annotations."""
PASS_MARK = "@"  # noqa: S105 - a separator, not a secret
"""Starts the part after `|` of the group key of one detection pass's spikes (label names never do)."""
_FAMILY_OF = {name: family for family, names in ESCALATING_ALERTS.items() for name in names}


def alert_family(alertname: str) -> str | None:
    """The escalating family an alert name is a level of, or None."""
    return _FAMILY_OF.get(alertname)


def level_rank(alertname: str) -> int:
    """Position of an alert name within its escalating family (lowest 0); -1 outside any family."""
    family = _FAMILY_OF.get(alertname)
    return -1 if family is None else ESCALATING_ALERTS[family].index(alertname)


def fingerprint(alertname: str, labels: Mapping[str, str]) -> str:
    """Identify an alert by its name and sorted labels: a stable 16-digit hex string.

    A label called `alertname` is overridden by the `alertname` argument, so Alertmanager's label sets
    (which carry it) and the scheduler's (which may not) fingerprint alike. The levels of an escalating
    family (`ESCALATING_ALERTS`) fingerprint under the family's name: one alert whatever its level.
    """
    identity = sorted({**labels, "alertname": _FAMILY_OF.get(alertname, alertname)}.items())
    canonical = json.dumps(identity, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _require_utc(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


INHIBITION_PREFIX = "inhibited:"
"""How the id of a `Silence` that is an inhibition starts (then the inhibiting alert's Alertmanager fingerprint)."""


@dataclass(frozen=True)
class Silence:
    """What holds an alert received from Alertmanager there: a silence, or an inhibition by another alert.

    The silence was made there, not by llmcost; an inhibition is another alert muting this one through an
    inhibit rule. Both hold the alert back alike (Alertmanager delivers nothing about it, its resolve included), so
    llmcost marks it held the same way. An inhibition has the id `inhibited:` + the inhibiting alert's
    Alertmanager fingerprint, that alert's name as `by`, a description of it as `comment`, no end.
    """

    id: str
    by: str = ""
    """The silence's `createdBy`; for an inhibition, the name of the alert inhibiting this one."""
    comment: str = ""
    ends_at: datetime | None = None

    @property
    def inhibition(self) -> bool:
        """True when an inhibition, not a silence, holds the alert."""
        return self.id.startswith(INHIBITION_PREFIX)


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert as the gateway knows it; datetimes are timezone-aware UTC."""

    fingerprint: str
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    severity: Severity
    state: AlertState = "firing"
    source: AlertSource = "scheduler"
    starts_at: datetime
    id: int | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    generator_url: str = ""
    group_key: str = ""
    """Alertmanager's `groupKey` when the alert came from a webhook, else empty."""
    truncated_alerts: int = 0
    """Alertmanager's `truncatedAlerts`: alerts of the group left out of the webhook payload."""
    silence: Silence | None = None
    """A firing alert from Alertmanager that a silence there holds: no reminders while it does
    (`alerting.gateway.silence_watch`)."""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.state not in ALERT_STATES:
            raise ValueError(f"state must be one of {ALERT_STATES}, got {self.state!r}")
        if self.source not in ALERT_SOURCES:
            raise ValueError(f"source must be one of {ALERT_SOURCES}, got {self.source!r}")
        _require_utc("starts_at", self.starts_at)
        _require_utc("acknowledged_at", self.acknowledged_at)
        _require_utc("resolved_at", self.resolved_at)


class NotificationKind(enum.StrEnum):
    """Why a notification is sent; the gateway's dedup stage decides which one applies."""

    FIRING = "firing"
    REPEAT = "repeat"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    RESOLVED = "resolved"
    UPDATED = "updated"
    """A firing alert's figures changed (a growing spike): messages that can be edited are, nobody is told."""


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who changed an alert's state and through which door (`slack`, `pagerduty`, `api`, `cli`)."""

    by: str
    via: str
    comment: str = ""


@dataclass(frozen=True, kw_only=True)
class Reopened:
    """The acknowledgement an escalation ended: it was given at a lower severity than the alert reached."""

    by: str
    via: str
    alertname: str
    """The level the alert had while the acknowledgement held."""
    severity: str


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One message to send on one channel about one alert.

    `reference` is what the channel's previous successful delivery about this alert returned (see
    `DeliveryResult.reference`), so a notifier can update or thread onto what people already saw.
    """

    kind: NotificationKind
    alert: Alert
    channel: str
    reference: Mapping[str, Any] | None = None
    actor: Actor | None = None
    previous_severity: Severity | None = None
    """For `escalated`: the severity notified before."""
    reopened: Reopened | None = None
    """For `escalated`: the acknowledgement the rise re-opened (the alert is firing again), if any."""
    outbox_id: int | None = None
    """The outbox row this notification came from; makes retried deliveries recognisable (email)."""
    maybe_delivered: bool = False
    """An earlier attempt at this outbox row may have reached the receiver: it failed in a way that can
    hide a success (a timeout; `DeliveryResult.maybe_delivered`) or its sender died before recording it.
    A notifier whose receiver cannot recognise a repeat (Slack) looks for the earlier message first."""
    settled_recipients: tuple[str, ...] = ()
    """Recipients an earlier attempt at this row already settled (email: accepted, or refused for good);
    the retry goes to the others only, so nobody gets the mail twice."""
    incident_paging: bool = False
    """For `unacknowledged` on an incident channel (PagerDuty): the grouped incident it goes to still pages
    for another alert it lists (triggered, not acknowledged), so the unack is an update of that incident,
    not a re-opening that resolves it and pages anew (`alerting.gateway.grouping.incidents_paging`)."""


@dataclass(frozen=True, kw_only=True)
class DeliveryResult:
    """What one delivery attempt achieved.

    On success `reference` is the complete reference to store for this alert and channel (it replaces the
    previous one). On failure `retryable` says whether trying again can help and `retry_after` how many
    seconds the receiver asked us to wait. `error` is redacted: it never carries a secret; on success it may
    hold a warning about a partial problem that a retry would not fix (some mail recipients refused).
    """

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    reference: dict[str, Any] | None = None
    error: str = ""
    skipped: bool = False
    """True when the notifier deliberately sent nothing (an ack echoed back to where it came from)."""
    settled_recipients: tuple[str, ...] = ()
    """On a retryable failure, the recipients this delivery has settled so far (previous attempts
    included): the outbox keeps them with the row and hands them back as
    `Notification.settled_recipients` on the retry."""
    maybe_delivered: bool = False
    """On a retryable failure: the receiver may have acted all the same (its answer was lost to a timeout, or
    it says it failed part way); the retry is handed `Notification.maybe_delivered`."""

    @classmethod
    def sent(cls, reference: dict[str, Any] | None = None, *, warning: str = "") -> DeliveryResult:
        """Delivered; `warning` notes a partial problem that a retry would not fix."""
        return cls(ok=True, reference=reference, error=warning)

    @classmethod
    def skip(cls, reference: dict[str, Any] | None = None) -> DeliveryResult:
        """Nothing needed sending; the stored reference stays as it is."""
        return cls(ok=True, reference=reference, skipped=True)

    @classmethod
    def retry(
        cls,
        error: str,
        retry_after: float | None = None,
        *,
        settled_recipients: Sequence[str] = (),
        maybe_delivered: bool = False,
    ) -> DeliveryResult:
        """Failed in a way that trying again later can fix (429, 5xx, timeouts, connection errors).

        `settled_recipients`: the failure concerns only the others (some mail recipients deferred);
        `maybe_delivered`: the receiver may have acted despite the failure.
        """
        return cls(
            ok=False,
            retryable=True,
            retry_after=retry_after,
            error=error,
            settled_recipients=tuple(settled_recipients),
            maybe_delivered=maybe_delivered,
        )

    @classmethod
    def fail(cls, error: str) -> DeliveryResult:
        """Failed for good (other 4xx, refused recipients, bad credentials or config)."""
        return cls(ok=False, retryable=False, error=error)
