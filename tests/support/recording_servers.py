"""Loopback stand-ins for the Slack Web API, the PagerDuty Events API and an SMTP relay, for tests.

Each server listens on 127.0.0.1 on a free port, records every request it gets and answers like the real
service, unless a test scripted other answers first:

    with SlackAPIServer() as slack:
        slack.enqueue(429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"})
        notifier = SlackNotifier(token="xoxb-test", channel="#llm-cost", api_url=slack.url)
        ...
        assert slack.requests[0].path == "/api/chat.postMessage"

Scripted answers are used first, in order; then the server's default answer applies. Use them as
context managers (or `start()`/`stop()`): stopping closes every socket and joins every thread.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

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


class SlackAPIServer(RecordingServer):
    """Answers like `https://slack.com/api/`: give `url + "api/"` as the client's base URL (or `api_url`).

    `chat.postMessage` returns a new `ts` each time (`1700000000.000100`, `…000200`, …) in channel `C123`
    (or the channel id asked for); `chat.update` echoes the channel and ts. With `token` set, requests
    without `Authorization: Bearer <token>` get `invalid_auth` as Slack would.
    """

    def __init__(self, token: str | None = None, channel_id: str = "C123") -> None:
        super().__init__()
        self.token = token
        self.channel_id = channel_id
        self._ts = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def calls(self, method: str) -> list[RecordedRequest]:
        """The requests made to one API method, e.g. `chat.update`."""
        return [r for r in self.requests if r.path.rsplit("/", 1)[-1] == method]

    def default_response(self, request: RecordedRequest) -> Response:
        if self.token is not None and request.header("authorization") != f"Bearer {self.token}":
            return Response(200, {}, {"ok": False, "error": "invalid_auth"})
        method = request.path.rsplit("/", 1)[-1]
        args = request.payload
        channel = str(args.get("channel") or "")
        channel = channel if channel[:1] in ("C", "G", "D") else self.channel_id
        message = {"type": "message", "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts) * 100:06d}"
            message.update({"subtype": "bot_message", "bot_id": "B123", "ts": ts})
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            return Response(200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message})
        if method == "chat.update":
            ts = str(args.get("ts", ""))
            body = {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}
            return Response(200, {}, body)
        return Response(200, {}, {"ok": True})


class PagerDutyEventsServer(RecordingServer):
    """Answers like `https://events.pagerduty.com/v2/enqueue`, including its 400 for invalid events."""

    @property
    def events_url(self) -> str:
        return self.url + "v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        return [r.json for r in self.requests if isinstance(r.json, dict)]

    def default_response(self, request: RecordedRequest) -> Response:
        event = request.json if isinstance(request.json, dict) else None
        errors = _event_errors(event)
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return Response(400, {}, body)
        assert event is not None
        dedup_key = event.get("dedup_key") or f"generated-{len(self.requests)}"
        return Response(202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})


def _event_errors(event: dict[str, Any] | None) -> list[str]:
    if event is None:
        return ["Event must be a JSON object"]
    errors = []
    if len(str(event.get("routing_key", ""))) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        payload = event.get("payload") or {}
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                errors.append(f"'payload.{key}' is missing or blank")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("'payload.summary' is too long (max 1024 characters)")
        if payload.get("severity") not in (None, "critical", "error", "warning", "info"):
            errors.append("'payload.severity' is invalid")
    return errors


# -- SMTP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted: envelope and the raw message (parsed when first asked)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    over_tls: bool = False
    """True when the session had switched to TLS (STARTTLS) before the message was sent."""

    @cached_property
    def message(self) -> EmailMessage:
        """The parsed message. Parsed lazily: benchmarks share the CPU with this server and only count mail."""
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def part(self, content_type: str) -> str:
        """The decoded body of the first part with this type, e.g. `text/html`."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return str(part.get_content())
        raise KeyError(content_type)


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP session, also counting the client sessions that ended (quit, or the idle timeout).

    Only sessions that greeted (EHLO/HELO) count: the controller's own start-up probe connects and leaves.
    """

    def connection_lost(self, error: Exception | None) -> None:
        greeted = self.session is not None and self.session.host_name is not None
        super().connection_lost(error)
        if greeted:
            self.event_handler._server.sessions_closed += 1


class _LoopbackController(Controller):
    """aiosmtpd's controller, learning the port the OS picked when asked for port 0."""

    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPServer:
    """An aiosmtpd SMTP server on 127.0.0.1 recording accepted mail.

    `refuse` maps recipient addresses to the reply they get (e.g. `"550 5.1.1 No such user"`);
    `enqueue_data_reply("451 4.3.0 Try later")` makes the next DATA fail; `credentials` turns on AUTH
    (PLAIN/LOGIN, offered without TLS); a client that does not log in is still served. `sessions` counts
    EHLO greetings (one per client session) and `sessions_closed` the sessions that ended; `idle_timeout` makes
    the server drop idle sessions, as relays do.
    """

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        idle_timeout: float | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.messages: list[ReceivedMail] = []
        self.sessions = 0
        self.sessions_closed = 0
        self.idle_timeout = idle_timeout
        self.tls_context = tls_context
        self.refuse: dict[str, str] = {}
        self.credentials = dict(credentials or {})
        self._data_replies: deque[str] = deque()
        self._controller: _LoopbackController | None = None
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._controller is not None, "server not started"
        return int(self._controller.port)

    def enqueue_data_reply(self, reply: str) -> None:
        self._data_replies.append(reply)

    def start(self) -> Self:
        options: dict[str, Any] = {}
        if self.credentials:
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        if self.idle_timeout is not None:
            options["timeout"] = self.idle_timeout
        if self.tls_context is not None:  # offers STARTTLS and refuses mail before it
            options.update(tls_context=self.tls_context, require_starttls=True)
        self._controller = _LoopbackController(_Handler(self), hostname=self.host, port=0, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _authenticate(
        self, server: object, session: object, envelope: object, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False)


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self._server = server

    async def handle_EHLO(
        self, server: object, session: Any, envelope: object, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to the hook; without it MAIL is refused
        self._server.sessions += 1
        return responses

    async def handle_RCPT(self, server: object, session: object, envelope: Any, address: str, options: Any) -> str:
        reply = self._server.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self._server._data_replies:
            return self._server._data_replies.popleft()
        data = bytes(envelope.original_content or envelope.content)
        over_tls = getattr(session, "ssl", None) is not None
        self._server.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), data, over_tls=over_tls))
        return "250 Message accepted for delivery"
