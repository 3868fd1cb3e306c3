"""Delivery workers: one thread per channel, so one channel's outage never delays another.

Each worker claims due rows of its channel (several at once, at most one per alert) and sends them
concurrently on a small pool; it sleeps until woken by a local enqueue, until the next retry is due,
or for `poll_interval` (rows written by other processes). Store outages are waited out, not fatal, and
logged calmly (`alerting.outage_log`: one warning when the store stops answering, one line when it is back).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from alerting.gateway.outbox import Claimed, Outbox
from alerting.model import DeliveryResult
from alerting.notify import Notifier
from alerting.outage_log import OutageLog
from exporter.redaction import url_secrets
from exporter.store import StoreUnavailable

log = logging.getLogger(__name__)

LINGER_SECONDS = 0.005
"""How long a worker waits for more sends to finish before recording a finished one (under load only)."""


class ChannelWorker:
    """Delivers the outbox rows of one channel until stopped, up to `concurrency` at a time.

    A dispatcher thread claims as many due rows as there are free slots and hands each to the pool, which
    sends it; each round, the dispatcher records the finished sends and claims again in one transaction
    (cheap under load). One slow message never holds back the others (only later messages about the same alert
    wait, to keep their order).
    """

    def __init__(
        self,
        outbox: Outbox,
        channel: str,
        notifier: Notifier,
        *,
        concurrency: int,
        poll_interval: float,
        max_per_minute: int = 0,
    ) -> None:
        self.outbox = outbox
        self.max_per_minute = max_per_minute
        self._sent_at: deque[float] = deque()  # monotonic times of this minute's messages (rate limit)
        self.channel = channel
        self.notifier = notifier
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._done: deque[tuple[Claimed, DeliveryResult]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"llmcost-{channel}")
        # A database restart fails every poll until it is back: one line then, not a traceback a poll.
        self._outages = OutageLog(log, secrets=url_secrets(outbox.store.url), subject="outbox worker")
        self._down = False
        self._leave_others_until = 0.0
        """Monotonic time until which rows other senders claimed before an outage are left to them."""
        self._thread = threading.Thread(target=self._run, name=f"llmcost-outbox-{channel}", daemon=True)

    def start(self) -> None:
        """Start the dispatcher thread."""
        self._thread.start()

    def wake(self) -> None:
        """Look for due rows now."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; deliveries in flight finish (bounded by the notifier's timeouts) and are recorded."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self._settle_and_claim(claim=False)
        except Exception:
            log.exception(
                "outbox worker %s: results not recorded; the rows are retried after their lease", self.channel
            )

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                free, claimed = self._settle_and_claim()
                failures = 0
                self._outages.reachable(self.channel, time.monotonic())
                if self._down:
                    # Senders in other processes may hold results they could not record during the outage,
                    # their leases run out meanwhile: one lease for them to record before their rows are
                    # taken as a crashed sender's (and sent again).
                    self._down = False
                    self._leave_others_until = time.monotonic() + self.outbox.settings.lease
            except StoreUnavailable as error:
                failures += 1
                self._down = True
                self._outages.unreachable(self.channel, error, time.monotonic())
                self._stop.wait(self._retry_wait(failures))
                continue
            except Exception:
                failures += 1
                self._down = True
                log.exception("outbox worker %s: store error; retrying", self.channel)
                self._stop.wait(self._retry_wait(failures))
                continue
            for item in claimed:
                with self._lock:
                    self._in_flight += 1
                self._pool.submit(self._send, item)
            if free > 0 and len(claimed) == free:
                continue  # more rows may be due for the slots that free up
            with self._lock:
                in_flight = self._in_flight
            try:
                # While sends are in flight, each one that finishes wakes us: no need to ask the store.
                sleep = self._sleep_for() if free > 0 and not in_flight else self.poll_interval
            except Exception:
                sleep = self.poll_interval
            self._wake.wait(sleep)  # a finished send, a local enqueue or the next due row wakes us
            self._linger()

    def _retry_wait(self, failures: int) -> float:
        """Seconds before trying the store again: doubling, at most 30 s and half a lease.

        Half a lease, so a worker holding results records them before its peers stop leaving its rows alone.
        """
        return min(0.5 * 2**failures, 30.0, max(self.outbox.settings.lease / 2, 0.5))

    def _linger(self) -> None:
        """Under load, let the other sends in flight finish too, so one transaction records them all.

        Each round is a write transaction, and on SQLite all writers share one lock: recording sends one
        by one would make fan-out a queue of tiny transactions. The wait is a few ms, and only happens
        while more sends are in flight.
        """
        with self._lock:
            done, running = len(self._done), self._in_flight - len(self._done)
        if done and running:
            self._stop.wait(LINGER_SECONDS)

    def _send(self, item: Claimed) -> None:
        result = self.outbox.send(self.notifier, item)
        with self._lock:
            self._done.append((item, result))
        self._wake.set()

    def _settle_and_claim(self, *, claim: bool = True) -> tuple[int, list[Claimed]]:
        """Record the finished sends and (with `claim`) claim rows for the free slots, in one transaction."""
        with self._lock:
            batch = list(self._done)
            self._done.clear()
            free = self.concurrency - self._in_flight + len(batch) if claim else 0
        allowance = self._allowance()
        summarise = False
        if allowance is not None and free > 0:
            # The last message the minute allows sums up everything still due (never drops it); the ones
            # before it go one by one; once none is left, rows wait for the window to move on.
            summarise = allowance == 1
            free = 1 if summarise else min(free, max(allowance - 1, 0))
        if not batch and free <= 0:
            return free, []
        try:
            others = not self._down and time.monotonic() >= self._leave_others_until
            _, claimed = self.outbox.settle_and_claim(
                batch, self.channel, free, summarise=summarise, others_unfinished=others
            )
        except Exception:
            with self._lock:  # keep them for the next round; the rows stay leased meanwhile
                self._done.extendleft(reversed(batch))
            raise
        with self._lock:
            self._in_flight -= len(batch)
        if self.max_per_minute:
            self._sent_at.extend([time.monotonic()] * len(claimed))
        return free, claimed

    def _allowance(self) -> int | None:
        """Messages the channel's `max_per_minute` still allows in the rolling minute (None: no limit).

        Counted per process: with several processes delivering, each keeps to the limit on its own.
        """
        if not self.max_per_minute:
            return None
        horizon = time.monotonic() - 60.0
        while self._sent_at and self._sent_at[0] <= horizon:
            self._sent_at.popleft()
        return self.max_per_minute - len(self._sent_at)

    def _sleep_for(self) -> float:
        if time.monotonic() < self._leave_others_until:
            # Rows left to their senders count as due: poll, rather than wake at once for them again.
            return self.poll_interval
        due = self.outbox.next_due(self.channel)
        if due is None:
            return self.poll_interval
        return min(max(due - self.outbox.clock(), 0.005), self.poll_interval)


