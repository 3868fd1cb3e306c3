"""Email over SMTP: one thread per alert, a text and an HTML part rendered from templates.

The first message about an alert (kind `firing`) has a Message-ID derived from the alert's fingerprint and
start time, `<fingerprint.startsAt@llmcost>`, so a retried first message keeps its identity; every later
message replies to it (`In-Reply-To` and `References`) with the same subject, which mail clients need to
keep one thread. The reference returned is `{"message_id": <that root Message-ID>}`.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from alerting.escaping import sanitize_header
from alerting.model import Alert, DeliveryResult, Notification, NotificationKind
from alerting.notify.base import one_line, redact
from alerting.notify.templating import render

# Non-ASCII bodies go out quoted-printable or base64, so no server needs 8BITMIME.
POLICY = SMTP.clone(cte_type="7bit")
MESSAGE_ID_DOMAIN = "llmcost"

_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def thread_root_id(alert: Alert) -> str:
    """Return the Message-ID of the first mail about `alert`, which every later mail replies to."""
    return f"<{alert.fingerprint}.{int(alert.starts_at.timestamp())}@{MESSAGE_ID_DOMAIN}>"


def _root_id(notification: Notification) -> str:
    stored = (notification.reference or {}).get("message_id")
    if isinstance(stored, str) and _MESSAGE_ID.fullmatch(stored):
        return stored
    return thread_root_id(notification.alert)


def _message_id(notification: Notification, root: str) -> str:
    if notification.kind is NotificationKind.FIRING:
        return root
    alert = notification.alert
    if notification.outbox_id is not None:  # stable across retries, so duplicates can be recognised
        started = int(alert.starts_at.timestamp())
        ident = f"{alert.fingerprint}.{started}.{notification.kind.value}.{notification.outbox_id}"
        return f"<{ident}@{MESSAGE_ID_DOMAIN}>"
    return make_msgid(idstring=f"{alert.fingerprint}.{notification.kind.value}", domain=MESSAGE_ID_DOMAIN)


def build_email(notification: Notification, *, from_addr: str, to: Sequence[str], now: datetime) -> EmailMessage:
    """Build the complete mail for a notification: thread headers, a text part and an HTML alternative."""
    root = _root_id(notification)
    message = EmailMessage(policy=POLICY)
    message["Subject"] = sanitize_header(render("email.subject", notification), limit=250)
    message["From"] = from_addr
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = _message_id(notification, root)
    if notification.kind is not NotificationKind.FIRING:
        message["In-Reply-To"] = root
        message["References"] = root
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["X-LLMCost-Fingerprint"] = sanitize_header(notification.alert.fingerprint)
    message["X-LLMCost-Notification"] = notification.kind.value
    message.set_content(render("email.txt", notification) + "\n")
    message.add_alternative(render("email.html", notification) + "\n", subtype="html")
    return message


def _smtp_reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {one_line(text, 200)}"


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr}: {_smtp_reply(code, reply)}" for addr, (code, reply) in recipients.items())


class EmailNotifier:
    """Sends alert mail through an SMTP relay (optionally STARTTLS and login)."""

    channel = "email"

    def __init__(
        self,
        *,
        smtp_host: str,
        from_addr: str,
        to: Sequence[str],
        smtp_port: int = 587,
        starttls: bool = True,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not to:
            raise ValueError("email notifier needs at least one recipient")
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.from_addr = from_addr
        self.to = list(to)
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._now = now

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EmailNotifier:
        """Build from the `notifications.email` config (secrets resolved)."""
        missing = [key for key in ("smtp_host", "from", "to") if not config.get(key)]
        if missing:
            raise ValueError(f"notifications.email: missing {', '.join(missing)}")
        to = config["to"]
        return cls(
            smtp_host=str(config["smtp_host"]),
            smtp_port=int(config.get("smtp_port", 587)),
            starttls=bool(config.get("starttls", True)),
            username=config.get("username") or None,
            password=config.get("password") or None,
            from_addr=str(config["from"]),
            to=[to] if isinstance(to, str) else [str(addr) for addr in to],
            timeout=float(config.get("timeout_seconds", 10.0)),
        )

    def send(self, notification: Notification) -> DeliveryResult:
        """Send one mail; see the module docstring for threading."""
        message = build_email(notification, from_addr=self.from_addr, to=self.to, now=self._now())
        reference = {"message_id": _root_id(notification)}
        try:
            refused = self._deliver(message)
        except smtplib.SMTPRecipientsRefused as error:
            text = self._redact(f"smtp: all recipients refused: {_refusals(error.recipients)}")
            # Only a greylisting-style 4xx for everyone is worth another try.
            if all(400 <= code < 500 for code, _ in error.recipients.values()):
                return DeliveryResult.retry(text)
            return DeliveryResult.fail(text)
        except smtplib.SMTPResponseException as error:  # sender refused, data refused, auth failed, 421 …
            text = self._redact(f"smtp: {type(error).__name__}: {_smtp_reply(error.smtp_code, error.smtp_error)}")
            if 500 <= error.smtp_code < 600:
                return DeliveryResult.fail(text)
            return DeliveryResult.retry(text)
        except smtplib.SMTPServerDisconnected as error:
            return DeliveryResult.retry(self._redact(f"smtp: server disconnected: {error}"))
        except smtplib.SMTPException as error:  # no STARTTLS, no usable AUTH method: configuration
            return DeliveryResult.fail(self._redact(f"smtp: {type(error).__name__}: {error}"))
        except ssl.SSLCertVerificationError as error:
            return DeliveryResult.fail(self._redact(f"smtp: TLS certificate rejected: {error}"))
        except OSError as error:  # refused, timed out, unreachable, DNS
            return DeliveryResult.retry(self._redact(f"smtp: {type(error).__name__}: {error}"))
        if refused:
            warning = self._redact(f"smtp: some recipients refused: {_refusals(refused)}")
            return DeliveryResult.sent(reference, warning=warning)
        return DeliveryResult.sent(reference)

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password or "")
            return smtp.send_message(message)

    def _redact(self, text: str) -> str:
        return redact(text, [self._password])
