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

Silences made in Alertmanager by people (`amtool silence add`, the UI) hold back its notifications the
same way, and so do its inhibit rules (a critical alert muting the warnings about the same thing): a
firing alert the gateway received would be reminded of every `repeat_interval` and listed as firing for
good. So `SilenceWatch.follow` also asks (with the same spacing, whenever an Alertmanager url is known)
which alerts Alertmanager holds silenced or inhibited (`GET /api/v2/alerts?active=false&silenced=true&
inhibited=true`, one request), reads the silence of each newly silenced one (`GET /api/v2/silence/{id}`:
who, comment, end) and, for a newly inhibited one, the alert inhibiting it (one listing of every alert).
The gateway marks those alerts held (the same mark for both, `alerts.silence_id`, an inhibition's id
starting with `inhibited:`: no reminders; shown with who, comment and end, or the inhibiting alert). One
that is no longer held is asked about alone: still held by Alertmanager, it is firing again (reminders
resume); gone for `resolve_after`, it ended while held and is resolved, as above. Every request is a
read: silences made by people are never changed.

With several Alertmanager replicas (the top-level `alertmanager.urls`), every one is asked and the answers
joined: an alert is silenced when any replica holds it silenced, and present when any holds it. A silence
made on one replica reaches the others only by gossip, which a replica that is down never hears. A replica
that does not answer is left out (logged once); only when none answers is Alertmanager unavailable.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection

from alerting.gateway.records import loads, parse_rfc3339
from alerting.gateway.silences import CHANNEL
from alerting.gateway.tables import alert_channels, alerts
from alerting.installation import returning_labels
from alerting.model import (
    ESCALATING_ALERTS,
    INHIBITION_PREFIX,
    PUSHED_ONLY_LABELS,
    Silence,
    alert_family,
    fingerprint,
)
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
    silence_id: str | None = None
    """For a firing alert (`firing_received`): the Alertmanager silence (or inhibition) it is marked held by."""


@dataclass
class Followed:
    """What one `SilenceWatch.follow` check found about the firing alerts received from Alertmanager."""

    silenced: list[tuple[int, Silence]] = field(default_factory=list)
    """Alerts a silence or an inhibition (another one than marked, if any) now holds."""
    unsilenced: list[int] = field(default_factory=list)
    """Alerts marked held that Alertmanager holds neither silenced nor inhibited now."""
    ended: list[int] = field(default_factory=list)
    """Alerts marked held that have been gone from Alertmanager for `resolve_after`."""


def firing_received(conn: Connection, limit: int = MAX_CHECKED) -> list[SilencedAlert]:
    """The firing alerts received from Alertmanager, oldest first, with the silence each is marked held by."""
    rows = conn.execute(
        select(alerts.c.id, alerts.c.fingerprint, alerts.c.alertname, alerts.c.labels, alerts.c.silence_id)
        .where(alerts.c.state == "firing", alerts.c.source == "alertmanager")
        .order_by(alerts.c.id)
        .limit(limit)
    ).all()
    return [
        SilencedAlert(int(r.id), r.fingerprint, r.alertname, dict(loads(r.labels)), r.silence_id or None) for r in rows
    ]


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


def gateway_fingerprint(labels: Mapping[str, str], external_labels: Mapping[str, str] | None = None) -> str | None:
    """The fingerprint the gateway gives an alert Alertmanager lists (as `parse_webhook` would).

    None for an alert another llmcost installation pushed (`alerting.installation`): it is none of this one's.
    """
    mine = returning_labels(labels, external_labels or {})
    if mine is None:
        return None
    return fingerprint(mine.get("alertname", ""), {k: v for k, v in mine.items() if k != "alertname"})


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


class _Refused(Exception):
    """Alertmanager refused one question (a 4xx other than 429)."""


