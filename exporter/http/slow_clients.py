"""Connection-level limits uvicorn lacks: a header read timeout and a cap on open connections.

uvicorn closes an idle keep-alive connection, but not one that was opened and never sent a complete
request head: 300 such half-open connections stayed open, each holding a socket and a protocol object.
`GuardedProtocol` arms a timer whenever a connection waits for a request head (on connect, and when
bytes of the next request arrive), closes the connection when the head is not complete in time, and
closes at once any connection beyond `max_connections`. Bodies are bounded by the application
(`read_limited`'s timeout), where the request can still be answered with a 408.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """An httptools protocol class enforcing `header_timeout` seconds and `max_connections`."""

    class GuardedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("connection refused: %d connections are open (http.max_connections)", max_connections)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the head of a next request on a kept-alive connection
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol


def protocol_options(config: Any) -> dict[str, Any]:
    """The uvicorn.Config keywords for `config.http` (an `HttpConfig`)."""
    return {
        "http": guarded_protocol(config.header_timeout_seconds, config.max_connections),
        "timeout_keep_alive": config.keep_alive_seconds,
    }
