"""The background half of `llmcost.Client`: a bounded queue and one thread that posts it in batches.

Batches go to `POST /v1/usage`, retried with capped exponential backoff (full jitter, the server's
`Retry-After` as a floor) while llmcost is unreachable or answers 429/5xx. The server stores each event
once by `request_id`, so a batch resent after a lost answer is counted once. A batch the server finds
too large (413: its `ingest.max_body_bytes` or event limit is lower than `batch_size` events) is sent
again in halves, down to single events, so a low server limit costs requests, not events.

Each event is encoded as JSON when it is recorded: what is sent is the event as it was then (the caller may
change its dicts afterwards), and an event JSON cannot carry is refused alone, not with the batch around it.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Literal

import httpx
import orjson

log = logging.getLogger("llmcost")

QueueFull = Literal["drop", "block"]
_RETRY = "retry"
_DONE = "done"
_TOO_LARGE = "too large"
_IDLE_POLL = 0.1  # seconds
REFUSAL_LOG_INTERVAL = 60.0
"""Seconds between two log lines about refused batches, or refused budget checks (a wrong token refuses
every one of them)."""
STAT_NAMES = ("accepted", "duplicates", "rejected", "dropped", "failed", "retries")
"""The counts in `BatchSender.stats`, besides `queued`."""
HINT_401 = " (the token is missing, or is not one of llmcost's auth.ingest_tokens)"
"""What a 401 from llmcost means, to recording and to a budget check alike."""
# What a refusal of recorded events most likely means, added to its status wherever it is logged.
_HINTS = {
    401: HINT_401,
    403: " (llmcost, or a proxy in front of it, does not let this client record)",
    404: " (is the URL llmcost's?)",
}


def server_words(text: str, authorization: str) -> str:
    """The start of llmcost's answer to a refused request, fit for a log: the bearer token taken out."""
    token = authorization.removeprefix("Bearer ")
    words = text[:300]
    return words.replace(token, "…") if token else words


