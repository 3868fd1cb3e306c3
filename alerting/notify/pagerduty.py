"""PagerDuty Events API v2: trigger, acknowledge and resolve one PagerDuty alert per llmcost alert.

Every event about an alert carries the same `dedup_key`, `llmcost-<fingerprint>`, so PagerDuty folds them
into one incident; the reference returned is `{"dedup_key": …}`. Reminders (repeat, escalated) are sent as
`trigger`; the reminder or unack of an alert a grouped incident lists goes to that incident (`_dedup_key`).

PagerDuty only appends a `trigger` on an acknowledged incident to its log (nobody is paged), and the Events
API has no "unacknowledge". So an alert that is firing again after an acknowledgement (an unacknowledge, or
an escalation that re-opened it: `Notification.reopened`) is sent as `resolve` then `trigger` with the same
`dedup_key`: PagerDuty opens a new incident, which pages. The unack of an alert a grouped incident lists
while that incident still pages for another (`Notification.incident_paging`) is only a `trigger`, logged
on the incident: it is paging already. A retry sends both again; the `resolve` then
finds nothing open, or the incident of an earlier attempt whose answer was lost (at least once, as every
notification). A grouped message re-opening alerts (`send_digest`) does the same with the group's
`dedup_key`: the budget's acknowledged incident is resolved and a new one triggered.

A state change that came from PagerDuty itself (the notification's actor has `via == "pagerduty"`, i.e. the
gateway learnt it from PagerDuty's webhook) is not echoed back: `send` returns ok with `skipped=True`.
"""

from __future__ import annotations

import http.client
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from alerting.model import Alert, DeliveryResult, Notification, NotificationKind
from alerting.notify.base import content_kind, one_line, parse_retry_after, redact
from alerting.notify.digest import LIST_MAX, Digest, instance
from alerting.notify.templating import context, render
from alerting.notify.text_limits import truncate

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


def _reopens(notification: Notification) -> bool:
    """True when the alert is firing again after an acknowledgement that did not come from PagerDuty."""
    if notification.actor is not None and notification.actor.via == "pagerduty":
        return False  # PagerDuty's own unacknowledge: its incident is triggered again already
    if notification.incident_paging:
        return False  # the group's incident still pages for another alert: a trigger is logged there
    return notification.kind is NotificationKind.UNACKNOWLEDGED or notification.reopened is not None


def dedup_key(alert: Alert) -> str:
    """Return the `dedup_key` that all events about `alert` share."""
    return f"llmcost-{alert.fingerprint}"


_TO_GROUP_INCIDENT: Final = frozenset({NotificationKind.REPEAT, NotificationKind.UNACKNOWLEDGED})
"""Notifications about one alert a grouped incident lists that go to that incident (see `_dedup_key`)."""


def _dedup_key(notification: Notification) -> str:
    """The alert's stored `dedup_key`; for the reminder or unack of an alert a grouped incident lists, that incident's.

    A reminder sent alone (the others of its group acknowledged) went to the alert's own `dedup_key`,
    which never had an incident: PagerDuty opened a second one for the problem and paged again. An unack
    sent alone did too, and that page then never ended: the alert's acknowledgement acknowledged the
    group's incident (`alerting.gateway.grouping`), not its own key's. Now the unack resolves the group's
    incident and triggers it anew, which pages. The alert's acknowledgement and resolve still go to its
    own key (`alerting.gateway.grouping` acknowledges and ends the group's incident).
    """
    reference = notification.reference or {}
    stored = reference.get("dedup_key")
    if isinstance(stored, str) and 0 < len(stored) <= DEDUP_KEY_MAX:
        return stored
    listed = reference.get("digest")
    if notification.kind in _TO_GROUP_INCIDENT and isinstance(listed, Mapping):
        key = listed.get("key")
        if isinstance(key, str) and 0 < len(key) <= DEDUP_KEY_MAX:
            return key
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
        {"href": ctx["dashboard_url"], "text": "Dashboard"},
    ]
    event["links"] = [link for link in links if link["href"]]
    return event


def build_digest_event(digest: Digest, *, routing_key: str, source: str = "llmcost") -> dict[str, Any]:
    """One Events API v2 event for a digest: its key is the dedup_key, so a budget's group is ONE incident.

    A digest of resolutions resolves the incident, of acknowledgements acknowledges it; anything else
    (re)triggers it, listing the instances in `custom_details`.
    """
    kind = digest.kind
    action = "trigger"
    if kind is NotificationKind.RESOLVED:
        action = "resolve"
    elif kind is NotificationKind.ACKNOWLEDGED:
        action = "acknowledge"
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": digest.key}
    if action != "trigger":
        return event
    listed, hidden = digest.lines()
    event["payload"] = {
        "summary": truncate(digest.title(), SUMMARY_MAX),
        "source": source,
        "severity": SEVERITIES[digest.severity],
        "class": digest.group.partition("|")[0] or "llmcost",
        "custom_details": {
            "count": len(digest.notifications),
            "group": digest.group,
            "alert_ids": digest.alert_ids[: LIST_MAX * 4],
            "instances": [instance(n) for n in digest.notifications[: LIST_MAX * 4]],
            "listed": listed,
            "and_more": hidden,
        },
    }
    event["client"] = "llmcost"
    return event


