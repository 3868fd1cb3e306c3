"""Reads answer `503` with Retry-After, rather than never, while the store does not answer.

A PostgreSQL that hangs (paused, partitioned, its host gone without a FIN) keeps its pooled connections
open and silent: a query sent on one never returns until the database does, so `GET /v1/budgets`,
`/v1/alerts`, the console or `/v1/usage/summary` hung for as long as the outage lasted (a request that
needed a new connection failed after `connect_timeout`; one that took an idle pooled one did not).

This middleware lets a read run; when it has not answered after `wait` seconds it asks the shared store
probe (store_probe.py) whether the database answers at all. A busy one does, and the read keeps waiting:
a slow report is never cut short. A silent or refusing one gets `503` with Retry-After, and the read is
left to finish in the background (its answer dropped). Only requests that are safe to abandon are
bounded this way: reads (`GET`, `HEAD`), which change nothing, and the `POST`s in `safe_posts`, which
either only ask (`/v1/budgets/check`, whose clients take a 5xx as "unreachable" and answer from their
own `fail_mode`) or are deduplicated when their sender retries (`/v1/alertmanager`: an alert is one
fingerprint, so a webhook that lands late and its retry make one alert and one notification). Any other
write left running could land after its client was told to retry. Ingest (`/v1/usage`, `/v1/traces`)
bounds its commits itself, with request_id deduplication, and `/metrics` and `/readyz` have their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.http.errors import error
from exporter.http.store_probe import StoreProbe

log = logging.getLogger(__name__)

READ_WAIT = 3.0
"""Seconds a read runs before the store is asked whether it answers at all."""


class BoundedReads:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        probe: StoreProbe,
        retry_headers: dict[str, str],
        skip_paths: Collection[str] = (),
        safe_posts: Collection[str] = (),
        wait: float = READ_WAIT,
    ) -> None:
        self.app = app
        self._probe = probe
        self._retry_headers = retry_headers
        self._skip = frozenset(skip_paths)
        self._safe_posts = frozenset(safe_posts)
        self._wait = wait

    def _is_read(self, scope: Scope) -> bool:
        if scope["path"] in self._skip:
            return False
        method = scope["method"]
        return method in ("GET", "HEAD") or (method == "POST" and scope["path"] in self._safe_posts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; a read unanswered while the store is silent is answered 503 (module docstring)."""
        if scope["type"] != "http" or not self._is_read(scope):
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

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
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
                    continue  # busy, not gone: a slow read is waited for
                abandoned = True
                task.add_done_callback(_retrieve)
                why = "refuses connections" if answers is False else "does not answer"
                log.warning("%s %s: the store %s; answered 503", scope["method"], scope["path"], why)
                response = error(503, "store not answering, retry later", headers=self._retry_headers)
                await response(scope, receive, send)
                return
        except asyncio.CancelledError:
            task.cancel()
            raise


def _retrieve(task: asyncio.Future[None]) -> None:
    # The abandoned read still ends once the database answers, perhaps with an error: read it, so that
    # asyncio does not log "exception was never retrieved" for a request already answered.
    if not task.cancelled():
        task.exception()
