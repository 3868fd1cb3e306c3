"""Group commit: concurrent ingest requests share one store transaction.

One commit per request caps SQLite at a few thousand commits per second (docs/performance.md). Requests
hand their prepared events to this queue and wait; a single writer thread drains whatever is queued
(up to `max_events`), writes it in one transaction, and answers every waiting request with its own
accepted and duplicate counts. A request is answered only after the commit that holds its events.

Events are fully validated before they are queued, so a shared commit should not fail for one
request's data. If it still does for an unexpected reason, each request of the batch is written again
on its own: only the guilty one fails, and its neighbours are answered as if alone. A store that is
unreachable (`StoreUnavailable`) fails them all, since no retry here would help.

A request whose commit has not come after `timeout` seconds (`wait_committed`, `ingest.commit_timeout_seconds`)
asks whether the store answers at all. A store that does (it is busy: a large batch ahead, a slow disk)
is waited for again, so a healthy store under load never turns requests away. One that does not (a
database paused, partitioned, its host gone without a FIN) would otherwise hold the writer, and every
request queued behind it, until the kernel gives the socket up (up to ~15 minutes): the request is
answered 503 and its submission is cancelled if the writer has not taken it yet. If the writer already
has, the commit may still land later, and the client's retry of the same events is then counted as
duplicates (by `request_id`), never twice.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from exporter.events import UsageEvent
from exporter.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class WriteFailed(Exception):
    """One request's events failed to commit for a reason other than the store being down (answered 500)."""


@dataclass
class _Submission:
    events: list[UsageEvent]
    rejected: int
    future: Future[tuple[int, int]]
    skipped: Mapping[str, int] = field(default_factory=dict)


class CommitQueue:
    """A writer thread in front of `Store.write_events`."""

    def __init__(self, store: Store, *, max_events: int = 20_000) -> None:
        self._store = store
        self._max_events = max_events
        self._queue: queue.Queue[_Submission | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="llmcost-writer", daemon=True)
        self._thread.start()

    def submit(
        self, events: list[UsageEvent], rejected: int = 0, skipped: Mapping[str, int] | None = None
    ) -> Future[tuple[int, int]]:
        """Queue events; the future resolves to (accepted, duplicates) once they are committed.

        `rejected` and `skipped` (records by reason) are counted in the same commit.
        """
        future: Future[tuple[int, int]] = Future()
        self._queue.put(_Submission(events, rejected, future, skipped or {}))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            # A submission its request gave up on (cancelled past its deadline) is dropped, not written.
            batch = [item] if item.future.set_running_or_notify_cancel() else []
            size = len(item.events)
            while size < self._max_events:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if nxt.future.set_running_or_notify_cancel():
                    batch.append(nxt)
                    size += len(nxt.events)
            if batch:
                self._write(batch)
            del item, batch  # not held while waiting for the next request

    def _write(self, batch: list[_Submission]) -> None:
        events = [ev for sub in batch for ev in sub.events]
        skipped: Counter[str] = Counter()
        for sub in batch:
            skipped.update(sub.skipped)
        try:
            result = self._store.write_events(events, rejected=sum(sub.rejected for sub in batch), skipped=skipped)
        except StoreUnavailable as exc:
            for sub in batch:
                sub.future.set_exception(exc)
            return
        except Exception:
            if len(batch) == 1:
                log.exception("a request's events could not be stored")
                batch[0].future.set_exception(WriteFailed("the events of this request could not be stored"))
                return
            log.warning("a shared commit of %d requests failed; writing each request on its own", len(batch))
            for sub in batch:
                self._write([sub])
            return
        counts = []
        offset = 0
        for sub in batch:
            flags = result.inserted[offset : offset + len(sub.events)]
            offset += len(sub.events)
            accepted = sum(flags)
            counts.append((accepted, len(flags) - accepted))
            # Only the request holds its events now: it can hand their memory back once it drops them
            # (exporter.memory), without racing this thread.
            sub.events = []
        del events, result
        for sub, count in zip(batch, counts, strict=True):
            sub.future.set_result(count)


async def wait_committed(
    future: Future[tuple[int, int]], timeout: float, store_answers: Callable[[], Awaitable[bool | None]]
) -> tuple[int, int]:
    """(accepted, duplicates) of a `submit`, or `StoreUnavailable` once the store stops answering.

    Every `timeout` seconds without the commit, `store_answers()` (a `StoreProbe`'s answer) decides:
    an answer means a busy store, waited for again; silence or a refusal gives up, cancelling the
    submission if the writer has not taken it yet (see the module docstring for why a late commit is safe).
    """
    waiting = asyncio.wrap_future(future)  # cancelling it cancels `future` while still queued
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except TimeoutError:
            if await store_answers():
                continue
            if waiting.done() and not waiting.cancelled():  # committed while the probe waited
                return waiting.result()
            waiting.cancel()
            raise StoreUnavailable(f"the store did not answer within {timeout:g} s") from None
