"""A loopback SMTP relay (aiosmtpd) recording accepted mail, with scripted refusals, AUTH and STARTTLS."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cached_property
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


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
    (PLAIN/LOGIN, offered without TLS); a client that does not log in is still served. `tls_context`
    requires STARTTLS, or with `implicit_tls` speaks TLS from the first byte (as on port 465). `sessions` counts
    EHLO greetings (one per client session) and `sessions_closed` the sessions that ended; `idle_timeout` makes
    the server drop idle sessions, as relays do.
    """

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        idle_timeout: float | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.messages: list[ReceivedMail] = []
        self.sessions = 0
        self.sessions_closed = 0
        self.idle_timeout = idle_timeout
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.refuse: dict[str, str] = {}
        self.credentials = dict(credentials or {})
        self._data_replies: deque[str] = deque()
        self._controller: _LoopbackController | None = None
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._controller is not None, "server not started"
        return int(self._controller.port)

    def email_settings(self) -> dict[str, Any]:
        """`notifications.email` of an llmcost config sending plain SMTP (no STARTTLS) to this server."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "starttls": False,
            "from": "llmcost@example.com",
            "to": ["oncall@example.com"],
        }

    def enqueue_data_reply(self, reply: str) -> None:
        self._data_replies.append(reply)

    def start(self) -> Self:
        options: dict[str, Any] = {}
        if self.credentials:
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        if self.idle_timeout is not None:
            options["timeout"] = self.idle_timeout
        if self.tls_context is not None and self.implicit_tls:  # TLS from the first byte (port 465)
            options.update(ssl_context=self.tls_context)
        elif self.tls_context is not None:  # offers STARTTLS and refuses mail before it
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
        # aiosmtpd notes only a STARTTLS switch; a server with implicit TLS speaks nothing else.
        over_tls = self._server.implicit_tls or getattr(session, "ssl", None) is not None
        self._server.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), data, over_tls=over_tls))
        return "250 Message accepted for delivery"
