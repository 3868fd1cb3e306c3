"""Delivery workers: one thread per channel, so one channel's outage never delays another.

Each worker claims due rows of its channel (several at once, at most one per alert) and sends them
concurrently on a small pool; it sleeps until woken by a local enqueue, until the next retry is due,
or for `poll_interval` (rows written by other processes). Store outages are waited out, not fatal.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from alerting.gateway.outbox import Claimed, Outbox
from alerting.model import DeliveryResult
from alerting.notify import Notifier

log = logging.getLogger(__name__)


class ChannelWorker:
    """Delivers the outbox rows of one channel until stopped, up to `concurrency` at a time.

    A dispatcher thread claims as many due rows as there are free slots and hands each to the pool, which
    sends it; the dispatcher records finished sends in one transaction per round (cheap under load) and
    claims again. One slow message never holds back the others (only later messages about the same alert
    wait, to keep their order).
    """

    def __init__(
        self, outbox: Outbox, channel: str, notifier: Notifier, *, concurrency: int, poll_interval: float
    ) -> None:
        self.outbox = outbox
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
            self._record()
        except Exception:
            log.exception(
                "outbox worker %s: results not recorded; the rows are retried after their lease", self.channel
            )

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._record()
                with self._lock:
                    free = self.concurrency - self._in_flight
                claimed = self.outbox.claim(self.channel, free) if free > 0 else []
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox worker %s: store error; retrying", self.channel)
                self._stop.wait(min(0.5 * 2**failures, 30.0))
                continue
            for item in claimed:
                with self._lock:
                    self._in_flight += 1
                self._pool.submit(self._send, item)
            if free > 0 and len(claimed) == free:
                continue  # more rows may be due for the slots that free up
            try:
                sleep = self._sleep_for() if free > 0 else self.poll_interval
            except Exception:
                sleep = self.poll_interval
            self._wake.wait(sleep)  # a finished send, a local enqueue or the next due row wakes us

    def _send(self, item: Claimed) -> None:
        result = self.outbox.send(self.notifier, item)
        with self._lock:
            self._done.append((item, result))
        self._wake.set()

    def _record(self) -> None:
        with self._lock:
            batch = list(self._done)
            self._done.clear()
        if not batch:
            return
        try:
            self.outbox.record(batch)
        except Exception:
            with self._lock:  # keep them for the next round; the rows stay leased meanwhile
                self._done.extendleft(reversed(batch))
            raise
        with self._lock:
            self._in_flight -= len(batch)

    def _sleep_for(self) -> float:
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
    ) -> None:
        self.workers = {
            name: ChannelWorker(outbox, name, notifier, concurrency=concurrency, poll_interval=poll_interval)
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

    def __init__(self, tick: Callable[[], object], interval: float) -> None:
        self._tick = tick
        self._interval = interval
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
            except Exception:
                log.exception("gateway tick failed; will try again")
