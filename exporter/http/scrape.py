"""`GET /metrics` within the scrape's time, even while the store does not answer.

Every family but the build info is read from the store at scrape time. A database that hangs (paused,
partitioned, its host gone without a FIN) keeps the connection open and silent, so the rendering thread
waits on it until the database comes back: the scrape used to hang, Prometheus gave up after its
`scrape_timeout`, showed the target down with no reason, and every series went stale.

Now a scrape waits for the store until just before the scraper's own timeout (Prometheus sends it in
`X-Prometheus-Scrape-Timeout-Seconds`; 10 s, its default, otherwise) and then answers what the process
knows without the store: `llm_store_up 0` and the build info. A store that refuses outright (stopped,
wrong password) is answered the same way at once. The families read from the store are left out rather
than repeated from an older scrape: Prometheus marks them stale, which is what they are.

One rendering per exposition format is in flight at a time: a scrape that finds the last one still
waiting on a silent store shares it instead of starting another, so a long outage does not pile up
blocked threads and pooled connections, one per scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from exporter.collector import StoreUpCollector
from exporter.store import StoreUnavailable

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"
DEFAULT_SCRAPE_TIMEOUT = 10.0
"""Prometheus' default `scrape_timeout`: the wait when the scraper does not say its own."""
ANSWER_MARGIN = 0.5
"""Seconds before the scraper's timeout at which the scrape is answered without the store; a quarter of a
short timeout (Prometheus scraping every second), so a store that answers in time is not cut short."""
MAX_WAIT = 60.0

Encoder = Callable[[CollectorRegistry], bytes]


def store_wait(header: str | None) -> float:
    """Seconds a scrape waits for the store: the scraper's timeout (header, or the default) less the margin."""
    try:
        timeout = float(header) if header is not None else DEFAULT_SCRAPE_TIMEOUT
    except ValueError:
        timeout = DEFAULT_SCRAPE_TIMEOUT
    if not timeout > 0:  # also NaN
        timeout = DEFAULT_SCRAPE_TIMEOUT
    return min(timeout - min(ANSWER_MARGIN, timeout / 4), MAX_WAIT)


def _without_store() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreUpCollector(up=False))
    return registry


class BoundedScrapes:
    """Renders `registry` per scrape with the store's wait bounded (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry, on_store_answered: Callable[[], None] = lambda: None) -> None:
        """`on_store_answered` is called after each scrape the store answered (a store outage's end is noted)."""
        self._registry = registry
        self._on_store_answered = on_store_answered
        self._without_store = _without_store()
        self._in_flight: dict[str, asyncio.Future[bytes]] = {}
        self._down_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def render(self, encoder: Encoder, content_type: str, wait: float) -> bytes:
        """The exposition in `content_type`: the store's families, or `llm_store_up 0` past `wait` seconds."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a rendering of another event loop (an in-process test client's) is not shared
            self._in_flight.clear()
            self._loop = loop
        rendering = self._in_flight.get(content_type)
        if rendering is None or rendering.done():
            rendering = asyncio.ensure_future(run_in_threadpool(encoder, self._registry))
            rendering.add_done_callback(_retrieve)
            self._in_flight[content_type] = rendering
        try:
            # shield: a scrape giving up does not cancel the rendering the next scrape may share.
            payload = await asyncio.wait_for(asyncio.shield(rendering), wait)
        except TimeoutError:
            self._store_down(f"no answer within {wait:.1f} s")
        except StoreUnavailable as exc:
            self._store_down(str(exc))
        else:
            if self._down_since is not None:
                log.info("GET /metrics: the store answers again after %.0f s", time.monotonic() - self._down_since)
                self._down_since = None
            self._on_store_answered()
            return payload
        return encoder(self._without_store)

    def _store_down(self, why: str) -> None:
        # Once per outage, not once per scrape: a long outage would otherwise log every 15 s.
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("GET /metrics: store unavailable (%s); answering llm_store_up 0 until it answers", why)


def _retrieve(rendering: asyncio.Future[bytes]) -> None:
    # A rendering nobody awaited any more (its scrape was answered without it) still ends, perhaps with
    # an error: read it, so asyncio does not log "exception was never retrieved".
    if not rendering.cancelled():
        rendering.exception()