# Number keys and numpy values, as applications have them at hand (a numpy token count is a number, not "3").
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class BatchSender:
    """Queues events and sends them from one daemon thread; `flush` and `stop` wait for the answers."""

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        queue_full: QueueFull,
        max_retry_delay: float,
    ) -> None:
        """Start the sender thread posting to `url` + `/v1/usage` through `http`."""
        self._http = http
        self.url = url
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_full = queue_full
        self.max_retry_delay = max_retry_delay
        self._queue: queue.Queue[bytes] = queue.Queue(max_queue)
        self._lock = threading.Condition()
        self._recorded = 0  # events put on the queue
        self._settled = 0  # events answered by llmcost, or given up
        self._abandoned = 0  # events given up because `stop` ran out of time: lost, not answered
        self._failing = False  # the last try of a batch was not answered (llmcost unreachable, 429/5xx)
        self._refused: dict[str, int] = {}  # events llmcost refused, by why ("HTTP 401 (…)")
        self._last_refusal = ""  # why llmcost refused the last batch it answered; "" when it took it
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        # Refused batches not said yet in the log (`_log_refusal`): (events, batches, last status and body).
        self._refusals_unsaid = (0, 0, "")
        self._refusal_said_at: float | None = None  # monotonic time of the last line about them
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abandon = threading.Event()
        self._terminating = False  # set by `drain_from_signal_handler`: send what is queued now, then end
        self._thread = threading.Thread(target=self._run, name="llmcost-client", daemon=True)
        self._thread.start()

    def put(self, event: dict[str, Any]) -> bool:
        """Queue one event; False when it was dropped (queue full, `queue_full="drop"`) or cannot be JSON."""
        try:
            encoded = orjson.dumps(event, default=str, option=_JSON_OPTIONS)
        except TypeError as exc:  # orjson.JSONEncodeError: an integer past 64 bits, nesting too deep, …
            with self._lock:
                self._stats["failed"] += 1
                failed = self._stats["failed"]
            if failed <= 5 or failed % 1000 == 0:  # said, without flooding the log of an app that does it on every call
                log.warning(
                    "llmcost event %s not recorded: it cannot be sent as JSON (%s); %d events failed so far",
                    event.get("request_id"),
                    exc,
                    failed,
                )
            return False
        with self._lock:
            self._recorded += 1
        try:
            if self.queue_full == "block":
                self._queue.put(encoded)
            else:
                self._queue.put_nowait(encoded)
        except queue.Full:
            with self._lock:
                self._recorded -= 1
                self._stats["dropped"] += 1
                dropped = self._stats["dropped"]
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("llmcost queue full: %d events dropped so far (queue_full='drop')", dropped)
            return False
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded before this call is answered by llmcost; False on timeout."""
        with self._lock:
            target = self._recorded
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._settled < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(0.1 if remaining is None else min(remaining, 0.1))
                self._wake.set()
        return True

    def stop(self, timeout: float) -> int:
        """Send what is queued for up to `timeout` s, then stop; returns how many events were not delivered.

        Never waits longer: a request still unanswered then (llmcost hung) is left to the daemon thread,
        which sends nothing more, and its events count as not delivered.
        """
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        self._abandon.set()
        self._say_refusals()
        with self._lock:
            return self._recorded - self._settled + self._abandoned

    def drain_from_signal_handler(self, timeout: float) -> int:
        """`stop` for a signal handler: send what is queued for up to `timeout` s; returns how many were not sent.

        The handler runs on top of whatever the thread it interrupted was doing, which may hold any lock
        (an Event's, the queue's, this sender's): this takes none and waits by polling, so it cannot deadlock
        with the code below it. At worst (the interrupted code held a lock the sender thread needs) it waits
        `timeout`.
        """
        self._terminating = True  # a plain flag: setting an Event takes its lock
        target = self._recorded
        deadline = time.monotonic() + timeout
        while self._settled < target and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._say_refusals(locked=False)
        return max(0, target - self._settled + self._abandoned)

    def refusals(self) -> tuple[dict[str, int], str]:
        """`(events llmcost refused, by why; why it refused the last batch it answered, "" if it took it)`.

        "Why" is the status with what it most likely means (`HTTP 401 (the token is missing, …)`), never the
        token. Takes no lock, so a signal handler may call it (`drain_from_signal_handler`): the copy is one
        step under the GIL.
        """
        return dict(self._refused), self._last_refusal

    @property
    def failing(self) -> bool:
        """True while the batch being sent is waiting to be retried (llmcost unreachable or refusing)."""
        return self._failing

    @property
    def stats(self) -> dict[str, int]:
        """Counts so far: accepted, duplicates, rejected (by llmcost), dropped (queue full), failed, retries."""
        with self._lock:
            return {**self._stats, "queued": self._recorded - self._settled}

    def _run(self) -> None:
        while not self._abandon.is_set():
            batch = self._next_batch()
            if batch:
                try:
                    self._deliver(batch)
                except Exception:  # a bug must not kill the sender and leave flush() waiting forever
                    log.exception("llmcost client: %d events could not be sent", len(batch))
                    with self._lock:
                        self._stats["failed"] += len(batch)
                        self._settled += len(batch)
                        self._lock.notify_all()
            elif (self._closing.is_set() or self._terminating) and self._queue.empty():
                return

    def _next_batch(self) -> list[bytes]:
        """Up to `batch_size` events, waiting up to `flush_interval` for a batch to fill unless woken."""
        batch: list[bytes] = []
        try:
            # A short wait: an idle sender must notice `close` quickly.
            batch.append(self._queue.get(timeout=_IDLE_POLL))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing.is_set() or self._terminating or self._wake.is_set():
                break
            self._wake.wait(min(remaining, 0.05))
        self._wake.clear()
        return batch

    def _deliver(self, batch: list[bytes]) -> None:
        delay = 0.1
        body = b"[" + b",".join(batch) + b"]"
        while True:
            if self._abandon.is_set():  # `stop` ran out of time: nothing more is sent
                with self._lock:  # settled and counted lost at once: `stop` may be counting right now
                    self._stats["failed"] += len(batch)
                    self._abandoned += len(batch)
                    self._settled += len(batch)
                    self._lock.notify_all()
                return
            outcome, retry_after = self._post(body, len(batch))
            if outcome == _TOO_LARGE:
                # Each half settles its own events (and may be halved again).
                half = len(batch) // 2
                log.debug("llmcost answered 413 to %d events, sending them in halves", len(batch))
                self._deliver(batch[:half])
                self._deliver(batch[half:])
                return
            self._failing = outcome == _RETRY
            if outcome == _DONE:
                break
            # Full jitter: many clients coming back after an outage must not retry in step. A server's
            # Retry-After is a floor, within max_retry_delay.
            if not self._abandon.wait(max(random.uniform(0, delay), min(retry_after, self.max_retry_delay))):
                with self._lock:
                    self._stats["retries"] += 1
            delay = min(delay * 2, self.max_retry_delay)
        with self._lock:
            self._settled += len(batch)
            self._lock.notify_all()

    def _post(self, body: bytes, count: int) -> tuple[str, float]:
        """`(_DONE or _RETRY, seconds the server asked to wait)` for one try of a batch."""
        try:
            response = self._http.post(f"{self.url}/v1/usage", content=body)
        except httpx.HTTPError as exc:
            log.debug("llmcost unreachable, will retry: %s", exc)
            return _RETRY, 0.0
        status = response.status_code
        if status == 429 or status >= 500:
            log.debug("llmcost answered %d, will retry", status)
            return _RETRY, _seconds(response.headers.get("retry-after"))
        if status in (200, 422):
            self._last_refusal = ""
            self._count_answer(response)
            return _DONE, 0.0
        if status == 413 and count > 1:
            return _TOO_LARGE, 0.0
        # 400/401/403/415, or 413 for one event: resending the same batch cannot succeed. Kept by why,
        # so that `close` can say why the events were not delivered rather than guess.
        why = f"HTTP {status}{_HINTS.get(status, '')}"
        words = server_words(response.text, self._http.headers.get("authorization", ""))
        with self._lock:
            self._stats["failed"] += count
            self._refused[why] = self._refused.get(why, 0) + count
            self._last_refusal = why
            events, batches, _ = self._refusals_unsaid
            self._refusals_unsaid = (events + count, batches + 1, f"{why}: {words}")
        now = time.monotonic()
        if self._refusal_said_at is None or now - self._refusal_said_at >= REFUSAL_LOG_INTERVAL:
            self._say_refusals()
        return _DONE, 0.0

    def _say_refusals(self, *, locked: bool = True) -> None:
        """Log the batches refused since the last such line, if any, with the count refused in all.

        A wrong token refuses every batch: one line each flooded the application's log, so this runs
        for the first refusal, then at most once per `REFUSAL_LOG_INTERVAL`, and at `stop`, so the
        last line counts every refused event. `locked=False` in a signal handler: it reads plain ints
        (a lock the interrupted code holds would deadlock).
        """
        if locked:
            with self._lock:
                (events, batches, answer), refused = self._refusals_unsaid, sum(dict(self._refused).values())
                self._refusals_unsaid = (0, 0, "")
        else:
            (events, batches, answer), refused = self._refusals_unsaid, sum(dict(self._refused).values())
            self._refusals_unsaid = (0, 0, "")
        if not events:
            return
        self._refusal_said_at = time.monotonic()
        log.error(
            "llmcost refused %d events in %d batches: %s (%d events refused in all; logged at most every %g s)",
            events,
            batches,
            answer,
            refused,
            REFUSAL_LOG_INTERVAL,
        )

    def _count_answer(self, response: httpx.Response) -> None:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        rejected = answer.get("rejected") or []
        with self._lock:
            self._stats["accepted"] += int(answer.get("accepted") or 0)
            self._stats["duplicates"] += int(answer.get("duplicates") or 0)
            self._stats["rejected"] += len(rejected)
        for item in rejected[:5]:
            log.warning("llmcost rejected an event: %s", item.get("error"))


def _seconds(value: str | None) -> float:
    """A Retry-After given in seconds (the form llmcost sends); anything else counts as none."""
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
