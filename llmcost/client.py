"""`Client`: record LLM calls to llmcost without ever slowing the caller, and ask budgets before a call.

`record` only puts the event on a bounded in-memory queue; one background thread sends the queue in
batches to `POST /v1/usage`, retrying with capped exponential backoff while llmcost is unreachable or
answers 429/5xx (the server stores each event once by `request_id`, so a batch resent after a lost
answer is counted once). When the queue is full the policy chosen at construction applies: `"drop"`
(the default: the event is dropped and counted in `stats["dropped"]`, `record` returns False) or
`"block"` (the caller waits for room). `flush` waits until everything recorded before it was answered;
`close` flushes and stops, and runs by itself at interpreter exit, even for a client its owner let go of.

A client survives `fork` (pre-fork servers such as gunicorn, `multiprocessing`): in the child it starts over
with its own queue, thread and connections, leaving what the parent had queued to the parent, and a
`multiprocessing` child (which ends without running `atexit`) flushes it as it exits, also when it is
terminated (`Pool.terminate()`, which leaving `with Pool(...)` calls): see `llmcost.child_exit`.

Every event gets a `request_id` (a UUID) and a `timestamp` when it is recorded, unless given: a retry
then never becomes a second call and the time is the call's, not the send's.

The queue and the sender thread are `llmcost.sender.BatchSender`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import orjson

from llmcost.child_exit import at_child_exit
from llmcost.errors import BudgetExceededError, LlmcostError
from llmcost.sender import HINT_401, REFUSAL_LOG_INTERVAL, STAT_NAMES, BatchSender, QueueFull, server_words

log = logging.getLogger("llmcost")

FailMode = Literal["open", "closed"]

# What a refused budget check most likely means, added to the status in the error (see `Client._refused`).
_HINTS = {
    401: HINT_401,  # as the refusal of recorded events says it
    403: " (the token is not allowed to check budgets)",
    404: " (is the URL llmcost's?)",
    422: " (is llmcost older than this client?)",
}


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
        check_backoff: float = 10.0,
        max_retry_delay: float = 30.0,
        fail_mode: FailMode = "open",
        close_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to llmcost at `url` (e.g. `http://127.0.0.1:9800`), with `token` as the bearer token.

        `project`, `service` and `user` are defaults for events and checks that do not name their own.
        `fail_mode` says what `check` and `guard` answer when llmcost cannot be reached: `"open"` allows
        the call, `"closed"` refuses it. After a check times out (`check_timeout`), checks answer from
        `fail_mode` at once for `check_backoff` seconds: a hung llmcost must not slow every call.
        """
        if queue_full not in ("drop", "block"):
            raise ValueError(f"queue_full must be 'drop' or 'block', got {queue_full!r}")
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', got {fail_mode!r}")
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.strip("/"):
            # httpx would refuse every request, retried in silence until the calls are lost at exit.
            raise ValueError(f"url must be llmcost's http:// or https:// address, got {url!r}")
        if token and not (token.isascii() and token.isprintable()):
            # httpx would fail later with a bare UnicodeEncodeError: an HTTP header carries ASCII only.
            raise ValueError("token must be printable ASCII (a placeholder such as '…' left in it?)")
        self.url = url.rstrip("/")
        self.defaults = {k: v for k, v in (("project", project), ("service", service), ("user", user)) if v}
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_full = queue_full
        self.fail_mode = fail_mode
        self.max_retry_delay = max_retry_delay
        self.close_timeout = close_timeout
        self.check_backoff = check_backoff
        self._checks_resume_at = 0.0  # monotonic time before which a hung llmcost is not asked
        self._refusal_logged_until = 0.0  # monotonic time before which a refused check is not logged again
        self._check_timeout = check_timeout
        headers = {"Content-Type": "application/json", "User-Agent": "llmcost-python-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._timeout = timeout
        self._transport = transport
        self._max_queue = max_queue
        self._closed = False
        self._closed_drop_logged = False
        self._restart_pending = False  # set in a forked child until it first uses the client
        self._start_lock = threading.Lock()
        self._start()
        # At exit, flush what is queued (the thread is a daemon: it must not keep the process alive). atexit
        # holds the client itself: one its owner let go of (made inside a function) still has calls to send.
        self._exit_hook = self.close
        atexit.register(self._exit_hook)
        _LIVE.add(self)
        _flush_in_multiprocessing_children(self)

    def _start(self) -> None:
        """The connections and the sender thread: made at construction, and made again in a forked child."""
        # One HTTP client for the sender thread, one for checks (called from any thread).
        self._http = httpx.Client(headers=self._headers, timeout=self._timeout, transport=self._transport)
        self._check_http = httpx.Client(headers=self._headers, timeout=self._check_timeout, transport=self._transport)
        self._sender = BatchSender(
            self._http,
            self.url,
            batch_size=self.batch_size,
            flush_interval=self.flush_interval,
            max_queue=self._max_queue,
            queue_full=self.queue_full,
            max_retry_delay=self.max_retry_delay,
        )

    def _start_over_in_child(self) -> None:
        """Start over in a forked child, which sends only its own events.

        The parent's sender thread did not come along, and its locks, queue and connections are the parent's
        (a lock may have been held at the fork, a socket is shared); the events queued at the fork are the
        parent's to send.
        """
        if self._closed:
            return
        # Made on first use, not here: a child that never records (a `subprocess` fork before its exec) must
        # not pay for connections and a thread.
        self._start_lock = threading.Lock()  # the parent's may have been held at the fork
        self._restart_pending = True
        self._checks_resume_at = 0.0
        _flush_in_multiprocessing_children(self, forking=True)

    def _ready(self) -> BatchSender:
        """The sender, made now in a forked child that had not used the client yet."""
        if self._restart_pending:
            with self._start_lock:
                if self._restart_pending:
                    self._start()
                    self._restart_pending = False
        return self._sender

    # ---- recording ------------------------------------------------------------------------------

    def record(self, **event: Any) -> bool:
        """Queue one usage event (canonical fields as keywords); True when queued, False when dropped.

        Never waits for the network. With `queue_full="block"` it waits for room in the queue. The event is
        encoded as JSON here (numpy numbers as numbers, non-string keys as strings): one that JSON cannot
        carry (an integer past 64 bits) is dropped alone, logged and counted in `stats["failed"]`.
        """
        if self._closed:
            # An application's atexit hook that runs after the client's own (registered before it), or a
            # call after close(): the event cannot be sent any more, but it must not raise into the app.
            if not self._closed_drop_logged:
                self._closed_drop_logged = True
                log.warning("llmcost client already closed (close() or interpreter exit): usage events dropped")
            return False
        event.setdefault("request_id", str(uuid.uuid4()))
        event.setdefault("timestamp", time.time())
        for key, value in self.defaults.items():
            event.setdefault(key, value)
        return self._ready().put(event)

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

        Of an OpenAI Responses stream, its last event (`response.completed`, the SDK's
        `ResponseCompletedEvent`; or `response.incomplete`, `response.failed`) is read as the response it carries.

        Only usage, ids and model are sent, never the response's content; the response's `id` is the
        request id (recording a response twice counts it once). `provider` overrides the provider the
        shape implies (OpenAI-compatible APIs such as DeepSeek return OpenAI's shape). Raises
        `ValueError` for an object that is not such a response or carries no usage.
        """
        from exporter.events import InvalidEvent
        from exporter.normalize.provider_usage import map_usage
        from exporter.normalize.responses import (
            STREAM_END_EVENTS,
            event_from_response,
            response_kind,
            stream_final_response,
        )

        given = _as_dict(response)
        data = stream_final_response(given)  # a Responses stream's last event: the response it carries
        kind = response_kind(data)
        if kind is None:
            hint = ""
            if str(given.get("type", "")).startswith("response."):
                hint = f"; of a Responses stream, pass its last event ({', '.join(STREAM_END_EVENTS)})"
            raise ValueError(
                "not an OpenAI Chat Completions / Responses or Anthropic Message response "
                f"(object={given.get('object')!r}, type={given.get('type')!r}){hint}"
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

    # ---- flushing and closing -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded before this call is answered by llmcost; False on timeout."""
        if self._restart_pending:  # a forked child that has not recorded: nothing to wait for, nothing to start
            return True
        return self._ready().flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to `timeout`, default `close_timeout` s), then stop.

        Whatever is still unsent is logged as lost, and the events llmcost refused as refused, with why.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._exit_hook)
        if not self._restart_pending:  # a forked child that never used it has nothing of its own to send
            self._stop_sending(self.close_timeout if timeout is None else timeout)
            self._http.close()
            self._check_http.close()
        # Only now: a SIGTERM that interrupts this close must still find the client (`_stop_sending_at_sigterm`).
        _LIVE.discard(self)

    def _stop_sending(self, timeout: float) -> None:
        self._log_undelivered(self._sender.stop(timeout), "closed with")

    def _log_undelivered(self, lost: int, when: str) -> None:
        """Log the events this client did not deliver, and why: refused by llmcost, or `lost` unanswered.

        A refusal (a wrong token: HTTP 401) is said as one, with what it most likely means: guessed to be
        an unreachable llmcost, it would send the user looking for an outage. Unanswered events are only
        guessed to be lost to an unreachable llmcost when llmcost did not refuse the batch before them.
        """
        refused, last_refusal = self._sender.refusals()
        for why, count in refused.items():
            log.error("llmcost client %s %d events not delivered (refused: %s)", when, count, why)
        if lost > 0:
            cause = f"not answered; llmcost refused the events before them: {last_refusal}"
            log.error(
                "llmcost client %s %d events not delivered (%s)",
                when,
                lost,
                cause if last_refusal else "llmcost unreachable?",
            )

    def _stop_sending_at_sigterm(self) -> None:
        """Send what is queued before a SIGTERM ends the process, also when it interrupted a `close` under way.

        A pool worker told to stop is often closing already (its exit finalizer) when `terminate()`'s SIGTERM
        arrives; the handler runs on top of that close, in the same thread, so it waits for the sender itself,
        taking no lock the close (or a `record`) it interrupted may hold.
        """
        self._closed = True
        if self._restart_pending:
            return
        self._log_undelivered(self._sender.drain_from_signal_handler(self.close_timeout), "ended by SIGTERM with")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        """Counts so far: accepted, duplicates, rejected (by llmcost), dropped (queue full), failed, retries."""
        if self._restart_pending:
            # A forked child that has not recorded yet has sent nothing: reading that must not start its
            # sender thread and connections (a read changes nothing).
            return {**dict.fromkeys(STAT_NAMES, 0), "queued": 0}
        return self._sender.stats

    # ---- budgets --------------------------------------------------------------------------------

    def check(
        self,
        *,
        project: str | None = None,
        user: str | None = None,
        service: str | None = None,
        model: str | None = None,
        estimated_cost_usd: float | None = None,
        estimated_tokens: int | None = None,
        estimated_requests: int | None = None,
    ) -> dict[str, Any]:
        """Ask `POST /v1/budgets/check` whether a call fits; returns the answer as llmcost gives it.

        Events recorded before the check are sent first (within `check_timeout`), so they count in it.

        When llmcost cannot be reached (or answers 429/5xx) the answer is made up from `fail_mode`:
        `{"allowed": fail_mode == "open", "state": "unknown", "degraded": True, "reason": …}`. When llmcost
        answers but cannot read its budgets (`degraded`), the stricter of its `budgets.fail_mode` and this
        `fail_mode` decides. A refused check (another 4xx: a wrong token, a URL that is not llmcost's) is
        a configuration error: with `fail_mode="closed"` it raises `LlmcostError`; with `"open"` it is
        answered from `fail_mode` like an unreachable llmcost and logged as an error once a minute.
        """
        body: dict[str, Any] = dict(self.defaults)
        given = {"project": project, "user": user, "service": service, "model": model}
        body.update((key, value) for key, value in given.items() if value is not None)
        estimates = {
            "estimated_cost_usd": estimated_cost_usd,
            "estimated_tokens": estimated_tokens,
            "estimated_requests": estimated_requests,
        }
        body.update((key, value) for key, value in estimates.items() if value is not None)
        if time.monotonic() < self._checks_resume_at:
            return self._unreachable(f"a check timed out less than {self.check_backoff:g} s ago")
        # The calls recorded before this check must count in it: a sender waiting to fill its batch
        # (`flush_interval`) would otherwise let a hard budget be overshot by every call made meanwhile,
        # even by a caller that checks, calls and records one call at a time. The wait ends early when
        # llmcost is not taking them (unreachable, 429/5xx): the check then finds out what to answer.
        # Sending them and asking share one `check_timeout`: a hung llmcost holds the caller's request that
        # long in all, not once for the calls and again for the question.
        deadline = time.monotonic() + self._check_timeout
        sender = self._ready()
        if sender.stats["queued"]:
            while not sender.flush(min(0.05, max(0.0, deadline - time.monotonic()))):
                if sender.failing or time.monotonic() >= deadline:
                    break
        left = deadline - time.monotonic()
        if left <= 0:  # the calls ahead took all of it, unanswered: llmcost is hung as far as callers can tell
            self._checks_resume_at = time.monotonic() + self.check_backoff
            return self._unreachable(f"the calls recorded before it were not answered in {self._check_timeout:g} s")
        try:
            response = self._check_http.post(f"{self.url}/v1/budgets/check", content=orjson.dumps(body), timeout=left)
        except httpx.TimeoutException as exc:
            # Every caller would wait `check_timeout` in turn: answer from fail_mode for a while instead.
            self._checks_resume_at = time.monotonic() + self.check_backoff
            return self._unreachable(f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return self._unreachable(f"{type(exc).__name__}: {exc}")
        if response.status_code == 429 or response.status_code >= 500:
            return self._unreachable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            return self._refused(f"HTTP {response.status_code}{_HINTS.get(response.status_code, '')}", response.text)
        try:
            answer = response.json()
        except ValueError:  # an HTML page: the URL is another web server's
            answer = None
        if not isinstance(answer, dict):
            kind = response.headers.get("content-type") or type(answer).__name__
            return self._refused(f"HTTP 200 with {kind}, not a budget check answer (is the URL llmcost's?)", "")
        if answer.get("degraded") and answer.get("allowed") and self.fail_mode == "closed":
            # llmcost answered but could not read its budgets (its store is down) and its own
            # budgets.fail_mode let the call through: this client asked to refuse unchecked calls.
            return {
                **answer,
                "allowed": False,
                "reason": f"{answer.get('reason') or 'llmcost could not check budgets'}; "
                "this client's fail_mode is 'closed', so the call is refused",
            }
        return answer

    def guard(
        self,
        *,
        project: str | None = None,
        user: str | None = None,
        service: str | None = None,
        model: str | None = None,
        estimated_cost_usd: float | None = None,
        estimated_tokens: int | None = None,
        estimated_requests: int | None = None,
    ) -> dict[str, Any]:
        """`check`, raising `BudgetExceededError` (carrying the answer) when a hard budget refuses the call."""
        answer = self.check(
            project=project,
            user=user,
            service=service,
            model=model,
            estimated_cost_usd=estimated_cost_usd,
            estimated_tokens=estimated_tokens,
            estimated_requests=estimated_requests,
        )
        if answer.get("allowed") is False:
            raise BudgetExceededError(answer)
        return answer

    def _unreachable(self, detail: str) -> dict[str, Any]:
        return self._from_fail_mode(f"llmcost could not be asked ({detail})")

    def _refused(self, detail: str, answer: str) -> dict[str, Any]:
        """The check was refused by llmcost (or whatever answers at `url`): a configuration error, not an outage.

        A missing or wrong token (401), a token llmcost does not take for checks (403), a URL that is not
        llmcost's (404, an HTML page), a server older than this client (422). Asking again will not help.
        `fail_mode="closed"` raises `LlmcostError`: no call goes unchecked. `fail_mode="open"` promises
        that llmcost never takes the application down, so the call is allowed, as when llmcost is
        unreachable, and the error is logged at most once a minute (a log line per call would flood).
        The token is never in the message: the server's own words are kept only with it taken out.
        """
        words = server_words(answer, self._headers.get("Authorization", ""))
        message = f"llmcost refused the budget check: {detail}" + (f": {words}" if words else "")
        if self.fail_mode == "closed":
            raise LlmcostError(message)
        now = time.monotonic()
        if now >= self._refusal_logged_until:
            self._refusal_logged_until = now + REFUSAL_LOG_INTERVAL
            log.error("%s; fail_mode is 'open', so calls are allowed unchecked until this is fixed", message)
        return self._from_fail_mode(f"llmcost refused the budget check ({detail})")

    def _from_fail_mode(self, why: str) -> dict[str, Any]:
        """The answer when llmcost gave none: `allowed` as `fail_mode` says, `degraded`, `state` unknown."""
        allowed = self.fail_mode == "open"
        verdict = "allowed" if allowed else "refused"
        return {
            "allowed": allowed,
            "state": "unknown",
            "reason": f"{why}; fail_mode is {self.fail_mode!r}, so the call is {verdict}",
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


# Every client not yet closed, started over in each forked child.
_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._start_over_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_in_multiprocessing_children(client: Client, *, forking: bool = False) -> None:
    """Have a `multiprocessing` child close (flush) `client` as it exits: it ends with `os._exit`, not atexit.

    For a child still to be forked, the close is registered from `multiprocessing`'s own after-fork hook, which
    runs in the child once it has cleared the finalizers it inherited. A client made in a child itself (a
    `spawn` child imports the main module anew, which runs no after-fork hook; or one made in a task) is
    registered at once. Nothing is imported when the program does not use `multiprocessing`.
    """
    if "multiprocessing" not in sys.modules:
        return
    import multiprocessing
    from multiprocessing import util

    util.register_after_fork(client, _close_at_child_exit)
    # While a spawn child imports the main module, its process object is still being unpickled
    # (`_inheriting`) and `parent_process()` is not set yet. In an at-fork hook (`forking`) both are the
    # forking process's: the after-fork hook above is the one that counts.
    in_child = multiprocessing.parent_process() is not None or getattr(
        multiprocessing.current_process(), "_inheriting", False
    )
    if in_child and not forking:
        _close_at_child_exit(client)


def _close_at_child_exit(client: Client) -> None:
    from multiprocessing import util

    util.Finalize(client, client.close, exitpriority=10)
    # `Pool.terminate()` (leaving a `with Pool(...)` block) kills its workers with SIGTERM, which runs no finalizer.
    at_child_exit(_close_live_clients)


def _close_live_clients() -> None:
    for client in list(_LIVE):
        client._stop_sending_at_sigterm()
