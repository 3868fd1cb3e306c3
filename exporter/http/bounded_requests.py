"""Requests answer `503` with Retry-After, rather than never, while the store does not answer.

A PostgreSQL that hangs (paused, partitioned, its host gone without a FIN) keeps its pooled connections
open and silent: a query sent on one never returns until the database does, so `GET /v1/budgets`, the
console, an acknowledgement, a budget `PUT`, the Slack and PagerDuty webhooks hung for as long as the
outage lasted (a request that needed a new connection failed after `connect_timeout`; one that took an
idle pooled one did not). Slack gives up after 3 s and shows the person who clicked an error.

This middleware lets a request run; when it has not answered after `wait` seconds it asks the shared
store probe (store_probe.py) whether the database answers at all. A busy one does, and the request keeps
waiting: a slow report or a write queued behind a lock is never cut short. A silent or refusing one gets
`503` with Retry-After, and the request is cancelled: still waiting for a worker thread, it never runs;
already on one (a thread cannot be interrupted), its store work runs to its end, its answer dropped.
Whatever runs before the store is touched (a token, a webhook's signature: 401) answers as usual, since
it answers within `wait`. A request answered 503 so is counted in the process's `StoreRefusals`
(store_refusals.py): one warning per outage, naming the first request refused, not one per request.

A request that starts once the store is known silent fails its store work at once, holding no thread
(exporter/store/known_silent.py).

A write left running may land once the database answers again, after its client was told to retry.
That is safe because every write route is applied once however often it is retried (the contract a new
write route must keep, or list itself in `skip_paths`): reads change nothing; an acknowledgement of an
acknowledged alert, a Slack click or a PagerDuty webhook about one changes nothing (alerting/gateway/
lifecycle.py); a budget `PUT` sets the definition it carries; a reset repeated with nothing spent since is
the same reset (alerting/budgets/registry.py); an Alertmanager alert is one fingerprint. A write made of
two transactions is finished by its retry: a `DELETE` of a deleted budget is 404 and resolves the alerts
of it a lost first attempt left firing, a repeated reset resolves the budget's alerts again.
`skip_paths` bound themselves: ingest (`/v1/usage`, `/v1/traces`) cancels a commit not yet started and
deduplicates by request_id, `/metrics` and `/readyz` answer from their own deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.http.errors import error, shown
from exporter.http.store_probe import StoreProbe
from exporter.http.store_refusals import StoreRefusals
from exporter.store.known_silent import STORE_KNOWN_SILENT

REQUEST_WAIT = 3.0
"""Seconds a request runs before the store is asked whether it answers at all: with the probe's own 2 s, a
request on a silent store is answered within about 5 s (at once when it starts after that is known)."""


class BoundedRequests:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        probe: StoreProbe,
        retry_headers: dict[str, str],
        refusals: StoreRefusals,
        skip_paths: Collection[str] = (),
        wait: float = REQUEST_WAIT,
    ) -> None:
        """`refusals`: the process's log of store refusals, which logs each outage once (store_refusals.py)."""
        self.app = app
        self._probe = probe
        self._refusals = refusals
        self._retry_headers = retry_headers
        self._skip = frozenset(skip_paths)
        self._wait = wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; one unanswered while the store is silent is answered 503 (module docstring)."""
        if scope["type"] != "http" or scope["path"] in self._skip:
            await self.app(scope, receive, send)
            return
        started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return  # the client was answered 503 already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # Known silent already: the request's store work fails at once instead of holding a thread on a
        # silent connection (exporter/store/known_silent.py); its own checks (401, 422) answer as usual.
        known_silent = STORE_KNOWN_SILENT.set(self._probe.known_silent())
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded_send))  # copies the context
        finally:
            STORE_KNOWN_SILENT.reset(known_silent)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._wait)
                if done or started:
                    await task  # finished, or its response is already going out: let it complete
                    return
                answers = await self._probe.answers_soon()
                if task.done() or started:
                    continue
                if answers:
                    continue  # busy, not gone: a slow request is waited for
                abandoned = True
                task.add_done_callback(_retrieve)
                # Work not started yet (waiting for a worker thread) is dropped rather than run after its
                # client was told to retry; store work already on a thread runs to its end regardless.
                task.cancel()
                why = "refuses connections" if answers is False else "does not answer"
                # Named in the outage's first warning. The path is the client's, percent-decoded: a `%0a`
                # in it would start a forged log line.
                path = shown(scope["path"], 200)
                self._refusals.refused(f"the database {why} ({shown(scope['method'])} {path})")
                response = error(503, "store not answering, retry later", headers=self._retry_headers)
                await response(scope, receive, send)
                return
        except asyncio.CancelledError:
            task.cancel()
            raise


def _retrieve(task: asyncio.Future[None]) -> None:
    # The abandoned request still ends once the database answers, perhaps with an error: read it, so that
    # asyncio does not log "exception was never retrieved" for a request already answered.
    if not task.cancelled():
        task.exception()
