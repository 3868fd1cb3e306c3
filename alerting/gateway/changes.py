"""What the lifecycle stage takes and gives: an alert as a source reports it, and what a call changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alerting.gateway.dedup import Decision
from alerting.model import Alert, AlertSource, Severity, fingerprint


class AlertNotFound(LookupError):
    """No alert has this id."""


class AlertConflict(ValueError):
    """The alert's state does not allow the change (e.g. acknowledging a resolved alert)."""


@dataclass(frozen=True)
class AlertInput:
    """An alert as a source reports it (the scheduler, or one alert of an Alertmanager webhook)."""

    alertname: str
    labels: Mapping[str, str]
    severity: Severity
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: AlertSource = "scheduler"
    starts_at: float | None = None
    """When the condition started (Alertmanager's `startsAt`); None: now, for a new alert."""
    generator_url: str = ""
    group_key: str = ""
    truncated_alerts: int = 0
    update: bool = False
    """The source says its figures changed enough to edit what was sent (a spike that grew, see
    `alerting.spikes.messages.grew`): a firing alert's editable messages are updated in place."""

    @property
    def fingerprint(self) -> str:
        """Alert name + sorted labels (see `alerting.model.fingerprint`)."""
        return fingerprint(self.alertname, self.labels)

    @property
    def stored_labels(self) -> dict[str, str]:
        """Labels as stored: without the `alertname` label Alertmanager adds (it is a column)."""
        return {k: v for k, v in sorted(self.labels.items()) if k != "alertname"}


@dataclass(frozen=True)
class Change:
    """What one lifecycle call did: the alert afterwards, and the notifications it enqueued."""

    action: str
    """`fired`, `escalated`, `repeat`, `updated`, `unchanged`, `acknowledged`, `unacknowledged`,
    `resolved`, `silenced`, `inhibited`, `unsilenced` (a silence or an inhibition in Alertmanager holds
    it, or none does any longer), or
    `ignored` (nothing known to change)."""
    alert: Alert | None = None
    decision: Decision | None = None
    channels: tuple[str, ...] = ()
    """Channels a notification was enqueued on."""
    reason: str = ""

    @property
    def changed(self) -> bool:
        """True when the alert's state or notifications changed."""
        return self.action not in ("unchanged", "ignored")
