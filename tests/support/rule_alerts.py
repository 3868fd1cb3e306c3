"""A Prometheus rule alert posted to a real Alertmanager the way Prometheus's notifier posts it."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

import httpx


class RuleEvaluator:
    """Posts one alert to Alertmanager the way Prometheus's notifier does, until stopped.

    While firing: at once, then every `interval` seconds, `endsAt` four intervals ahead (Prometheus: 4 x resend delay).
    Once resolved: re-sent with `endsAt` = the resolve time (Prometheus keeps sending it for 15 minutes).
    """

    def __init__(self, url: str, labels: dict[str, str], interval: float = 1.0) -> None:
        self.url = url
        self.labels = labels
        self.interval = interval
        self.starts_at = datetime.now(UTC)
        self.ends_at: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rule-evaluator", daemon=True)

    def start(self) -> RuleEvaluator:
        self._thread.start()
        return self

    def resolve(self) -> None:
        self.ends_at = datetime.now(UTC)
        self._post()

    def stop(self) -> None:
        """Stop posting (a no-op when never started, or already stopped)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5)

    def _post(self) -> None:
        ends_at = self.ends_at or datetime.now(UTC) + timedelta(seconds=4 * self.interval)
        alert = {
            "labels": self.labels,
            "annotations": {"summary": "No usage ingested for 15 minutes"},
            "startsAt": self.starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "generatorURL": "http://prometheus.test:9090/graph?g0.expr=llm_ingest",
        }
        # Alertmanager down: Prometheus too just tries again at the next evaluation.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=2)

    def _run(self) -> None:
        # Prometheus sends an alert at the evaluation that finds it firing, then every interval.
        self._post()
        while not self._stop.wait(self.interval):
            self._post()
