"""Resolve acknowledged alerts that ended in Alertmanager while llmcost's own silence held them back.

With `alerting.alertmanager.silence_on_ack`, an acknowledged Alertmanager alert gets a silence matching
it (`alerting.gateway.silences`). Alertmanager delivers nothing about a silenced alert, its resolve
included: when the alert ends, the gateway would never hear of it, and the alert would stay acknowledged
(with its PagerDuty incident, its Slack message and the silence) for good. llmcost's own alerts are
resolved in the gateway directly (`alerting.push.sink`); the Prometheus rules' alerts are not.

So `GatewayService.tick` asks Alertmanager (`GET /api/v2/alerts`, silenced and inhibited included: every
alert it has not resolved) about each acknowledged alert that holds a silence created by llmcost. One that
is absent at every check over `resolve_after` (default 5 minutes) is resolved through the lifecycle
stage, as a resolved webhook would have: one resolve notification per channel, and the silence expired
by the outbox (`alertmanager` channel). The wait is there to never resolve an alert that still fires:

- Alertmanager keeps alerts in memory only; restarted, it knows none until Prometheus sends them again
  (every `--rules.alert.resend-delay`, 1 minute by default). The window spans several such re-sends.
- Checks more than half the window apart (a stalled process) do not prove the alert stayed away: the
  window starts again.
- Alertmanager unreachable, or answering with an error: nothing is resolved, every window starts
  again, and that is logged once (and once more when it answers again).

Each process that runs `tick` checks on its own, remembering absences in memory: a restarted process
waits a whole window again. Several processes sharing a store each decide from their own observations,
and the lifecycle's conditional update resolves the alert once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection

from alerting.gateway.records import loads
from alerting.gateway.silences import CHANNEL
from alerting.gateway.tables import alert_channels, alerts
from alerting.model import ESCALATING_ALERTS, ORIGIN_LABEL, PUSHED_ONLY_LABELS, alert_family, fingerprint
from alerting.notify.base import redact

log = logging.getLogger(__name__)

MAX_CHECKED = 500
"""Acknowledged, silenced alerts asked about per check at most (the oldest first)."""
MAX_SPACING = 15.0
"""Checks closer together than this (or a fifth of the window) are skipped: `tick` may run twice as often."""
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_.:/@ +-]{1,200}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,100}$")


@dataclass(frozen=True)
class SilencedAlert:
    """An acknowledged alert from Alertmanager that holds a silence llmcost created."""

    id: int
    fingerprint: str
    alertname: str
    labels: Mapping[str, str]


def silenced_acknowledged(conn: Connection, limit: int = MAX_CHECKED) -> list[SilencedAlert]:
    """The acknowledged Alertmanager alerts whose silence was created (its id is stored), oldest first."""
    rows = conn.execute(
        select(alerts.c.id, alerts.c.fingerprint, alerts.c.alertname, alerts.c.labels, alert_channels.c.reference)
        .join(alert_channels, (alert_channels.c.alert_id == alerts.c.id) & (alert_channels.c.channel == CHANNEL))
        .where(alerts.c.state == "acknowledged", alerts.c.source == "alertmanager")
        .order_by(alerts.c.id)
        .limit(limit)
    ).all()
    found = []
    for row in rows:
        reference = loads(row.reference)
        if isinstance(reference, dict) and reference.get("silence_id"):
            found.append(SilencedAlert(int(row.id), row.fingerprint, row.alertname, dict(loads(row.labels))))
    return found


def gateway_fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint the gateway gives an alert Alertmanager lists (as `parse_webhook` would)."""
    if labels.get(ORIGIN_LABEL):
        labels = {k: v for k, v in labels.items() if k not in PUSHED_ONLY_LABELS}
    return fingerprint(labels.get("alertname", ""), {k: v for k, v in labels.items() if k != "alertname"})


