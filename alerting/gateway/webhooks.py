"""Acknowledgements from outside: Slack interactivity payloads and PagerDuty webhooks v3, parsed.

Signatures are checked by `alerting.signatures` before anything here runs; these functions only turn
verified bodies into small records, raising `PayloadError` (answered 400/422) on anything unexpected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from alerting.gateway.alertmanager import PayloadError
from alerting.gateway.records import parse_rfc3339
from alerting.notify.digest import ACK_DIGEST_ACTION_ID, is_digest_key

SLACK_ACK = "llmcost_ack"
SLACK_UNACK = "llmcost_unack"
PD_EVENTS = {
    "incident.acknowledged": "ack",
    "incident.unacknowledged": "unack",
    "incident.resolved": "resolve",
}
DEDUP_KEY_PREFIX = "llmcost-"
"""`alerting.notify.pagerduty.dedup_key`: `llmcost-<fingerprint>`; PagerDuty calls it `incident_key`."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _display_name(value: object) -> str:
    """Who acted, as Slack or PagerDuty names them, without control characters.

    Only a display name: dropping a NUL keeps the signed ack, where refusing it would leave the alert
    paging (and a NUL cannot be written to PostgreSQL: the click or webhook was answered 500).
    """
    return _CONTROL.sub("", str(value)).strip()


@dataclass(frozen=True)
class SlackAction:
    """One button press: what to do to which alert, and who pressed it."""

    action: str  # "ack" | "unack"
    alert_id: int
    user: str
    digest: str = ""
    """For "Acknowledge all" on a grouped message: the digest key (`alert_id` is then 0)."""


def parse_slack_interaction(body: bytes) -> list[SlackAction]:
    """The ack/unack actions of a Slack interaction (`payload=<json>` form field); others are ignored."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("payload", "body is not a form") from None
    values = form.get("payload")
    if not values:
        raise PayloadError("payload", "missing")
    try:
        payload = orjson.loads(values[0])
    except orjson.JSONDecodeError:
        raise PayloadError("payload", "not JSON") from None
    if not isinstance(payload, dict):
        raise PayloadError("payload", "must be a JSON object")
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    assert isinstance(user, dict)
    names = (_display_name(user[k]) for k in ("username", "name", "id") if isinstance(user.get(k), str))
    who = next(filter(None, names), "")
    actions = payload.get("actions")
    if not isinstance(actions, list):
        raise PayloadError("payload.actions", "must be a list")
    found = []
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            raise PayloadError(f"payload.actions[{i}]", "must be an object")
        action_id = str(action.get("action_id"))
        value = action.get("value")
        if action_id == ACK_DIGEST_ACTION_ID:
            if not isinstance(value, str) or not is_digest_key(value) or not value.replace("-", "").isalnum():
                raise PayloadError(f"payload.actions[{i}].value", "must be a digest key")
            found.append(SlackAction("ack", 0, who or "slack user", digest=value))
            continue
        kind = {SLACK_ACK: "ack", SLACK_UNACK: "unack"}.get(action_id)
        if kind is None:
            continue  # link buttons (runbook, source) also send interactions
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise PayloadError(f"payload.actions[{i}].value", "must be an alert id")
        found.append(SlackAction(kind, int(value), who or "slack user"))
    return found


@dataclass(frozen=True)
class PagerDutyEvent:
    """The parts of a PagerDuty webhook v3 event the gateway acts on."""

    id: str
    event_type: str
    incident_key: str
    agent: str
    created_at: float | None
    """When PagerDuty created the incident (tells a new incident from an older one with the same key)."""
    occurred_at: float | None = None
    """When the event happened. The v3 signature covers no time, so a captured delivery replayed after its
    receipt is purged (`alerting.receipt_retention`) is told apart by this (`WebhookReceiver`)."""

    @property
    def action(self) -> str | None:
        """`ack`, `unack` or `resolve`, or None for event types the gateway ignores."""
        return PD_EVENTS.get(self.event_type)

    @property
    def digest(self) -> str | None:
        """The digest key when the incident is a grouped one (one per budget group), else None."""
        return self.incident_key if is_digest_key(self.incident_key) else None

    @property
    def fingerprint(self) -> str | None:
        """The alert fingerprint inside our dedup_key, or None if the incident is not ours."""
        if self.digest is not None:
            return None
        if self.incident_key.startswith(DEDUP_KEY_PREFIX):
            return self.incident_key[len(DEDUP_KEY_PREFIX) :] or None
        return None


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadError(field, "must be a non-empty string")
    return value


def _time(value: Any, field: str) -> float | None:
    """Epoch seconds of an RFC 3339 string; None when absent (or not a string, as PagerDuty never sends)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise PayloadError(field, "not an RFC 3339 timestamp") from None


def parse_pagerduty_webhook(data: Any) -> PagerDutyEvent:
    """Validate a decoded PagerDuty webhook v3 body."""
    if not isinstance(data, dict) or not isinstance(data.get("event"), dict):
        raise PayloadError("event", "must be an object")
    event = data["event"]
    event_id = _text(event.get("id"), "event.id")
    if len(event_id) > 128:
        raise PayloadError("event.id", "too long")
    event_type = _text(event.get("event_type"), "event.event_type")
    incident = event.get("data")
    incident_key = ""
    created_at = None
    if event_type in PD_EVENTS:
        if not isinstance(incident, dict):
            raise PayloadError("event.data", "must be an object")
        key = incident.get("incident_key")
        if key is not None and not isinstance(key, str):
            raise PayloadError("event.data.incident_key", "must be a string")
        incident_key = key or ""
        created_at = _time(incident.get("created_at"), "event.data.created_at")
    occurred_at = _time(event.get("occurred_at"), "event.occurred_at")
    agent = event.get("agent")
    who = ""
    if isinstance(agent, dict):
        who = _display_name(agent.get("summary") or agent.get("id") or "")
    return PagerDutyEvent(event_id, event_type, incident_key, who or "pagerduty", created_at, occurred_at)
