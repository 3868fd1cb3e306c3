"""A LiteLLM callback that records every call in llmcost and refuses calls a hard budget forbids.

    from llmcost.litellm import LlmcostLogger
    litellm.callbacks = [LlmcostLogger("http://127.0.0.1:9800", token="…", project="search")]

Recording: LiteLLM hands the callback its `StandardLoggingPayload` after each call (success or
failure); the callback maps it with llmcost's own LiteLLM mapping — LiteLLM's token counts and its
`response_cost`, the payload's `id` as the request id — and queues it on an `llmcost.Client`, which
sends in the background, retries while llmcost is away and flushes at exit. LiteLLM logs async calls in
tasks of the running loop, which a loop cancels as it ends: a script awaits `handler.aflush()` before its
loop ends. Prompts and responses never leave the process: the mapping keeps usage, ids and attribution only.

Budgets: before a call, `POST /v1/budgets/check` is asked with the call's model and attribution, and a
refusal raises `llmcost.BudgetExceededError` (LiteLLM's proxy answers it with HTTP 400). The hook runs
where LiteLLM lets a callback refuse a call: on the proxy (`async_pre_call_hook`) and for the SDK's
async calls and the Router (`async_pre_call_deployment_hook`). LiteLLM gives synchronous
`litellm.completion` no such hook: guard those calls with `handler.guard(model=…)`.

Attribution: `project`, `service` and `user` in the request's `metadata` win; then, on the proxy, the
key's project or team and the end user; then the defaults given here. A proxy key's project or team is
never replaced by the request's metadata, which the proxy's caller writes: it only fills in a project for
keys that have none. This module imports LiteLLM;
`import llmcost` does not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from llmcost import child_exit
from llmcost.client import Client, FailMode
from llmcost.errors import BudgetExceededError

log = logging.getLogger("llmcost.litellm")

_CHECKED = "llmcost_budget_checked"  # set by the proxy hook so the deployment hook does not ask twice
_ATTRIBUTION = ("project", "service", "user")


class LlmcostLogger(CustomLogger):
    """Name an instance in LiteLLM's `callbacks` (SDK: `litellm.callbacks`; proxy: `litellm_settings.callbacks`)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        project: str = "",
        service: str = "",
        fail_mode: FailMode | None = None,
        check_budgets: bool = True,
        estimate_cost: Callable[[str, Mapping[str, Any]], float] | None = None,
        estimate_tokens: Callable[[str, Mapping[str, Any]], int] | None = None,
        client: Client | None = None,
        **client_options: Any,
    ) -> None:
        """Send to llmcost at `url` (default `$LLMCOST_URL`, else `http://127.0.0.1:9800`) with `token`.

        `token` defaults to `$LLMCOST_TOKEN`, without surrounding whitespace.
        `fail_mode` (default `$LLMCOST_FAIL_MODE`, else `"open"`) decides when llmcost cannot be asked:
        `"open"` lets the call through, `"closed"` refuses it. `estimate_cost(model, request)` may give the
        call's expected cost in USD for the check (default 0: only budgets already spent refuse), and
        `estimate_tokens(model, request)` its expected tokens (input + output), which `tokens` budgets and
        `max_tokens_per_request` caps need to refuse a call before it is made.
        Other keyword arguments go to `llmcost.Client`.
        """
        super().__init__()
        mode = fail_mode or os.environ.get("LLMCOST_FAIL_MODE", "open")
        if mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', got {mode!r}")
        self.client = client or Client(
            url or os.environ.get("LLMCOST_URL", "http://127.0.0.1:9800"),
            # Stripped as the server's `*_env` secrets are: a Kubernetes Secret made `--from-file` ends in a newline.
            token if token is not None else (os.environ.get("LLMCOST_TOKEN", "").strip() or None),
            fail_mode=mode,  # type: ignore[arg-type]
            **client_options,
        )
        self.defaults = {"project": project, "service": service}
        # A multiprocessing child's last sync calls reach this callback from LiteLLM's thread pool after the
        # task returned: at the child's exit, let them in before the client closes.
        child_exit.before_clients_close(_wait_for_sync_logging)
        _flush_at_server_shutdown(self)
        self.check_budgets = check_budgets
        self.estimate_cost = estimate_cost
        self.estimate_tokens = estimate_tokens

    # ---- recording ------------------------------------------------------------------------------

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Queue a successful call (synchronous LiteLLM calls)."""
        self._record(kwargs)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Queue a failed call, as status `error` (not one that reached no provider: it never happened)."""
        if not _refused_here(kwargs) and not _reached_no_provider(kwargs):
            self._record(kwargs)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Queue a successful call (async calls and the proxy); never waits on the network."""
        self._record(kwargs)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Queue a failed call, as status `error` (not one this callback refused, nor one that reached no provider)."""
        if not _refused_here(kwargs) and not _reached_no_provider(kwargs):
            self._record(kwargs)

    def _record(self, kwargs: Mapping[str, Any]) -> None:
        # A logging callback must never break the call it logs.
        try:
            payload = kwargs.get("standard_logging_object")
            if not isinstance(payload, Mapping):
                log.debug("LiteLLM gave no standard_logging_object; call not recorded")
                return
            from exporter.events import InvalidEvent
            from exporter.normalize.litellm import event_from_litellm

            try:
                event = event_from_litellm(payload)
            except InvalidEvent as exc:
                log.warning("LiteLLM call %s not recorded: %s", payload.get("id"), exc)
                return
            # The request's own metadata wins, then what LiteLLM knows (key, team, end user), then the defaults;
            # but not over the project of a proxy key: a caller must not move its spend off its key's budget.
            requested = _request_metadata(kwargs)
            for key in _ATTRIBUTION:
                if key == "project" and event.get("project"):
                    continue
                if requested.get(key):
                    event[key] = str(requested[key])
                elif not event.get(key) and self.defaults.get(key):
                    event[key] = self.defaults[key]
            self.client.record(**event)
        except Exception:
            log.exception("llmcost could not record a LiteLLM call")

    def _attribution(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        out = {key: value for key, value in self.defaults.items() if value}
        out.update((key, str(metadata[key])) for key in _ATTRIBUTION if metadata.get(key))
        return out

    # ---- budgets --------------------------------------------------------------------------------

    def guard(self, *, model: str | None = None, **labels: Any) -> dict[str, Any]:
        """Ask llmcost before a synchronous call; raises `llmcost.BudgetExceededError` on a hard budget."""
        attribution = {**self._attribution({}), **{k: v for k, v in labels.items() if v is not None}}
        return self.client.guard(model=model, **attribution)

    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> dict[str, Any] | None:
        """SDK async calls and the Router: check the budget before the request leaves; None keeps the kwargs."""
        metadata = kwargs.get("metadata") if isinstance(kwargs.get("metadata"), Mapping) else {}
        if self.check_budgets and not (metadata or {}).get(_CHECKED):
            await self._check(kwargs.get("model"), kwargs, metadata or {}, user=kwargs.get("user"))
        return None

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> Any:
        """The proxy: check the budget of the key's project or team before routing; a refusal raises."""
        if not self.check_budgets:
            return data
        metadata = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        key_labels = {
            "project": _first_attr(user_api_key_dict, ("project_alias", "project_id", "team_alias", "team_id")),
            "user": data.get("user") or _first_attr(user_api_key_dict, ("end_user_id", "user_id")),
        }
        # The caller's metadata may fill in, never replace, the key's project: the key's budget is the one to ask.
        labels = {**(metadata or {}), **{k: v for k, v in key_labels.items() if v and k == "project"}}
        labels.update((k, v) for k, v in key_labels.items() if v and not labels.get(k))
        await self._check(data.get("model"), data, labels)
        if isinstance(data.get("metadata"), dict):
            data["metadata"][_CHECKED] = True
        return data

    async def _check(self, model: Any, request: Mapping[str, Any], metadata: Mapping[str, Any], **extra: Any) -> None:
        labels = {**{k: v for k, v in extra.items() if v}, **self._attribution(metadata)}
        estimate = self.estimate_cost(str(model), request) if self.estimate_cost else None
        tokens = self.estimate_tokens(str(model), request) if self.estimate_tokens else None
        # The client is synchronous; a worker thread keeps the event loop serving other requests meanwhile.
        fields: dict[str, Any] = {k: str(v) for k, v in labels.items()}
        await asyncio.to_thread(
            self.client.guard,
            model=_recorded_model(model),
            estimated_cost_usd=estimate,
            estimated_tokens=tokens,
            **fields,
        )

    async def aflush(self, timeout: float = 10.0) -> bool:
        """Wait until LiteLLM has logged the calls made so far and llmcost has them; False on timeout.

        Await it before an event loop ends (the end of `asyncio.run(main())` in a script or batch job):
        LiteLLM logs async calls in tasks of the running loop, which the loop cancels as it ends, so the
        last calls would never reach this callback. A long-running server does not need it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while logging := _litellm_logging_tasks():
            left = deadline - loop.time()
            if left <= 0:
                # Still send what has reached the client: the calls logged so far are not to be lost too.
                await asyncio.to_thread(self.client.flush, 1.0)
                return False
            await asyncio.wait(logging, timeout=min(left, 0.05))
        return await asyncio.to_thread(self.client.flush, max(0.0, deadline - loop.time()))

    def close(self) -> None:
        """Flush and stop the client (also done at interpreter exit)."""
        self.client.close()


def _flush_at_server_shutdown(handler: LlmcostLogger) -> None:
    """Inside a uvicorn server (LiteLLM's proxy), flush once the server has shut down, before the process ends.

    uvicorn answers SIGTERM with a graceful shutdown, then restores the signal's default action and raises it
    again: the process is killed by it, and no `atexit` hook runs, so the calls the client still held (the last
    second's, or all of them while llmcost was down) were lost at every `docker stop` or rolling restart. The
    callback is made while the server starts (the proxy imports it from its config), when uvicorn's signal
    handler, a method of its `Server`, is installed: the server's shutdown is wrapped to wait for LiteLLM's
    logging of the last calls and for llmcost to have them (`aflush`, 10 s at most) once it has finished.
    """
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if server is None or not type(server).__module__.startswith("uvicorn.") or not callable(server.shutdown):
        return
    shutdown = server.shutdown

    async def shutdown_then_flush(*args: Any, **kwargs: Any) -> None:
        try:
            await shutdown(*args, **kwargs)
        finally:
            if not await handler.aflush():
                # The process ends next, without exit hooks: say now how many calls llmcost will never have.
                await asyncio.to_thread(handler.client.close, 0.0)

    server.shutdown = shutdown_then_flush


# How long a multiprocessing child's exit waits for LiteLLM's logging threads: the client's default close_timeout.
_SYNC_LOGGING_WAIT = 10.0


def _wait_for_sync_logging() -> None:
    """At a multiprocessing child's exit: wait (bounded) for LiteLLM's logging threads to log the last sync calls.

    LiteLLM logs a sync call from its module-level thread pool; an interpreter exit waits for that pool, a
    child's `os._exit` does not. The pool is shut down (the process is ending: nothing more is submitted),
    which lets its threads finish what is queued and end.
    """
    pool = getattr(sys.modules.get("litellm.litellm_core_utils.thread_pool_executor"), "executor", None)
    if not isinstance(pool, ThreadPoolExecutor):
        return
    pool.shutdown(wait=False)
    deadline = time.monotonic() + _SYNC_LOGGING_WAIT
    for thread in list(getattr(pool, "_threads", ())):
        thread.join(max(0.0, deadline - time.monotonic()))


# LiteLLM's async logging: the task an async call starts as it returns (`_client_async_logging_helper`, which
# has not run yet when `await acompletion(...)` returns, and only then queues the call on the logging worker),
# the worker's tasks (`LoggingWorker._process_log_task`) and the success and failure handlers it may start as
# tasks of their own (`Logging.async_success_handler`, …).
_LOGGING_TASKS = ("_client_async_logging_helper", "LoggingWorker._process_log_task", "Logging.async_")


def _litellm_logging_tasks() -> set[asyncio.Task[Any]]:
    """LiteLLM's logging still running or queued in this loop (a task is started for each queued call)."""
    try:
        from litellm.litellm_core_utils import logging_worker
    except ImportError:  # a LiteLLM without the logging worker: its handler tasks are all there is to wait for
        queue = None
    else:
        queue = getattr(getattr(logging_worker, "GLOBAL_LOGGING_WORKER", None), "_queue", None)
    running = {
        task
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__qualname__", "").startswith(_LOGGING_TASKS)
    }
    if not running and queue is not None and not queue.empty():
        # Queued calls the worker has not taken yet: give it a turn of the loop to start them.
        return {asyncio.ensure_future(asyncio.sleep(0.01))}
    return running


def _recorded_model(model: Any) -> str | None:
    """The model name the call will be recorded under (`anthropic/claude-…` as `claude-…`).

    A budget scoped to a model must match the events the call produces.
    """
    if not isinstance(model, str) or not model:
        return None
    if "/" not in model:
        return model
    import litellm

    from exporter.normalize.litellm import litellm_model

    try:
        name, provider = litellm.get_llm_provider(model)[:2]
    except Exception:  # an alias LiteLLM does not know: ask with the name as given
        return model
    return litellm_model(str(provider), str(name))


def _refused_here(kwargs: Mapping[str, Any]) -> bool:
    # LiteLLM logs a call a pre-call hook refused as a failure; it reached no provider and cost nothing.
    if isinstance(kwargs.get("exception"), BudgetExceededError):
        return True
    payload = kwargs.get("standard_logging_object")
    info = payload.get("error_information") if isinstance(payload, Mapping) else None
    return isinstance(info, Mapping) and info.get("error_class") == BudgetExceededError.__name__


def _reached_no_provider(kwargs: Mapping[str, Any]) -> bool:
    """A failure LiteLLM never routed to a provider: the proxy refused it (a wrong key, an unknown model, a limit).

    The proxy logs those requests as failures too; no provider was called and nothing was spent, and recording them
    would let anyone who can reach the proxy fill llmcost with error calls under models of their choosing. The test
    is llmcost's own LiteLLM mapping's, which skips them when the generic_api logger posts them.
    """
    from exporter.normalize.litellm import reached_no_provider

    payload = kwargs.get("standard_logging_object")
    return isinstance(payload, Mapping) and reached_no_provider(payload)


def _request_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    params = kwargs.get("litellm_params")
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    if not isinstance(metadata, Mapping):
        metadata = kwargs.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _first_attr(obj: Any, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, str) and value:
            return value
    return None
