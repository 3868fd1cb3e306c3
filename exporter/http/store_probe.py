"""Whether the store answers at all: one trivial query in flight at a time, awaited with a deadline.

A database that hangs (paused, partitioned, its host gone without a FIN) keeps every connection open and
silent, so a query sent to it never returns and the thread running it is lost until the kernel gives the
socket up (up to ~15 minutes). Callers here share the one ping in flight instead of each starting its own,
and stop waiting for it after their own deadline: `/readyz` answers promptly, and a request waiting on a
slow commit can tell a database that is busy (the ping answers) from one that is not there (it does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from exporter.http.reserved_threads import ReservedThreads

ANSWER_WITHIN = 2.0
"""Seconds a slow commit's request waits for the store's answer: a live database answers `SELECT 1` in
milliseconds even while it writes a large batch, so silence this long means it is not answering."""


class StoreProbe:
    """Shares one `ping` (a blocking `() -> bool`, run on reserved threads) among concurrent callers."""

    def __init__(self, ping: Callable[[], bool], threads: ReservedThreads | None = None) -> None:
        self._ping_blocking = ping
        # Not the shared pool: requests stuck on a silent store may hold all of it (reserved_threads.py).
        self._threads = threads or ReservedThreads()
        self._in_flight: asyncio.Future[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0

    async def answers(self, timeout: float) -> bool | None:
        """True when the store answered, False when it refused (unreachable), None when silent past `timeout`."""
        loop = asyncio.get_running_loop()
        if self._in_flight is None or self._in_flight.done() or self._loop is not loop:
            self._in_flight = asyncio.ensure_future(self._threads.run(self._ping_blocking))
            self._loop = loop
            self._started = loop.time()
        try:
            # shield: a caller giving up does not cancel the ping the others (and the next caller) share.
            return await asyncio.wait_for(asyncio.shield(self._in_flight), timeout)
        except TimeoutError:
            return None

    async def answers_soon(self) -> bool | None:
        """`answers` within `ANSWER_WITHIN` seconds: what a request waiting on a slow commit asks."""
        return await self.answers(ANSWER_WITHIN)

    def known_silent(self) -> bool:
        """True while the ping in flight has gone unanswered for `ANSWER_WITHIN` seconds.

        It turns False once the ping returns (the database answers again), and is False when nobody has
        asked lately: only a request or a readiness probe left waiting starts a ping.
        """
        pinging = self._in_flight
        if pinging is None or pinging.done() or self._loop is not asyncio.get_running_loop():
            return False
        return self._loop.time() - self._started >= ANSWER_WITHIN