class DeliveryWorkers:
    """The workers of every configured channel."""

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        *,
        concurrency: int,
        poll_interval: float,
        max_per_minute: Mapping[str, int] | None = None,
    ) -> None:
        limits = max_per_minute or {}
        self.workers = {
            name: ChannelWorker(
                outbox,
                name,
                notifier,
                concurrency=concurrency,
                poll_interval=poll_interval,
                max_per_minute=limits.get(name, 0),
            )
            for name, notifier in notifiers.items()
        }

    def start(self) -> None:
        """Start every worker."""
        for worker in self.workers.values():
            worker.start()

    def wake(self, channels: Iterable[str] | None = None) -> None:
        """Wake the workers of `channels` (all when None)."""
        for name in self.workers if channels is None else channels:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker."""
        for worker in self.workers.values():
            worker._stop.set()
            worker.wake()
        for worker in self.workers.values():
            worker.stop(timeout)


class Ticker:
    """Calls `tick` every `interval` seconds on a daemon thread (repeats, receipts and outbox upkeep)."""

    def __init__(self, tick: Callable[[], object], interval: float, *, secrets: Iterable[str | None] = ()) -> None:
        """`secrets` (the store URL's) are redacted from the outage lines."""
        self._tick = tick
        self._interval = interval
        # Each tick reaches the store: during a database restart, one warning and one line when it is back,
        # as the outbox workers and the scheduler's jobs log it, not an ERROR with a traceback every tick.
        self._outages = OutageLog(log, secrets=secrets, subject="gateway")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmcost-gateway-tick", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except StoreUnavailable as error:
                self._outages.unreachable("tick", error, time.monotonic())
                continue
            except Exception:
                log.exception("gateway tick failed; will try again")
                continue
            self._outages.reachable("tick", time.monotonic())
