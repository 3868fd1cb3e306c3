"""Worker threads that requests waiting on the store cannot take.

Starlette runs blocking work on one shared pool of worker threads (anyio's default limiter, 40). While
PostgreSQL hangs, every request that reached the store holds one: on a silent pooled connection until the
database answers, or waiting for a pooled connection for `pool_timeout`. A burst of them (budget checks,
which clients send before every LLM call) took the whole pool, and work that never touches the store
queued behind them: ingest's parsing, so `POST /v1/usage` was answered 503 many seconds past its commit
timeout, and the store probe's own ping, so a database that was only busy looked silent.

That work runs here instead, on a few threads of its own; store work stays on the shared pool.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

RESERVED = 8
"""Threads for parsing and probing: more than the probe's one ping and the parses a core can run at once."""


class ReservedThreads:
    """A thread limiter of its own per event loop (an in-process test client runs one per client)."""

    def __init__(self, total: int = RESERVED) -> None:
        self._total = total
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` on one of these threads; like `run_in_threadpool`, it runs to its end once started."""
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self._total)
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=limiter)
