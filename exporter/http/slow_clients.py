"""Connection-level limits uvicorn lacks: a header read timeout and size cap, and a cap on open connections.

uvicorn closes an idle keep-alive connection, but not one that was opened and never sent a complete
request head: 300 such half-open connections stayed open, each holding a socket and a protocol object.
`GuardedProtocol` arms a timer whenever a connection waits for a request head (on connect, and when
bytes of the next request arrive), closes the connection when the head is not complete in time, and
closes at once any connection beyond `max_connections`. A request head larger than `MAX_HEAD_BYTES`
is answered 431 and the connection closed: httptools keeps every header it parses, and one connection
sent 200 MB of them within the timeout (no token needed: headers come before any check). Bodies are
bounded by the application (`read_limited`'s limit and timeout), where the request can still be
answered with a 408 or 413.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""The most a request head (request line and headers) may take; nginx's default allows 32 KiB."""


def _head_too_large() -> bytes:
    body = orjson.dumps({"error": "request head too large", "detail": {"limit_bytes": MAX_HEAD_BYTES}})
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )


def guarded_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """An httptools protocol class enforcing `header_timeout` seconds and `max_connections`."""

    class GuardedProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _tail = b""  # the head's last bytes so far (at most 3)
        _in_message = False  # between the parser's message begin and complete: bytes are this request's

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("connection refused: %d connections are open (http.max_connections)", max_connections)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            # The head of a next request on a kept-alive connection. Not while a request is still being
            # received: a response may be complete before its body arrived (a 413 answered from
            # Content-Length), and the rest of that body is not a head, however large.
            if self._header_timer is None and not self._in_message:
                self._arm()
            if self._header_timer is not None:
                # Before the parser sees it: a head that ends in this read is parsed whole, and one read
                # may bring 256 KiB. Bytes after a head's end within the cap are its body (the app bounds it).
                if self._head_bytes + len(data) > MAX_HEAD_BYTES and not self._head_ends_within_cap(data):
                    self._refuse_head()
                    return
                self._head_bytes += len(data)
                self._tail = (self._tail + data)[-3:]
            super().data_received(data)
            # Still waiting for the end of the head (the timer is disarmed when it completes) past the cap.
            if self._header_timer is not None and self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

        def _head_ends_within_cap(self, data: bytes) -> bool:
            # The blank line ending the head may straddle this read and the last: look from the head's last bytes.
            room = MAX_HEAD_BYTES - self._head_bytes + len(self._tail)
            return (self._tail + data).find(b"\r\n\r\n", 0, room) >= 0

        def _refuse_head(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(_head_too_large())
                self.transport.close()

        def on_message_begin(self) -> None:
            self._in_message = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_bytes = 0
            self._tail = b""
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