def _response_detail(body: bytes, headers: Mapping[str, str]) -> str:
    """What the Events API said, for the failure line logged on every attempt (never an HTML page's markup)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        if content_kind(headers) == "text/html" or body.lstrip()[:1] == b"<":
            # A load balancer's outage page: what it was is enough (Slack's notifier says it alike).
            return "an HTML page, not the Events API's JSON"
        return one_line(body.decode("utf-8", "replace"), 200)
    if not isinstance(data, dict):
        return one_line(str(data), 200)
    parts = [str(data.get("message") or data.get("status") or "")]
    parts += [str(e) for e in data.get("errors") or [] if e]
    return one_line("; ".join(p for p in parts if p), 300)


class BadEventsURL(ValueError):
    """`events_url` is not an http(s) URL: retrying will not help."""


class _Response:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class EventsTransport:
    """POSTs JSON to the Events API on a kept-alive connection per thread (stdlib `http.client`).

    A fan-out sends hundreds of events a second; a general-purpose client (httpx) spends 1–2 ms of CPU
    on each (docs/performance.md), the plain connection a tenth of that. HTTPS goes through the proxy named by
    `https_proxy` (CONNECT tunnel) unless `no_proxy` exempts the host, as with curl.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadEventsURL(f"not an http(s) URL: {parts.scheme or '?'}://…")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        proxy = urllib.request.getproxies().get(parts.scheme)
        self.proxy = None if proxy is None or urllib.request.proxy_bypass(self.host) else urlsplit(proxy)
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # kept-alive connections, for `close`
        self._lock = threading.Lock()

    def post_json(self, body: bytes) -> _Response:
        """One POST; a kept-alive connection the server closed meanwhile is replaced once."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return self._post_on(conn, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                pass  # an idle connection the server closed: once more on a new one
        return self._post_on(self._connect(), body)

    def _post_on(self, conn: http.client.HTTPConnection, body: bytes) -> _Response:
        """POST on `conn`; keep it as this thread's connection unless it failed or the server closes it."""
        self._local.conn = None
        try:
            conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self._discard(conn)
            raise
        if response.will_close:
            self._discard(conn)
        else:
            self._local.conn = conn
        return _Response(response.status, dict(response.headers.items()), data)

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        target = (self.proxy.hostname or "", self.proxy.port or 80) if self.proxy else (self.host, self.port)
        if self.https:
            conn = http.client.HTTPSConnection(*target, timeout=self.timeout)
        else:
            conn = http.client.HTTPConnection(*target, timeout=self.timeout)
        if self.proxy is not None:
            conn.set_tunnel(self.host, self.port)
        with self._lock:
            self._open.add(conn)
        return conn

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()


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
        self._transport: EventsTransport | None = None
        self._bad_url = ""
        try:
            self._transport = EventsTransport(events_url, timeout)
        except BadEventsURL as error:
            self._bad_url = str(error)  # every send fails, naming the problem

    def close(self) -> None:
        """Release the kept-alive connections."""
        if self._transport is not None:
            self._transport.close()

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
        if _reopens(notification):
            resolved = self._resolve(key)
            if not resolved.ok:
                return resolved
        return self._post_event(build_event(notification, routing_key=self._routing_key, source=self.source))

    def send_digest(self, digest: Digest) -> DeliveryResult:
        """Send one event for a whole digest (dedup_key = the digest key); see `build_digest_event`."""
        came_from_pagerduty = all(
            n.actor is not None and n.actor.via == "pagerduty" and n.kind in _STATE_CHANGES
            for n in digest.notifications
        )
        if came_from_pagerduty:
            return DeliveryResult.skip({"dedup_key": digest.key})
        if any(_reopens(n) for n in digest.notifications):  # the group's incident may be acknowledged
            resolved = self._resolve(digest.key)
            if not resolved.ok:
                return resolved
        return self._post_event(build_digest_event(digest, routing_key=self._routing_key, source=self.source))

    def _resolve(self, key: str) -> DeliveryResult:
        """Resolve the incident of `key` (if any is open), so that the next trigger opens a new one and pages."""
        return self._post_event({"routing_key": self._routing_key, "event_action": "resolve", "dedup_key": key})

    def _post_event(self, event: dict[str, Any]) -> DeliveryResult:
        key = event["dedup_key"]
        action = event["event_action"]
        if self._transport is None:
            return DeliveryResult.fail(self._redact(f"pagerduty {action}: bad events_url: {self._bad_url}"))
        try:
            response = self._transport.post_json(orjson.dumps(event))
        except (OSError, http.client.HTTPException) as error:  # timeouts, refused or reset connections, TLS
            return DeliveryResult.retry(self._redact(f"pagerduty {action}: {type(error).__name__}: {error}"))
        status = response.status
        if 200 <= status < 300:
            return DeliveryResult.sent({"dedup_key": key})
        text = self._redact(f"pagerduty {action}: HTTP {status}: {_response_detail(response.body, response.headers)}")
        if status == 429:
            return DeliveryResult.retry(text, retry_after=parse_retry_after(response.headers))
        if status >= 500:
            return DeliveryResult.retry(text)
        return DeliveryResult.fail(text)

    def _redact(self, text: str) -> str:
        return redact(text, [self._routing_key, self._events_url])
