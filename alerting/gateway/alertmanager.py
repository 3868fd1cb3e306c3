"""Alertmanager webhook (payload version 4): validated into `AlertInput`s and a receipt digest.

Alertmanager retries the identical payload on 5xx, and HA peers deliver the same group more than once
(their payloads differ only in `externalURL` and `receiver`). The receipt digest covers what the gateway
acts on, so every copy of one notification has the same digest and is applied once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.gateway.changes import AlertInput
from alerting.gateway.records import dumps, parse_rfc3339
from alerting.installation import returning_labels
from alerting.model import ORIGIN_LABEL, SEVERITIES, Severity

_SEVERITY_ALIASES: dict[str, Severity] = {
    "page": "critical",
    "error": "critical",
    "high": "critical",
    "warn": "warning",
    "medium": "warning",
    "low": "info",
    "none": "info",
}
MAX_ALERTS = 10_000


class PayloadError(ValueError):
    """The payload is not a valid webhook; `field` names the offending field (answered 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class WebhookAlert:
    """One alert of a webhook: firing or resolved."""

    status: str
    alert: AlertInput
    own: bool = False
    """One of llmcost's own alerts (pushed with `llmcost_origin`), routed back here."""


@dataclass(frozen=True)
class Webhook:
    """A validated webhook payload."""

    digest: str
    group_key: str
    alerts: list[WebhookAlert]
    truncated_alerts: int
    others: int = 0
    """Alerts of llmcost's left out as another installation's (their external labels are not this one's)."""


def severity_of(labels: dict[str, str]) -> Severity:
    """The gateway severity of an Alertmanager alert, from its `severity` label (default warning)."""
    value = labels.get("severity", "").strip().lower()
    if value in SEVERITIES:
        return value
    return _SEVERITY_ALIASES.get(value, "warning")


NUL_MESSAGE = "must not contain a NUL character"
"""PostgreSQL's text columns cannot hold U+0000: stored, the write failed and Alertmanager was answered 500."""


def _string_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(field, "must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{key}", "must be a string")
        if "\x00" in key:
            raise PayloadError(f"{field}.{key!r}", f"name {NUL_MESSAGE}")
        if "\x00" in item:
            raise PayloadError(f"{field}.{key}", NUL_MESSAGE)
    return value


def _time(value: Any, field: str, *, required: bool) -> float | None:
    if value is None or value == "":
        if required:
            raise PayloadError(field, "required")
        return None
    if not isinstance(value, str):
        raise PayloadError(field, "must be an RFC 3339 timestamp")
    try:
        seconds = parse_rfc3339(value)
    except ValueError:
        raise PayloadError(field, f"not an RFC 3339 timestamp: {value[:64]!r}") from None
    return None if value.startswith("0001-01-01") else seconds


def parse_webhook(data: Any, external_labels: Mapping[str, str] | None = None) -> Webhook:
    """Validate a decoded payload; `PayloadError` names the first bad field.

    `external_labels` name this installation (`alertmanager.external_labels`): an alert llmcost pushed
    without them is another installation's, routed here by Alertmanager, and is left out.
    """
    if not isinstance(data, dict):
        raise PayloadError("body", "must be a JSON object")
    if str(data.get("version")) != "4":
        raise PayloadError("version", f'must be "4", got {data.get("version")!r}')
    group_key = data.get("groupKey", "")
    if not isinstance(group_key, str):
        raise PayloadError("groupKey", "must be a string")
    if "\x00" in group_key:
        raise PayloadError("groupKey", NUL_MESSAGE)
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be an integer >= 0")
    items = data.get("alerts")
    if not isinstance(items, list):
        raise PayloadError("alerts", "must be a list")
    if len(items) > MAX_ALERTS:
        raise PayloadError("alerts", f"at most {MAX_ALERTS} alerts per payload")
    parsed: list[WebhookAlert] = []
    others = 0
    for i, item in enumerate(items):
        field = f"alerts[{i}]"
        if not isinstance(item, dict):
            raise PayloadError(field, "must be an object")
        status = item.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"{field}.status", "must be 'firing' or 'resolved'")
        labels = _string_map(item.get("labels"), f"{field}.labels")
        alertname = labels.get("alertname", "")
        if not alertname:
            raise PayloadError(f"{field}.labels.alertname", "required")
        severity = severity_of(labels)
        own = bool(labels.get(ORIGIN_LABEL))
        # llmcost's own alert, pushed by it and routed back here: drop the labels added for routing, so
        # it keeps the fingerprint the scheduler gave it and stays one alert, notified once.
        mine = returning_labels(labels, external_labels or {})
        annotations = _string_map(item.get("annotations", {}), f"{field}.annotations")
        starts_at = _time(item.get("startsAt"), f"{field}.startsAt", required=True)
        _time(item.get("endsAt"), f"{field}.endsAt", required=False)
        generator_url = item.get("generatorURL", "")
        if not isinstance(generator_url, str):
            raise PayloadError(f"{field}.generatorURL", "must be a string")
        if "\x00" in generator_url:
            raise PayloadError(f"{field}.generatorURL", NUL_MESSAGE)
        if mine is None:
            others += 1  # validated like the rest (a bad payload is refused whole), then left to its own gateway
            continue
        labels = mine
        parsed.append(
            WebhookAlert(
                status,
                AlertInput(
                    alertname=alertname,
                    labels=labels,
                    severity=severity,
                    annotations=annotations,
                    source="alertmanager",
                    starts_at=starts_at,
                    generator_url=generator_url,
                    group_key=group_key,
                    truncated_alerts=truncated,
                ),
                own,
            )
        )
    # Sorted by fingerprint: transactions touching the same alerts lock them in one order (no deadlocks).
    parsed.sort(key=lambda w: (w.alert.fingerprint, w.status))
    acted_on = {
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "alerts": [
            [w.status, w.alert.labels, w.alert.annotations, w.alert.starts_at, w.alert.generator_url] for w in parsed
        ],
    }
    digest = hashlib.sha256(dumps(acted_on).encode()).hexdigest()
    return Webhook(digest, group_key, parsed, truncated, others)
