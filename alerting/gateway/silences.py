"""Optional: silence acknowledged Alertmanager alerts in Alertmanager until they are unacknowledged or resolve.

Enabled by `alerting.alertmanager.silence_on_ack`. It runs as the outbox channel `alertmanager`, so a silence
is requested in the acknowledging transaction and created, retried and expired in order like any
notification; the reference stored for the channel is `{"silence_id": …}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from alerting.budgets.definition import SEVERITY_FOR_ALERT
from alerting.gateway.dedup import severity_rank
from alerting.installation import raised_by_llmcost
from alerting.model import (
    ESCALATING_ALERTS,
    PUSHED_ONLY_LABELS,
    DeliveryResult,
    Notification,
    NotificationKind,
    alert_family,
    level_rank,
)
from alerting.notify.base import one_line, parse_retry_after, redact

CHANNEL = "alertmanager"


def held_levels(alertname: str, severity: str) -> list[str]:
    """The levels of `alertname`'s escalating family that an acknowledgement at this level holds for.

    Mirrors the dedup stage (`alerting.gateway.dedup.decide`): an acknowledgement holds for the levels of
    its severity and below; a rise to a higher severity re-opens the alert (which must reach llmcost
    through Alertmanager to notify). So an ack at a critical level holds for every level, one at
    warning for info and warning. A level whose severity is unknown is held only up to the acknowledged
    one. Lowest level first.
    """
    family = alert_family(alertname)
    if family is None:
        return [alertname]
    rank = level_rank(alertname)
    held = []
    for level in ESCALATING_ALERTS[family]:
        level_severity = SEVERITY_FOR_ALERT.get(level)
        if level_rank(level) <= rank or (
            level_severity is not None and severity_rank(level_severity) <= severity_rank(severity)
        ):
            held.append(level)
    return held


def matchers(notification: Notification, external_labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The matchers of the silence for an acknowledged alert: exactly what the acknowledgement holds for.

    Most alerts: equality matchers on the alert's name and every label, so the silence covers exactly
    this alert. A level of an escalating family (a budget's `LLMBudgetWarning` … `LLMBudgetExceeded`) is
    one alert in llmcost whatever its level, so the silence covers the family: a regex on the levels the
    acknowledgement holds for (`held_levels`) and equality on the identifying labels (`budget`, `scope`,
    `key`), leaving out the routing-only labels such as `severity`, which differ per level.

    llmcost's own alerts also match this installation's `external_labels`: without them, acknowledging
    a budget here silenced the budget of the same name of every installation sharing the Alertmanager.
    """
    alert = notification.alert
    external = dict(external_labels or {}) if raised_by_llmcost(alert.alertname) else {}
    if alert_family(alert.alertname) is None:
        labels = {**alert.labels, **external, "alertname": alert.alertname}
        return [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(labels.items())]
    identity = {k: v for k, v in alert.labels.items() if k not in PUSHED_ONLY_LABELS and k != "alertname"}
    identity.update(external)
    found = [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in identity.items()]
    # Alert names are identifiers ([A-Za-z_][A-Za-z0-9_]*): nothing to escape in the alternation.
    levels = "|".join(held_levels(alert.alertname, alert.severity))
    found.append({"name": "alertname", "value": levels, "isRegex": True, "isEqual": True})
    return sorted(found, key=lambda m: str(m["name"]))


class AlertmanagerSilencer:
    """Creates and expires silences through Alertmanager's API v2, on the first replica that answers.

    Replicas in a cluster share their silences by gossip, so one replica is enough; trying the next when
    one does not answer keeps acknowledgements silencing (and unacknowledgements expiring) while a
    replica is down, instead of retrying the one that is down until the notification is dead-lettered.
    """

    channel = CHANNEL

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        duration: float,
        timeout: float = 10.0,
        external_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._bases = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        self._external = dict(external_labels or {})
        self._duration = duration
        self._client = httpx.Client(timeout=timeout)

    def send(self, notification: Notification) -> DeliveryResult:
        """Create a silence for an ack; expire the stored one for an unack or resolve; skip anything else."""
        silence_id = (notification.reference or {}).get("silence_id")
        if notification.kind is NotificationKind.ACKNOWLEDGED:
            now = datetime.now(UTC)
            actor = notification.actor
            body = {
                "matchers": matchers(notification, self._external),
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(seconds=self._duration)).isoformat(),
                "createdBy": f"llmcost ({actor.by})" if actor and actor.by else "llmcost",
                "comment": f"Acknowledged in llmcost (alert {notification.alert.id})"
                + (f": {actor.comment}" if actor and actor.comment else ""),
            }
            return self._on_replicas("POST", "/api/v2/silences", body, created=True)
        if notification.kind in (NotificationKind.UNACKNOWLEDGED, NotificationKind.RESOLVED):
            if not isinstance(silence_id, str) or not silence_id:
                return DeliveryResult.skip()
            return self._on_replicas("DELETE", f"/api/v2/silence/{silence_id}", None, created=False)
        return DeliveryResult.skip()

    def _on_replicas(self, method: str, path: str, body: Any, *, created: bool) -> DeliveryResult:
        """The first replica's answer that settles it; a retry only when none could.

        A replica that does not answer (or answers 5xx/429) passes the request on to the next. So does a
        404 to an expiry: the silence may be known only to another replica (not clustered, or not yet
        gossiped); it is gone once every replica said so.
        """
        results = []
        for base in self._bases:
            result, not_found = self._call(base, method, path, body, created=created)
            if not result.retryable and not not_found:
                return result
            results.append((result, not_found))
        if all(not_found for _, not_found in results):  # known to no replica: already expired or deleted
            return DeliveryResult.sent({"silence_id": None})
        retries = [result for result, not_found in results if not not_found]
        waits = [r.retry_after for r in retries if r.retry_after is not None]
        error = "; ".join(r.error for r in retries if r.error)
        return DeliveryResult.retry(error, retry_after=min(waits) if waits else None)

    def _call(self, base: str, method: str, path: str, body: Any, *, created: bool) -> tuple[DeliveryResult, bool]:
        """One replica's answer, and whether it was a 404 to an expiry."""
        try:
            response = self._client.request(method, base + path, json=body)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            return DeliveryResult.fail(self._redact(f"alertmanager {method}: bad url: {error}")), False
        except httpx.TransportError as error:
            return DeliveryResult.retry(self._redact(f"alertmanager {method}: {type(error).__name__}: {error}")), False
        status = response.status_code
        if not created and status == 404:  # already expired or deleted (here)
            return DeliveryResult.sent({"silence_id": None}), True
        if 200 <= status < 300:
            if not created:
                return DeliveryResult.sent({"silence_id": None}), False
            try:
                silence_id = response.json().get("silenceID")
            except (ValueError, AttributeError):
                silence_id = None
            if not isinstance(silence_id, str) or not silence_id:
                return DeliveryResult.fail("alertmanager: no silenceID in the answer"), False
            return DeliveryResult.sent({"silence_id": silence_id}), False
        text = self._redact(f"alertmanager {method}: HTTP {status}: {one_line(response.text, 200)}")
        if status == 429:
            return DeliveryResult.retry(text, retry_after=parse_retry_after(response.headers)), False
        if status >= 500:
            return DeliveryResult.retry(text), False
        return DeliveryResult.fail(text), False

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def _redact(self, text: str) -> str:
        return redact(text, self._bases)