def alert_filter(alert: SilencedAlert) -> list[str]:
    """Alertmanager `filter` matchers narrowing the alerts listed to those that may be this one.

    The alert name (every level of an escalating family, since the alert may have moved to another) and
    the labels whose values need no escaping; the caller compares fingerprints, so this need not be exact.
    """
    family = alert_family(alert.alertname)
    names = ESCALATING_ALERTS[family] if family is not None else (alert.alertname,)
    found = [f'alertname=~"{"|".join(names)}"' if len(names) > 1 else f'alertname="{names[0]}"']
    for name, value in sorted(alert.labels.items()):
        if name in PUSHED_ONLY_LABELS or name == "alertname":
            continue  # absent from llmcost's pushed alerts as stored, present in Alertmanager
        if _LABEL_NAME.match(name) and _PLAIN_VALUE.match(value):
            found.append(f'{name}="{value}"')
    return found


class AlertmanagerUnavailable(Exception):
    """Alertmanager could not say which alerts it holds."""


class SilenceWatch:
    """Finds acknowledged, silenced alerts that have ended in Alertmanager; `ended` runs one check."""

    def __init__(
        self,
        url: str,
        *,
        resolve_after: float,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = url.rstrip("/")
        self.resolve_after = resolve_after
        self.spacing = min(MAX_SPACING, resolve_after / 5)
        self.max_gap = resolve_after / 2
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._lock = threading.Lock()
        self._absent_since: dict[int, float] = {}
        self._last_check: float | None = None
        self._unavailable = False
        self._refused: set[int] = set()  # alerts whose query Alertmanager refused, logged once each

    def ended(self, candidates: Callable[[], Sequence[SilencedAlert]], now: float) -> list[int]:
        """Check now (unless the last check was under `spacing` ago); ids of the alerts to resolve.

        `candidates` reads the alerts to ask about (`silenced_acknowledged`); it is only called when a
        check is due.
        """
        with self._lock:
            last, self._last_check = self._last_check, now
            if last is not None and now - last < self.spacing:
                self._last_check = last
                return []
            if last is None or now - last > self.max_gap:
                self._absent_since.clear()  # too long unobserved: absence so far proves nothing
            alerts_now = candidates()
            live = {a.id for a in alerts_now}
            for alert_id in [i for i in self._absent_since if i not in live]:
                del self._absent_since[alert_id]
            try:
                due = self._check(alerts_now, now)
            except AlertmanagerUnavailable as exc:
                self._absent_since.clear()
                if not self._unavailable:
                    log.warning("cannot ask Alertmanager whether silenced alerts ended (will retry): %s", exc)
                self._unavailable = True
                return []
            if self._unavailable:
                log.info("Alertmanager answers again: checking silenced alerts")
                self._unavailable = False
            return due

    def _check(self, candidates: Sequence[SilencedAlert], now: float) -> list[int]:
        due = []
        for alert in candidates:
            present = self._present(alert)
            if present is None or present:
                self._absent_since.pop(alert.id, None)
                continue
            since = self._absent_since.setdefault(alert.id, now)
            if now - since >= self.resolve_after:
                due.append(alert.id)
        return due

    def _present(self, alert: SilencedAlert) -> bool | None:
        """True when Alertmanager holds this alert unresolved (active, silenced, inhibited or unprocessed).

        None when it refuses the question about this one alert (a 4xx): unknown, so never absent.
        """
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", "true"),
            ("silenced", "true"),
            ("inhibited", "true"),
            ("unprocessed", "true"),
            *(("filter", f) for f in alert_filter(alert)),
        ]
        try:
            response = self._client.get(self._base + "/api/v2/alerts", params=params)
        except httpx.HTTPError as error:
            raise AlertmanagerUnavailable(self._redact(f"{type(error).__name__}: {error}")) from None
        if 400 <= response.status_code < 500 and response.status_code != 429:
            if alert.id not in self._refused:
                self._refused.add(alert.id)
                log.warning("Alertmanager refused the query about alert %s: HTTP %s", alert.id, response.status_code)
            return None
        if response.status_code != 200:
            raise AlertmanagerUnavailable(f"HTTP {response.status_code}")
        try:
            listed: Any = response.json()
        except ValueError:
            raise AlertmanagerUnavailable("the answer is not JSON") from None
        if not isinstance(listed, list):
            raise AlertmanagerUnavailable("the answer is not a list of alerts")
        for item in listed:
            labels = item.get("labels") if isinstance(item, dict) else None
            if isinstance(labels, dict) and gateway_fingerprint(labels) == alert.fingerprint:
                return True
        return False

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def _redact(self, text: str) -> str:
        return redact(text, [self._base])
