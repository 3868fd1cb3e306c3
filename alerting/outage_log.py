"""Calm logging of a store outage for the scheduler's jobs: one line when it starts, one when it ends.

A database restart makes every scheduled run fail to reach the store until it is back; a traceback per job
per tick buries the one fact an operator needs (the store is down, since when) under thousands of lines.
Here each job logs one warning without a traceback when it first cannot reach the store (its name and the
error's class and first line, the store URL's password redacted), a reminder every `remind_seconds` while
the store stays down, and one line when it reaches the store again. Only `StoreUnavailable` goes through
here: any other exception is a bug and keeps its traceback at the caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from alerting.notify.base import redact
from exporter.store import StoreUnavailable

REMIND_SECONDS = 300.0
"""While the store stays down, each job repeats its warning this often (seconds)."""


@dataclass
class _Outage:
    since: float
    reminded_at: float


def describe(error: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """`driver.Class: first line of its message` for a store error, with `secrets` and credentials redacted.

    The driver's exception (e.g. `psycopg.OperationalError`) says more than the `StoreUnavailable` wrapping
    it, and its message's first line is the useful one (libpq adds a hint on the next).
    """
    cause = error.__cause__ if isinstance(error, StoreUnavailable) and error.__cause__ is not None else error
    cause = getattr(cause, "orig", None) or cause  # SQLAlchemy's DBAPIError wraps the driver's exception
    kind = type(cause)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    lines = str(cause).strip().splitlines()
    return f"{name}: {redact(lines[0] if lines else '', secrets)}"


class OutageLog:
    """Per job: whether its last attempt reached the store, logged only when that changes (and reminders)."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        secrets: Iterable[str | None] = (),
        remind_seconds: float = REMIND_SECONDS,
        subject: str = "scheduler job",
    ) -> None:
        """`subject` names what the keys are in the lines (`scheduler job budgets`, `outbox worker slack`)."""
        self._log = log
        self._subject = subject
        self._secrets = tuple(s for s in secrets if s)
        self.remind_seconds = remind_seconds
        self._outages: dict[str, _Outage] = {}
        self._lock = threading.Lock()  # jobs run on APScheduler's worker threads

    def unreachable(self, job: str, error: StoreUnavailable, now: float) -> None:
        """Record that `job` could not reach the store at `now`: a warning on the first time, then reminders."""
        with self._lock:
            outage = self._outages.get(job)
            first = outage is None
            if outage is None:
                outage = self._outages[job] = _Outage(since=now, reminded_at=now)
            elif now - outage.reminded_at >= self.remind_seconds:
                outage.reminded_at = now
            else:
                return
        if first:
            self._log.warning(
                "%s %s: store unreachable (%s); skipping its runs until it answers",
                self._subject,
                job,
                describe(error, self._secrets),
            )
        else:
            self._log.warning(
                "%s %s: store still unreachable after %.0f s (%s)",
                self._subject,
                job,
                now - outage.since,
                describe(error, self._secrets),
            )

    def reachable(self, job: str, now: float) -> None:
        """Record that `job` reached the store at `now`; logs once if it could not before."""
        with self._lock:
            outage = self._outages.pop(job, None)
        if outage is not None:
            since = max(0.0, now - outage.since)
            self._log.info("%s %s: store reachable again after %.0f s", self._subject, job, since)
