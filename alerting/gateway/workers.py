"""Delivery workers: one thread per channel, so one channel's outage never delays another.

Each worker claims due rows of its channel (several at once, at most one per alert) and sends them
concurrently on a small pool; it sleeps until woken by a local enqueue, until the next retry is due,
or for `poll_interval` (rows written by other processes). Store outages are waited out, not fatal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from alerting.gateway.outbox import Outbox
from alerting.notify import Notifier

log = logging.getLogger(__name__)


class ChannelWorker:
    """Delivers the outbox rows of one channel until stopped."""

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
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"llmcost-{channel}")
        self._thread = threading.Thread(target=self._run, name=f"llmcost-outbox-{channel}", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def wake(self) -> None:
        """Look for due rows now."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the deliveries in flight (bounded by the notifier's timeouts)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = self._deliver_once()
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox worker %s: store error; retrying", self.channel)
                self._stop.wait(min(0.5 * 2**failures, 30.0))
                continue
            if done:
                continue
            self._wake.wait(self._sleep_for())

    def _deliver_once(self) -> int:
        claimed = self.outbox.claim(self.channel, self.concurrency)
        if not claimed:
            return 0
        results = list(self._pool.map(lambda c: (c, self.outbox.send(self.notifier, c)), claimed))
        for item, result in results:
            self.outbox.finish(item, result)
        return len(claimed)

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
