"""The bundled real trace sent to llmcost's `POST /v1/usage`: its last hour, then again in real time."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import orjson

from exporter.demo import load_trace, make_events, trace_span


class TraceFeed:
    """Sends the bundled trace to llmcost's `POST /v1/usage`: its last hour (in two parts), then in real time."""

    def __init__(self, llmcost: str, *, headers: Mapping[str, str] | None = None) -> None:
        self.url = f"{llmcost}/v1/usage"
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.trace = load_trace()
        # The trace's calls ending now (loop 0 of the demo's seeded mix).
        self.history = list(make_events(self.trace, start=time.time() - trace_span(self.trace), loop=0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._replay, name="trace-feed", daemon=True)

    def history_parts(self, first_seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The history split after its first `first_seconds`."""
        cut = self.history[0]["timestamp"] + first_seconds
        return [e for e in self.history if e["timestamp"] < cut], [e for e in self.history if e["timestamp"] >= cut]

    def post(self, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Send events; the response body (raises on an HTTP error)."""
        response = httpx.post(self.url, content=orjson.dumps(list(events)), headers=self.headers, timeout=60)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def start(self) -> None:
        """Replay the trace again in real time, in a background thread, until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the replay and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _replay(self) -> None:
        loop = 1
        while not self._stop.is_set():
            pending = list(make_events(self.trace, start=time.time(), loop=loop))
            position = 0
            while position < len(pending) and not self._stop.wait(0.5):
                due = time.time()
                batch = []
                while position < len(pending) and pending[position]["timestamp"] <= due:
                    batch.append(pending[position])
                    position += 1
                if batch:
                    try:
                        self.post(batch)
                    except httpx.HTTPError as exc:  # llmcost stopping or busy: the replay is best effort
                        print(f"trace replay: {exc}", file=sys.stderr)
            loop += 1
