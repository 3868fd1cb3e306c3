"""PagerDuty Events API v2: trigger, acknowledge and resolve one PagerDuty alert per llmcost alert.

Every event about an alert carries the same `dedup_key`, `llmcost-<fingerprint>`, so PagerDuty folds them
into one incident; the reference returned is `{"dedup_key": …}`. Reminders (repeat, escalated) and an
unacknowledge are sent as `trigger` (the Events API has no "unacknowledge").

A state change that came from PagerDuty itself (the notification's actor has `via == "pagerduty"`, i.e. the
gateway learnt it from PagerDuty's webhook) is not echoed back: `send` returns ok with `skipped=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from alerting.escaping import truncate
from alerting.model import Alert, DeliveryResult, Notification, NotificationKind
from alerting.notify.base import one_line, parse_retry_after, redact
from alerting.notify.templating import context, render

DEFAULT_EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX: Final = 1024
DEDUP_KEY_MAX: Final = 255

EVENT_ACTIONS: Final = {
    NotificationKind.FIRING: "trigger",
    NotificationKind.REPEAT: "trigger",
    NotificationKind.ESCALATED: "trigger",
    NotificationKind.UNACKNOWLEDGED: "trigger",
    NotificationKind.ACKNOWLEDGED: "acknowledge",
    NotificationKind.RESOLVED: "resolve",
}
SEVERITIES: Final = {"critical": "critical", "warning": "warning", "info": "info"}
_STATE_CHANGES: Final = frozenset(
    {NotificationKind.ACKNOWLEDGED, NotificationKind.UNACKNOWLEDGED, NotificationKind.RESOLVED}
)


def dedup_key(alert: Alert) -> str:
    """Return the `dedup_key` that all events about `alert` share."""
    return f"llmcost-{alert.fingerprint}"


def _dedup_key(notification: Notification) -> str:
    stored = (notification.reference or {}).get("dedup_key")
    if isinstance(stored, str) and 0 < len(stored) <= DEDUP_KEY_MAX:
        return stored
    return dedup_key(notification.alert)


def build_event(notification: Notification, *, routing_key: str, source: str = "llmcost") -> dict[str, Any]:
    """Build the Events API v2 body for a notification (acknowledge and resolve need no payload)."""
    action = EVENT_ACTIONS[notification.kind]
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": _dedup_key(notification),
    }
    if action != "trigger":
        return event
    alert = notification.alert
    ctx = context(notification)
    event["payload"] = {
        "summary": truncate(render("pagerduty.summary", notification), SUMMARY_MAX),
        "source": source,
        "severity": SEVERITIES[alert.severity],
        "timestamp": alert.starts_at.isoformat(),
        "class": alert.alertname,
        "custom_details": {
            "alert_id": alert.id,
            "fingerprint": alert.fingerprint,
            "notification": notification.kind.value,
            "source": alert.source,
            "labels": dict(sorted(alert.labels.items())),
            "annotations": dict(sorted(alert.annotations.items())),
        },
    }
    event["client"] = "llmcost"
    if ctx["generator_url"]:
        event["client_url"] = ctx["generator_url"]
    links = [
        {"href": ctx["runbook_url"], "text": "Runbook"},
        {"href": ctx["generator_url"], "text": "Source"},
    ]
    event["links"] = [link for link in links if link["href"]]
    return event


def _response_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return one_line(response.text, 200)
    if not isinstance(body, dict):
        return one_line(str(body), 200)
    parts = [str(body.get("message") or body.get("status") or "")]
    parts += [str(e) for e in body.get("errors") or [] if e]
    return one_line("; ".join(p for p in parts if p), 300)


class PagerDutyNotifier:
    """Sends Events API v2 events to PagerDuty (or any endpoint speaking it)."""

    channel = "pagerduty"

    def __init__(
        self,
        *,
        routing_key: str,
        events_url: str = DEFAULT_EVENTS_URL,
        timeout: float = 10.0,
        source: str = "llmcost",
    ) -> None:
        self._routing_key = routing_key
        self._events_url = events_url
        self.timeout = timeout
        self.source = source
        # One pooled client for every event: building one per request costs a TLS context each time
        # (tens of ms of CPU), which caps fan-out. httpx.Client is safe to share between threads.
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Release the pooled connections."""
        self._client.close()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PagerDutyNotifier:
        """Build from the `notifications.pagerduty` config (secrets resolved); ignores `webhook_secret`."""
        if not config.get("routing_key"):
            raise ValueError("notifications.pagerduty: missing routing_key")
        return cls(
            routing_key=str(config["routing_key"]),
            events_url=str(config.get("events_url") or DEFAULT_EVENTS_URL),
            timeout=float(config.get("timeout_seconds", 10.0)),
            source=str(config.get("source") or "llmcost"),
        )

    def send(self, notification: Notification) -> DeliveryResult:
        """Send the event for a notification; see the module docstring."""
        key = _dedup_key(notification)
        actor = notification.actor
        if actor is not None and actor.via == "pagerduty" and notification.kind in _STATE_CHANGES:
            return DeliveryResult.skip({"dedup_key": key})
        event = build_event(notification, routing_key=self._routing_key, source=self.source)
        action = event["event_action"]
        try:
            response = self._client.post(self._events_url, json=event)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            return DeliveryResult.fail(self._redact(f"pagerduty {action}: bad events_url: {error}"))
        except httpx.TransportError as error:  # timeouts, refused or reset connections
            return DeliveryResult.retry(self._redact(f"pagerduty {action}: {type(error).__name__}: {error}"))
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult.sent({"dedup_key": key})
        text = self._redact(f"pagerduty {action}: HTTP {status}: {_response_detail(response)}")
        if status == 429:
            return DeliveryResult.retry(text, retry_after=parse_retry_after(response.headers))
        if status >= 500:
            return DeliveryResult.retry(text)
        return DeliveryResult.fail(text)

    def _redact(self, text: str) -> str:
        return redact(text, [self._routing_key, self._events_url])
