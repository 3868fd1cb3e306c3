"""`Client`: record LLM calls to llmcost without ever slowing the caller, and ask budgets before a call.

`record` only puts the event on a bounded in-memory queue; one background thread sends the queue in
batches to `POST /v1/usage`, retrying with capped exponential backoff while llmcost is unreachable or
answers 429/5xx (the server stores each event once by `request_id`, so a batch resent after a lost
answer is counted once). When the queue is full the policy chosen at construction applies: `"drop"`
(the default: the event is dropped and counted in `stats["dropped"]`, `record` returns False) or
`"block"` (the caller waits for room). `flush` waits until everything recorded before it was answered;
`close` flushes and stops, and runs by itself at interpreter exit.

Every event gets a `request_id` (a UUID) and a `timestamp` when it is recorded, unless given: a retry
then never becomes a second call and the time is the call's, not the send's.
"""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import orjson

from llmcost.errors import BudgetExceededError, LlmcostError

log = logging.getLogger("llmcost")

QueueFull = Literal["drop", "block"]
FailMode = Literal["open", "closed"]
_RETRY = "retry"
_DONE = "done"
_IDLE_POLL = 0.1  # seconds


class Client:
    """A thread-safe llmcost client: `record`, `record_response`, `check`, `guard`, `flush`, `close`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        project: str = "",
        service: str = "",
        user: str = "",
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        queue_full: QueueFull = "drop",
        timeout: float = 10.0,
        check_timeout: float = 2.0,
        max_retry_delay: float = 30.0,
        fail_mode: FailMode = "open",
        close_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to llmcost at `url` (e.g. `http://127.0.0.1:9800`), with `token` as the bearer token.

        `project`, `service` and `user` are defaults for events and checks that do not name their own.
        `fail_mode` says what `check` and `guard` answer when llmcost cannot be reached: `"open"` allows
        the call, `"closed"` refuses it.
        """
        if queue_full not in ("drop", "block"):
            raise ValueError(f"queue_full must be 'drop' or 'block', got {queue_full!r}")
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', got {fail_mode!r}")
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        self.url = url.rstrip("/")
        self.defaults = {k: v for k, v in (("project", project), ("service", service), ("user", user)) if v}
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_full = queue_full
        self.fail_mode = fail_mode
        self.max_retry_delay = max_retry_delay
        self.close_timeout = close_timeout
        headers = {"Content-Type": "application/json", "User-Agent": "llmcost-python-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # One HTTP client for the sender thread, one for checks (called from any thread).
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self._check_http = httpx.Client(headers=headers, timeout=check_timeout, transport=transport)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self._lock = threading.Condition()
        self._recorded = 0  # events put on the queue
        self._settled = 0  # events answered by llmcost, or given up
        self._stats = {"accepted": 0, "duplicates": 0, "rejected": 0, "dropped": 0, "failed": 0, "retries": 0}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abandon = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llmcost-client", daemon=True)
        self._thread.start()
        # At exit, flush what is queued (the thread is a daemon: it must not keep the process alive).
        self._exit_hook = _weak_close(self)
        atexit.register(self._exit_hook)

    # ---- recording ------------------------------------------------------------------------------

    def record(self, **event: Any) -> bool:
        """Queue one usage event (canonical fields as keywords); True when queued, False when dropped.

        Never waits for the network. With `queue_full="block"` it waits for room in the queue.
        """
        if self._closed:
            raise LlmcostError("record() on a closed llmcost Client")
        event.setdefault("request_id", str(uuid.uuid4()))
        event.setdefault("timestamp", time.time())
        for key, value in self.defaults.items():
            event.setdefault(key, value)
        return self._enqueue(event)

    def record_response(
        self,
        response: Any,
        *,
        project: str | None = None,
        service: str | None = None,
        user: str | None = None,
        provider: str | None = None,
        latency_ms: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Queue the usage of an OpenAI (Chat Completions, Responses) or Anthropic (Message) response.

        Only usage, ids and model are sent, never the response's content; the response's `id` is the
        request id (recording a response twice counts it once). `provider` overrides the provider the
        shape implies (OpenAI-compatible APIs such as DeepSeek return OpenAI's shape). Raises
        `ValueError` for an object that is not such a response or carries no usage.
        """
        from exporter.events import InvalidEvent
        from exporter.normalize.provider_usage import map_usage
        from exporter.normalize.responses import event_from_response, response_kind

        data = _as_dict(response)
        kind = response_kind(data)
        if kind is None:
            raise ValueError(
                "not an OpenAI Chat Completions / Responses or Anthropic Message response "
                f"(object={data.get('object')!r}, type={data.get('type')!r})"
            )
        event = event_from_response(data, kind)
        if provider is not None:
            event["provider"] = provider
        try:  # the server's own mapping, run here so a bad usage is the caller's error now, not a log line later
            map_usage(event.get("usage"), event["provider"])
        except InvalidEvent as exc:
            raise ValueError(f"response usage cannot be read: {exc}") from None
        given = {"project": project, "service": service, "user": user, "latency_ms": latency_ms}
        event.update((key, value) for key, value in given.items() if value is not None)
        if metadata:
            event["metadata"] = {**event.get("metadata", {}), **metadata}
        event.update(fields)
        return self.record(**event)

    def _enqueue(self, event: dict[str, Any]) -> bool:
        with self._lock:
            self._recorded += 1
        try:
            if self.queue_full == "block":
                self._queue.put(event)
            else:
                self._queue.put_nowait(event)
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

    # ---- flushing and closing -------------------------------------------------------------------

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

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to `timeout`, default `close_timeout` s), then stop; whatever is still unsent is logged as lost."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._exit_hook)
        wait = self.close_timeout if timeout is None else timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(wait)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(5)
        lost = self._recorded - self._settled
        if lost > 0:
            log.error("llmcost client closed with %d events not delivered (llmcost unreachable?)", lost)
        self._http.close()
        self._check_http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        """Counts so far: accepted, duplicates, rejected (by llmcost), dropped (queue full), failed, retries."""
        with self._lock:
            return {**self._stats, "queued": self._recorded - self._settled}

    # ---- the sender thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
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
            elif self._closing.is_set() and self._queue.empty():
                return

    def _next_batch(self) -> list[dict[str, Any]]:
        """Up to `batch_size` events, waiting up to `flush_interval` for a batch to fill unless woken."""
        batch: list[dict[str, Any]] = []
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
            if remaining <= 0 or self._closing.is_set() or self._wake.is_set():
                break
            self._wake.wait(min(remaining, 0.05))
        self._wake.clear()
        return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        delay = 0.1
        body = orjson.dumps(batch, default=str)
        while True:
            outcome, retry_after = self._post(body, len(batch))
            if outcome == _DONE:
                break
            if self._abandon.is_set():
                with self._lock:
                    self._stats["failed"] += len(batch)
                break
            with self._lock:
                self._stats["retries"] += 1
            # Full jitter: many clients coming back after an outage must not retry in step. A server's
            # Retry-After is a floor, within max_retry_delay.
            self._abandon.wait(max(random.uniform(0, delay), min(retry_after, self.max_retry_delay)))
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
            self._count_answer(response)
            return _DONE, 0.0
        # 400/401/413/415: resending the same batch cannot succeed.
        log.error("llmcost refused %d events: HTTP %d %s", count, status, response.text[:300])
        with self._lock:
            self._stats["failed"] += count
        return _DONE, 0.0

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

    # ---- budgets --------------------------------------------------------------------------------

    def check(
        self,
        *,
        project: str | None = None,
        user: str | None = None,
        service: str | None = None,
        model: str | None = None,
        estimated_cost_usd: float | None = None,
    ) -> dict[str, Any]:
        """Ask `POST /v1/budgets/check` whether a call fits; returns the answer as llmcost gives it.

        When llmcost cannot be reached (or answers 5xx) the answer is made up from `fail_mode`:
        `{"allowed": fail_mode == "open", "state": "unknown", "degraded": True, "reason": …}`. A refused
        request (wrong token, a field llmcost does not know) raises `LlmcostError`.
        """
        body: dict[str, Any] = dict(self.defaults)
        given = {"project": project, "user": user, "service": service, "model": model}
        body.update((key, value) for key, value in given.items() if value is not None)
        if estimated_cost_usd is not None:
            body["estimated_cost_usd"] = estimated_cost_usd
        try:
            response = self._check_http.post(f"{self.url}/v1/budgets/check", content=orjson.dumps(body))
        except httpx.HTTPError as exc:
            return self._unreachable(f"{type(exc).__name__}: {exc}")
        if response.status_code == 429 or response.status_code >= 500:
            return self._unreachable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise LlmcostError(f"budget check refused: HTTP {response.status_code} {response.text[:300]}")
        answer = response.json()
        if not isinstance(answer, dict):
            raise LlmcostError(f"budget check answered {type(answer).__name__}, not an object")
        return answer

    def guard(
        self,
        *,
        project: str | None = None,
        user: str | None = None,
        service: str | None = None,
        model: str | None = None,
        estimated_cost_usd: float | None = None,
    ) -> dict[str, Any]:
        """`check`, raising `BudgetExceededError` (carrying the answer) when a hard budget refuses the call."""
        answer = self.check(
            project=project, user=user, service=service, model=model, estimated_cost_usd=estimated_cost_usd
        )
        if answer.get("allowed") is False:
            raise BudgetExceededError(answer)
        return answer

    def _unreachable(self, detail: str) -> dict[str, Any]:
        allowed = self.fail_mode == "open"
        verdict = "allowed" if allowed else "refused"
        return {
            "allowed": allowed,
            "state": "unknown",
            "reason": (
                f"llmcost could not be asked ({detail}); fail_mode is {self.fail_mode!r}, so the call is {verdict}"
            ),
            "budgets": [],
            "degraded": True,
        }


def _as_dict(response: Any) -> dict[str, Any]:
    """A provider SDK response (pydantic model) or a plain mapping as a dict."""
    if isinstance(response, Mapping):
        return dict(response)
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        data = dump(mode="json")
        if isinstance(data, dict):
            return data
    to_dict = getattr(response, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, dict):
            return data
    raise ValueError(f"cannot read a response of type {type(response).__name__}")


def _seconds(value: str | None) -> float:
    """A Retry-After given in seconds (the form llmcost sends); anything else counts as none."""
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _weak_close(client: Client) -> Any:
    # atexit holds only a weak reference: a client dropped by its owner can still be collected.
    ref = weakref.ref(client)

    def close_at_exit() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    return close_at_exit
