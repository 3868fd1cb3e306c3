"""The gateway's typed settings (what `alerting.gateway.config` parses from the file), with their defaults.

Kept apart from the parsing so the stages that only read settings (outbox, lifecycle, channels) do not
depend on the configuration file's validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from alerting.gateway.grouping import GroupingSettings
from alerting.model import Severity

CHANNELS: tuple[str, ...] = ("slack", "email", "pagerduty")
DEFAULT_ROUTES: dict[Severity, tuple[str, ...]] = {
    "info": (),
    "warning": ("slack", "email"),
    "critical": ("slack", "email", "pagerduty"),
}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number of seconds or a string such as `90s`, `30m`, `4h`, `1h30m`, `7d`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"must be a duration such as 90s, 30m, 4h or 1h30m, got {value!r}")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        raise ValueError(f"must be a duration such as 90s, 30m, 4h or a number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


@dataclass(frozen=True)
class OutboxSettings:
    """Delivery retries, leases and worker sizing."""

    max_attempts: int = 10
    initial_backoff: float = 2.0
    max_backoff: float = 300.0
    lease: float = 60.0
    """How long a claimed row is reserved for its sender; a crashed sender's row is retried after it."""
    concurrency: int = 4
    """Deliveries in flight at once per channel."""
    poll_interval: float = 1.0
    """How often a worker looks for rows written by other processes (its own wake it at once)."""
    retention: float = 30 * 86400.0
    """Delivered rows older than this are deleted by `tick` (dead letters are kept)."""


@dataclass(frozen=True)
class SilenceSettings:
    """Optional: silence an acknowledged Alertmanager alert in Alertmanager until resolve or unack."""

    url: str = ""
    """`alerting.alertmanager.url`, else the first top-level replica."""
    replicas: tuple[str, ...] = ()
    """Every Alertmanager asked about silences, and tried in turn by `silence_on_ack`: the top-level
    `alertmanager.urls` when `url` is not given here. Empty: just `url`."""
    silence_on_ack: bool = False
    follow_silences: bool = True
    """With a url: mark the firing alerts received from Alertmanager that a silence there holds (no
    reminders), and resolve those that end while silenced (`alerting.gateway.silence_watch`)."""
    duration: float = 24 * 3600.0
    resolve_after: float = 300.0
    """An acknowledged alert held by llmcost's silence is resolved once it has been gone from Alertmanager
    this long. Alertmanager sends no resolve for a silenced alert; the wait rides out an Alertmanager
    restarted without its alerts, which Prometheus re-sends within a minute or two
    (`alerting.gateway.silence_watch`)."""

    @property
    def urls(self) -> tuple[str, ...]:
        """The replicas asked about silences and alerts (`replicas`, else `url`, else none)."""
        return self.replicas or ((self.url,) if self.url else ())


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway reads from the configuration, secrets resolved."""

    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per configured channel, its `notifications.<channel>` mapping with secrets resolved."""
    routes: dict[Severity, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    slack_signing_secret: str = ""
    pagerduty_webhook_secrets: tuple[str, ...] = ()
    repeat_interval: float = 4 * 3600.0
    tick_interval: float = 30.0
    max_body_bytes: int = 1024 * 1024
    receipt_retention: float = 7 * 86400.0
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    silences: SilenceSettings = field(default_factory=SilenceSettings)
    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    external_labels: dict[str, str] = field(default_factory=dict)
    """`alertmanager.external_labels`: llmcost's alerts coming back from Alertmanager are this installation's
    only when they carry them (`alerting.installation`)."""

    def channels_for(self, severity: str) -> tuple[str, ...]:
        """The configured channels an alert of this severity is routed to."""
        return tuple(c for c in self.routes.get(severity, ()) if c in self.channels)  # type: ignore[call-overload]
