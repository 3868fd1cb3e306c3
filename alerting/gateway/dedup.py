"""The dedup stage: decides from what is stored about an alert whether to notify now, and why.

A pure function of the alert's state and the clock; the lifecycle stage applies its answer inside the
transaction that read the state, with a conditional update, so two processes never both act on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from alerting.model import SEVERITIES, NotificationKind


class Reason(enum.Enum):
    """Why the gateway notifies, or does not."""

    FIRST = "first notification"
    REPEAT_INTERVAL_ELAPSED = "repeat interval elapsed"
    SEVERITY_ROSE = "severity rose"
    LEVEL_ROSE = "level rose"
    WITHIN_REPEAT_INTERVAL = "do not notify: within the repeat interval"
    ACKNOWLEDGED = "do not notify: acknowledged"
    RESOLVED = "do not notify: resolved"


_KINDS = {
    Reason.FIRST: NotificationKind.FIRING,
    Reason.REPEAT_INTERVAL_ELAPSED: NotificationKind.REPEAT,
    Reason.SEVERITY_ROSE: NotificationKind.ESCALATED,
    Reason.LEVEL_ROSE: NotificationKind.ESCALATED,
}


@dataclass(frozen=True)
class Decision:
    """The dedup stage's answer: a reason, and the notification kind when one is due."""

    reason: Reason

    @property
    def notify(self) -> bool:
        """True when a notification is due."""
        return self.reason in _KINDS

    @property
    def kind(self) -> NotificationKind | None:
        """The kind of notification to send, or None."""
        return _KINDS.get(self.reason)


def severity_rank(severity: str | None) -> int:
    """Position of a severity from lowest (0) to highest; -1 for none."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def decide(
    *,
    state: str,
    severity: str,
    notified_severity: str | None,
    last_notified_at: float | None,
    now: float,
    repeat_interval: float,
    level_rose: bool = False,
) -> Decision:
    """Decide whether an alert that is (still) firing is notified now.

    - never notified before: first notification;
    - severity above the highest one notified: severity rose, acknowledged or not. An acknowledgement
      covers the severity it was given at: the lifecycle stage re-opens an acknowledged alert that rose
      above it, so it pages again and can be acknowledged again;
    - `level_rose` (an escalating alert moved to a higher level at the same severity, e.g. a budget
      from critical to exceeded): level rose, unless acknowledged (the ack holds for that severity);
    - acknowledged: nothing; resolved: nothing;
    - otherwise a repeat once `repeat_interval` seconds passed since the last notification.
    """
    if state == "resolved":
        return Decision(Reason.RESOLVED)
    if notified_severity is None or last_notified_at is None:
        return Decision(Reason.FIRST)
    rose = severity_rank(severity) > severity_rank(notified_severity)
    if rose:
        return Decision(Reason.SEVERITY_ROSE)
    if state == "acknowledged":
        return Decision(Reason.ACKNOWLEDGED)
    if level_rose:
        return Decision(Reason.LEVEL_ROSE)
    if now - last_notified_at >= repeat_interval:
        return Decision(Reason.REPEAT_INTERVAL_ELAPSED)
    return Decision(Reason.WITHIN_REPEAT_INTERVAL)
