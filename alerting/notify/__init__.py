"""Notifiers: deliver one notification on one channel and say whether a failure is worth retrying.

Each notifier renders its message from the templates in `alerting/templates/`, sends it once with its own
timeouts and returns a `DeliveryResult`; dedup, fan-out, the outbox and its retries live in the gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alerting.notify.base import Notifier, parse_retry_after, redact
from alerting.notify.mail import EmailNotifier
from alerting.notify.pagerduty import PagerDutyNotifier
from alerting.notify.slack import SlackNotifier

__all__ = [
    "EmailNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "build_notifiers",
    "parse_retry_after",
    "redact",
]

_FACTORIES: dict[str, Callable[[Mapping[str, Any]], Notifier]] = {
    "slack": SlackNotifier.from_config,
    "email": EmailNotifier.from_config,
    "pagerduty": PagerDutyNotifier.from_config,
}


def build_notifiers(notifications: Mapping[str, Any]) -> dict[str, Notifier]:
    """Build a notifier for each channel configured in the `notifications:` section (secrets resolved).

    Channels that are absent or empty are skipped; `routes` is the gateway's business and ignored here.
    """
    return {name: factory(notifications[name]) for name, factory in _FACTORIES.items() if notifications.get(name)}
