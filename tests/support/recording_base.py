"""The shared base of the loopback recording servers: a threaded HTTP server that records every request.

`RecordingServer` listens on 127.0.0.1 on a free port, records each request as a `RecordedRequest` and
answers from a script of `Response`s, then with its default answer; the service stand-ins
(`tests/support/recording_slack.py`, `tests/support/recording_pagerduty.py`) subclass it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

Body = bytes | str | dict[str, Any] | list[Any] | None


def unused_port() -> int:
    """A loopback port nothing listens on (for "server down" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Response:
    """One scripted HTTP answer; `delay` (seconds) holds it back, to provoke client timeouts."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


@dataclass(frozen=True)
class RecordedRequest:
    """What a client sent: `headers` keys are lower-case; `json`/`form` are the parsed body, if it was one."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def payload(self) -> dict[str, Any]:
        """The parsed JSON object or form, whichever the client sent ({} when neither)."""
        if isinstance(self.json, dict):
            return self.json
        return dict(self.form or {})


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers from a script, then a default."""

    def __init__(self, *, keep_alive: bool = False, idle_timeout: float = 1.0) -> None:
        """`keep_alive`: speak HTTP/1.1 and keep connections open, closing them after `idle_timeout` s.

        `connections` counts connections opened, `connections_closed` those the server has closed.
        """
        self.keep_alive = keep_alive
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.connections_closed = 0
        self.requests: list[RecordedRequest] = []
        self._script: deque[Response] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------------

    def enqueue(
        self, status: int = 200, headers: Mapping[str, str] | None = None, body: Body = None, delay: float = 0.0
    ) -> None:
        """Answer the next request (after earlier scripted ones) with this instead of the default."""
        with self._lock:
            self._script.append(Response(status, dict(headers or {}), body, delay))

    def default_response(self, request: RecordedRequest) -> Response:
        """The answer when nothing is scripted; subclasses imitate their service."""
        return Response(200, {}, {"ok": True})

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. `http://127.0.0.1:43121/`."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if server.keep_alive else "HTTP/1.0"
            timeout = server.idle_timeout if server.keep_alive else None

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def finish(self) -> None:
                super().finish()
                with server._lock:
                    server.connections_closed += 1

            def _handle(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = False  # join request threads on close: no stray sockets
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name=type(self).__name__
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cut scripted delays short
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = _record(handler.command, handler.path, dict(handler.headers.items()), body)
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        response = scripted or self.default_response(request)
        if response.delay and self._stopping.wait(response.delay):
            return  # stopping: drop the connection unanswered
        payload, content_type = response.encoded()
        handler.send_response(response.status)
        headers = {"Content-Type": content_type, **response.headers, "Content-Length": str(len(payload))}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


def _record(method: str, target: str, headers: dict[str, str], body: bytes) -> RecordedRequest:
    parts = urlsplit(target)
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "")
    parsed_json: Any = None
    form: dict[str, str] | None = None
    if "json" in content_type:
        try:
            parsed_json = json.loads(body)
        except ValueError:
            parsed_json = None
    elif "x-www-form-urlencoded" in content_type:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return RecordedRequest(method, parts.path, parse_qs(parts.query), lower, body, parsed_json, form)
