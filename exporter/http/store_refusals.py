"""The log of the requests a store outage refuses: one warning when it starts, one line when it ends.

While PostgreSQL restarts, every request that needs the store is answered `503` with `Retry-After`, and
clients retry every few seconds: a warning per refused request wrote thousands of identical lines a
minute and never said when the outage ended.

One instance per process (exporter/http/app.py) takes the refusals of every path that logs them: ingest,
OTLP, the application's handler of `StoreUnavailable` (the gateway's webhooks and alerts API), and the
requests a hung store left unanswered (bounded_requests.py). One outage is one warning, whichever paths
clients retry on. The first refusal logs it (the store's error, or what the hung store did instead),
a reminder every `remind_seconds` counts the refusals while the store stays down, and the first request
the store answers again logs one line with how long it was down and how many requests were refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

REMIND_SECONDS = 300.0
"""While the store stays down, the warning is repeated this often (seconds), with the refusals so far."""


class StoreRefusals:
    """One process's refusals for want of the store, logged when an outage starts and ends (and reminders)."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        remind_seconds: float = REMIND_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._clock = clock
        self.remind_seconds = remind_seconds
        self._lock = threading.Lock()  # refusals are counted on the event loop and on worker threads
        self._since: float | None = None  # None: the store answered the last request that needed it
        self._reminded_at = 0.0
        self._refused = 0

    def refused(self, error: BaseException | str) -> None:
        """A request was answered 503 because of `error`: logged if it is the outage's first, or a reminder is due.

        `error` is the store's, or a text saying what was seen of the store instead (a hung one's silence).
        """
        now = self._clock()
        with self._lock:
            self._refused += 1
            if self._since is None:
                self._since = self._reminded_at = now
                first = True
            elif now - self._reminded_at >= self.remind_seconds:
                self._reminded_at = now
                first = False
            else:
                return
            since, refused = self._since, self._refused
        reason = _first_line(error)
        if first:
            self._log.warning("store unavailable: %s; answering 503 with Retry-After until it answers", reason)
        else:
            self._log.warning(
                "store still unavailable after %.0f s: %d requests answered 503 so far (%s)",
                now - since,
                refused,
                reason,
            )

    def answered(self) -> None:
        """The store answered a request: logs the end of the outage, if there was one (cheap otherwise)."""
        if self._since is None:  # the usual case, read without the lock
            return
        now = self._clock()
        with self._lock:
            since, refused = self._since, self._refused
            if since is None:
                return
            self._since = None
            self._refused = 0
        self._log.info(
            "store answers again after %.0f s; %d requests were answered 503 meanwhile", max(0.0, now - since), refused
        )


def _first_line(error: BaseException | str) -> str:
    # libpq adds a hint on the next lines ("Is the server running on that host…"): the first says it.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
