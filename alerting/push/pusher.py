"""Posting the rows of `alertmanager_alerts` to every Alertmanager replica (`POST /api/v2/alerts`).

As Prometheus does: every firing alert is re-sent each `resend_interval` with `endsAt` four intervals
(at least 3 minutes) ahead, so Alertmanager resolves it by itself if llmcost stops sending; a resolved
alert is sent with its `endsAt` for `resolved_resend` more; and every replica gets every alert
(replicas deduplicate among themselves when they notify). A replica that does not answer is retried a
few times with a short backoff and counted; it is never fatal: the next push brings it up to date.

Outcomes are persisted counters (`alertmanager.push.<outcome>.<replica id>`), exposed by
`PushCollector` as `llm_alertmanager_pushes_total{alertmanager, outcome}` from any process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import delete, or_, select

from alerting.gateway.records import loads, rfc3339
from alerting.model import ORIGIN_LABEL, SEVERITIES
from alerting.notify.base import one_line, redact
from alerting.push.settings import PushSettings, replica_id, shown_url
from alerting.push.tables import alertmanager_alerts
from exporter import metric_names
from exporter.store import Store

log = logging.getLogger(__name__)

OUTCOMES = ("sent", "retried", "failed")
COUNTER_PREFIX = "alertmanager.push."
ORIGIN_VALUE = "llmcost"
MIN_HORIZON_SECONDS = 180.0
"""`endsAt` of a firing alert is at least this far ahead: a push delayed by load must not let Alertmanager
resolve it (and stop it inhibiting lesser alerts of the same budget) between two pushes."""
KEEP_RESOLVED_SECONDS = 86400.0
"""Resolved rows are deleted this long after they stopped being re-sent."""
COALESCE_SECONDS = 0.2
"""After a wake, how long the loop waits for more changes before it pushes."""


def counter_name(outcome: str, url: str) -> str:
    """The persisted counter of one outcome for one replica."""
    return f"{COUNTER_PREFIX}{outcome}.{replica_id(url)}"


def alert_body(row: Any, now: float, settings: PushSettings) -> dict[str, Any]:
    """One alert of the v2 API from a row: pushed-only and external labels added, `endsAt` ahead while firing."""
    labels = {
        **loads(row.labels),
        **settings.external_labels,
        "alertname": row.alertname,
        "severity": row.severity,
        ORIGIN_LABEL: ORIGIN_VALUE,
    }
    horizon = max(4 * settings.resend_interval, MIN_HORIZON_SECONDS)
    ends_at = row.ends_at if row.ends_at is not None else now + horizon
    return {
        "labels": labels,
        "annotations": loads(row.annotations),
        "startsAt": rfc3339(row.starts_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": row.generator_url,
    }


def batches(alerts: list[tuple[bool, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """(resolved, body) pairs in requests that keep inhibition intact while they are applied one by one.

    Alertmanager flushes an alert that started longer than `group_wait` ago as soon as it hears of it,
    and its inhibitor learns of alerts concurrently. So the likely inhibition sources go first when
    firing (critical, then warning, then info: a replica that comes up must know the critical alert
    before the warning it inhibits) and last when resolved (a warning resolves before the critical alert
    that was inhibiting it, never after).
    """
    rank = {severity: i for i, severity in enumerate(SEVERITIES)}
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for resolved, body in alerts:
        level = rank.get(body["labels"].get("severity", ""), -1)
        key = (0, level) if resolved else (1, -level)
        groups.setdefault(key, []).append(body)
    return [groups[key] for key in sorted(groups)]


class Pusher:
    """Sends the current alerts to every replica; one push at a time per process."""

    def __init__(
        self,
        store: Store,
        settings: PushSettings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._client = httpx.Client(timeout=settings.timeout)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(settings.urls)), thread_name_prefix="llmcost-am-push")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait

    def alerts(self, now: float) -> list[tuple[bool, dict[str, Any]]]:
        """(resolved, v2 body) of every firing alert and of those resolved within `resolved_resend`."""
        t = alertmanager_alerts
        stmt = (
            select(t)
            .where(or_(t.c.ends_at.is_(None), t.c.ends_at >= now - self.settings.resolved_resend))
            .order_by(t.c.fingerprint)
        )
        with self.store.reading() as conn:
            rows = conn.execute(stmt).all()
        return [(row.ends_at is not None, alert_body(row, now, self.settings)) for row in rows]

    def push(self, now: float | None = None) -> dict[str, str]:
        """Post the current alerts to every replica; returns the outcome per replica URL (credentials left out)."""
        with self._lock:
            now = self.clock() if now is None else now
            body = batches(self.alerts(now))
            if not body:  # nothing firing or recently resolved: nothing to tell anyone
                self._purge_quietly(now)
                return {}
            # Each replica in its own thread: one that times out must not hold the others' alerts back.
            results = list(self._pool.map(lambda url: self._post(url, body), self.settings.urls))
            outcomes: dict[str, str] = {}
            counts: dict[str, float] = {}
            for url, (outcome, retried) in zip(self.settings.urls, results, strict=True):
                outcomes[self._shown(url)] = outcome
                counts[counter_name(outcome, url)] = 1
                if retried:
                    counts[counter_name("retried", url)] = retried
            try:
                self.store.add_counters(counts)
            except Exception:
                log.warning("could not record the Alertmanager push outcome", exc_info=True)
            self._purge_quietly(now)
            return outcomes

    def _post(self, url: str, body: list[list[dict[str, Any]]]) -> tuple[str, int]:
        """Post the batches in order: ("sent" | "failed", how many attempts were retried)."""
        attempts = 1 + self.settings.retries
        for attempt in range(attempts):
            problem = next(filter(None, (self._attempt(url, batch) for batch in body)), None)
            if problem is None:
                return "sent", attempt
            last = attempt == attempts - 1
            # A proxy's error page may quote the path it refused, and the path may be its token.
            problem = redact(problem, (url, urlsplit(url).path.strip("/")))
            log.warning(
                "Alertmanager %s: %s%s", self._shown(url), problem, "; giving up until the next push" if last else ""
            )
            if last or self._stopping.is_set():
                return "failed", attempt
            self._sleep(min(0.5 * 2**attempt, 5.0))
        return "failed", attempts - 1

    def _shown(self, url: str) -> str:
        return self.settings.replicas.get(replica_id(url)) or shown_url(url)

    def _attempt(self, url: str, body: list[dict[str, Any]]) -> str | None:
        try:
            response = self._client.post(f"{url}/api/v2/alerts", json=body)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {one_line(response.text, 200)}"

    def _purge_quietly(self, now: float) -> None:
        t = alertmanager_alerts
        cutoff = now - self.settings.resolved_resend - KEEP_RESOLVED_SECONDS
        try:
            with self.store.transaction() as conn:
                conn.execute(delete(t).where(t.c.ends_at.is_not(None), t.c.ends_at < cutoff))
        except Exception:
            log.warning("could not delete old resolved Alertmanager alerts; next push tries again", exc_info=True)

    def close(self) -> None:
        """Stop any backoff wait and release the connections."""
        self._stopping.set()
        with self._lock:
            self._pool.shutdown(wait=True)
            self._client.close()


class PushLoop:
    """Pushes on a daemon thread as soon as it is woken (an alert changed); re-sending is the scheduler's."""

    def __init__(self, pusher: Pusher) -> None:
        self._pusher = pusher
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmcost-alertmanager-push", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Push as soon as possible."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the push in flight."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            # The changes of one evaluation (a budget's alerts resolving one after another) come in a
            # burst: push them together, not a state in between.
            self._stop.wait(COALESCE_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._pusher.push()
            except Exception:
                log.exception("pushing alerts to Alertmanager failed; will try again")


class PushCollector(Collector):
    """`llm_alertmanager_pushes_total{alertmanager, outcome}`, read from the store at scrape time."""

    def __init__(self, store: Store, settings: PushSettings) -> None:
        self._store = store
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        """Every configured replica with every outcome (0 before the first push), plus stored ones."""
        spec = metric_names.ALERTMANAGER_PUSHES
        values = {(url, o): 0.0 for url in self._settings.replicas.values() for o in OUTCOMES}
        for name, value in self._store.counters().items():
            if name.startswith(COUNTER_PREFIX):
                outcome, _, rid = name[len(COUNTER_PREFIX) :].partition(".")
                values[(self._settings.replicas.get(rid, rid), outcome)] = value
        family = CounterMetricFamily(spec.family_name, spec.help, labels=list(spec.labels))
        for (url, outcome), value in sorted(values.items()):
            family.add_metric([url, outcome], value)
        yield family