class SilenceWatch:
    """Finds acknowledged, silenced alerts that have ended in Alertmanager; `ended` runs one check."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        resolve_after: float,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        external_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._bases = [url.rstrip("/") for url in urls]
        self._external = dict(external_labels or {})
        self.resolve_after = resolve_after
        self.spacing = min(MAX_SPACING, resolve_after / 5)
        self.max_gap = resolve_after / 2
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._lock = threading.Lock()
        self._absent_since: dict[int, float] = {}
        self._last_check: float | None = None
        self._unavailable = False
        self._refused: set[int] = set()  # alerts whose query Alertmanager refused, logged once each
        self._followed_at: float | None = None
        self._gone_since: dict[int, float] = {}  # silenced firing alerts absent from Alertmanager
        self._follow_unavailable = False
        self._down: set[str] = set()  # replicas that did not answer at their last question, logged once
        self._silence_sources: dict[str, str] = {}  # silence (or inhibition) id -> the replica listing it first
        self._listed: dict[str, Any] | None = None  # every alert's labels by Alertmanager fingerprint, per check

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

    def follow(self, candidates: Callable[[], Sequence[SilencedAlert]], now: float) -> Followed:
        """Check now (unless the last check was under `spacing` ago) which firing alerts are silenced or inhibited.

        `candidates` reads the firing alerts received from Alertmanager (`firing_received`).
        """
        with self._lock:
            last, self._followed_at = self._followed_at, now
            if last is not None and now - last < self.spacing:
                self._followed_at = last
                return Followed()
            if last is None or now - last > self.max_gap:
                self._gone_since.clear()
            firing = candidates()
            live = {a.id for a in firing}
            for alert_id in [i for i in self._gone_since if i not in live]:
                del self._gone_since[alert_id]
            try:
                found = self._follow(firing, now) if firing else Followed()
            except AlertmanagerUnavailable as exc:
                self._gone_since.clear()
                if not self._follow_unavailable:
                    log.warning("cannot ask Alertmanager which alerts are silenced (will retry): %s", exc)
                self._follow_unavailable = True
                return Followed()
            if self._follow_unavailable:
                log.info("Alertmanager answers again: following its silences")
                self._follow_unavailable = False
            return found

    def _follow(self, firing: Sequence[SilencedAlert], now: float) -> Followed:
        held = self._silenced_now()
        self._listed = None
        found = Followed()
        for alert in firing:
            # An inhibition holds only the level the alert is at: an earlier level of an escalating family
            # that Alertmanager still holds is inhibited by the alert's own later level, typically.
            hold_ids = [
                hold_id
                for hold_id, listed_as in held.get(alert.fingerprint, ())
                if listed_as == alert.alertname or not hold_id.startswith(INHIBITION_PREFIX)
            ]
            if hold_ids:
                self._gone_since.pop(alert.id, None)
                if alert.silence_id not in hold_ids:
                    found.silenced.append((alert.id, self._hold(hold_ids[0])))
                continue
            if alert.silence_id is None:
                continue
            present = self._present(alert)
            if present is None:
                continue
            if present:
                self._gone_since.pop(alert.id, None)
                found.unsilenced.append(alert.id)
                continue
            since = self._gone_since.setdefault(alert.id, now)
            if now - since >= self.resolve_after:
                found.ended.append(alert.id)
        return found

    def _silenced_now(self) -> dict[str, list[tuple[str, str]]]:
        """What holds each alert any replica holds silenced or inhibited, by gateway fingerprint.

        The ids of the silences holding it (sorted), then those of its inhibitions (`inhibited:` + the
        Alertmanager fingerprint of each alert inhibiting it, sorted), each with the name the alert held
        is listed under (a level of an escalating family, say): a silence says more (who, why, until
        when), so it is the one shown when both hold an alert. Every replica is asked and the
        answers joined: a silence made on one replica reaches the others only through the cluster's
        gossip, which a replica that is down (or not clustered) never hears. Raises
        `AlertmanagerUnavailable` only when no replica answers.
        """
        params = {"active": "false", "silenced": "true", "inhibited": "true", "unprocessed": "false"}
        silences: dict[str, set[tuple[str, str]]] = {}
        inhibitions: dict[str, set[tuple[str, str]]] = {}
        self._silence_sources = {}
        problems = []
        for base in self._bases:
            try:
                listed = self._get_json(base, "/api/v2/alerts", params)
                if not isinstance(listed, list):
                    raise AlertmanagerUnavailable("the answer is not a list of alerts")
            except _Refused as refused:
                problems.append(self._replica_down(base, f"the alerts query was refused: {refused}"))
                continue
            except AlertmanagerUnavailable as exc:
                problems.append(self._replica_down(base, str(exc)))
                continue
            self._replica_up(base)
            for item in listed:
                if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
                    continue
                status = item.get("status")
                key = gateway_fingerprint(item["labels"], self._external)
                name = str(item["labels"].get("alertname", ""))
                if key is None:
                    continue  # another installation's alert: its silences and inhibitions hold none of ours
                for field_name, prefix, into in (
                    ("silencedBy", "", silences),
                    ("inhibitedBy", INHIBITION_PREFIX, inhibitions),
                ):
                    by = status.get(field_name) if isinstance(status, dict) else None
                    ids = [prefix + i for i in by if isinstance(i, str) and i] if isinstance(by, list) else []
                    into.setdefault(key, set()).update((hold_id, name) for hold_id in ids)
                    for hold_id in ids:
                        self._silence_sources.setdefault(hold_id, base)
        if len(problems) == len(self._bases):
            raise AlertmanagerUnavailable("; ".join(problems))
        held = {key: sorted(silences.get(key, ())) + sorted(inhibitions.get(key, ())) for key in silences | inhibitions}
        return {key: ids for key, ids in held.items() if ids}

    def _hold(self, hold_id: str) -> Silence:
        """The silence or the inhibition `hold_id` names (see `_silenced_now`)."""
        return self._inhibition(hold_id) if hold_id.startswith(INHIBITION_PREFIX) else self._silence(hold_id)

    def _inhibition(self, hold_id: str) -> Silence:
        """The inhibition `hold_id` names, described by the alert inhibiting: its name and labels.

        Alertmanager lists only that alert's fingerprint (`inhibitedBy`); its labels are read from the
        lists of every alert the replicas hold, asked for once per check and only when an alert is newly
        inhibited (the replica that listed the inhibition first, then the others: each hears from
        Prometheus on its own). Raises `AlertmanagerUnavailable` when no replica answers, so the check is
        retried rather than the alert marked with a bare fingerprint; an inhibiting alert no replica lists
        (it ended meanwhile) leaves its fingerprint as the description.
        """
        source_fp = hold_id[len(INHIBITION_PREFIX) :]
        first = self._silence_sources.get(hold_id, self._bases[0])
        if self._listed is None:
            self._listed = {}
            unavailable: list[str] = []
            params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
            for base in [first, *(b for b in self._bases if b != first)]:
                try:
                    listed = self._get_json(base, "/api/v2/alerts", params)
                except _Refused:
                    continue
                except AlertmanagerUnavailable as exc:
                    unavailable.append(f"{_replica_name(base)}: {exc}")
                    continue
                for item in listed if isinstance(listed, list) else ():
                    if isinstance(item, dict) and isinstance(item.get("labels"), dict):
                        self._listed.setdefault(str(item.get("fingerprint", "")), item["labels"])
            if len(unavailable) == len(self._bases):
                self._listed = None
                raise AlertmanagerUnavailable("; ".join(unavailable))
        labels = self._listed.get(source_fp)
        if labels is None:
            return Silence(hold_id[:128], "", f"inhibited in Alertmanager by the alert {source_fp}"[:2000])
        name = str(labels.get("alertname", ""))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
        return Silence(hold_id[:128], name[:256], f"inhibited by {name} {{{shown}}}"[:2000])

    def _silence(self, silence_id: str) -> Silence:
        """Who made the silence, why and until when; just its id when Alertmanager cannot say.

        Asked of the replica that listed the silence first (unclustered replicas each know only their own),
        then the others. Raises `AlertmanagerUnavailable` when none answers: the check is retried later
        rather than marking the alert with a bare id for good.
        """
        first = self._silence_sources.get(silence_id, self._bases[0])
        data = None
        unavailable: list[str] = []
        for base in [first, *(b for b in self._bases if b != first)]:
            try:
                data = self._get_json(base, f"/api/v2/silence/{silence_id}", {})
            except _Refused:  # expired and collected meanwhile, say
                continue
            except AlertmanagerUnavailable as exc:
                unavailable.append(f"{_replica_name(base)}: {exc}")
                continue
            break
        if len(unavailable) == len(self._bases):
            raise AlertmanagerUnavailable("; ".join(unavailable))
        if not isinstance(data, dict):
            return Silence(silence_id)
        ends_at = None
        if isinstance(data.get("endsAt"), str):
            try:
                ends_at = datetime.fromtimestamp(parse_rfc3339(data["endsAt"]), UTC)
            except ValueError:
                ends_at = None
        by, comment = data.get("createdBy"), data.get("comment")
        return Silence(
            silence_id,
            by[:256] if isinstance(by, str) else "",
            comment[:2000] if isinstance(comment, str) else "",
            ends_at,
        )

    def _get_json(self, base: str, path: str, params: Mapping[str, str]) -> Any:
        try:
            response = self._client.get(base + path, params=dict(params))
        except httpx.HTTPError as error:
            raise AlertmanagerUnavailable(self._redact(f"{type(error).__name__}: {error}")) from None
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise _Refused(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise AlertmanagerUnavailable(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerUnavailable("the answer is not JSON") from None

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
        """True when any replica holds this alert unresolved (active, silenced, inhibited or unprocessed).

        Every replica is asked: each hears of the alert from Prometheus on its own. None when a replica
        refuses the question about this one alert (a 4xx) and none holds it: unknown, so never absent.
        Raises `AlertmanagerUnavailable` only when no replica answers; otherwise the answers decide.
        """
        answers: list[bool | None] = []
        problems = []
        for base in self._bases:
            try:
                answers.append(self._present_at(base, alert))
            except AlertmanagerUnavailable as exc:
                problems.append(self._replica_down(base, str(exc)))
                continue
            self._replica_up(base)
            if answers[-1]:
                return True
        if not answers:
            raise AlertmanagerUnavailable("; ".join(problems))
        return None if None in answers else False

    def _present_at(self, base: str, alert: SilencedAlert) -> bool | None:
        """`_present` as one replica answers."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", "true"),
            ("silenced", "true"),
            ("inhibited", "true"),
            ("unprocessed", "true"),
            *(("filter", f) for f in alert_filter(alert)),
        ]
        try:
            response = self._client.get(base + "/api/v2/alerts", params=params)
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
            if isinstance(labels, dict) and gateway_fingerprint(labels, self._external) == alert.fingerprint:
                return True
        return False

    def _replica_down(self, base: str, problem: str) -> str:
        """Note that a replica did not answer (logged once while others do); the problem, naming it."""
        text = f"{_replica_name(base)}: {problem}"
        if len(self._bases) > 1 and base not in self._down:
            log.warning("Alertmanager %s does not answer; asking the other replicas", text)
        self._down.add(base)
        return text

    def _replica_up(self, base: str) -> None:
        if base in self._down:
            self._down.discard(base)
            if len(self._bases) > 1:
                log.info("Alertmanager %s answers again", _replica_name(base))

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def _redact(self, text: str) -> str:
        return redact(text, self._bases)


def _replica_name(base: str) -> str:
    """A replica's scheme, host and port: never the credentials its URL may hold."""
    parts = urlsplit(base)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"
