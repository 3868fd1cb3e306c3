"""Email over SMTP: one thread per alert, a text and an HTML part rendered from templates.

Sessions are kept open for the next mail (checked with NOOP first, dropped after
`IDLE_REUSE_SECONDS`), since a burst of alerts would otherwise open one SMTP session per mail.

The first message about an alert (kind `firing`) has a Message-ID derived from the alert's fingerprint and
start time, `<fingerprint.startsAt@domain>`, so a retried first message keeps its identity; every later
message replies to it (`In-Reply-To` and `References`) with the same subject, which mail clients need to
keep one thread. The reference returned is `{"message_id": <that root Message-ID>}`. The domain is the
`from` address's (`message_id_domain`): from the config alone, so it is the same in every process and
after a restart.

An alert listed in a grouped mail ("5 instances of budget … firing", `send_digest`) has no thread of its
own: its reminder, its acknowledgement and its resolve reply in the grouped mail's thread, under that
mail's subject, as the Slack notifier replies in the grouped message's thread (one problem, one thread),
and so do the grouped mails of reminders, acknowledgements and resolves of alerts one grouped mail listed
(`GROUP_THREAD_KINDS`).

Recipients are settled one by one: when the relay defers some (4xx, e.g. a full mailbox) and accepts or
refuses for good (5xx) the others, the attempt is retried for the deferred ones only
(`DeliveryResult.settled_recipients`, kept with the outbox rows, a grouped mail's too), so nobody gets
the mail twice and nobody deferred goes without it. Refusals for good alone are reported as a warning on
a sent mail.
"""

from __future__ import annotations

import re
import select
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32, compat32
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from alerting.model import Alert, DeliveryResult, Notification, NotificationKind
from alerting.notify.base import one_line, redact
from alerting.notify.digest import GROUP_THREAD_KINDS, Digest
from alerting.notify.templating import render
from alerting.notify.text_limits import sanitize_header

# Non-ASCII bodies go out quoted-printable, so no server needs 8BITMIME; lines end in CRLF on the wire.
_UTF8_QP: Any = Charset("utf-8")  # Any: typeshed's MIMEText takes only a charset name, the code a Charset too
_UTF8_QP.header_encoding = QP
_UTF8_QP.body_encoding = QP
WIRE_POLICY = compat32.clone(linesep="\r\n")
"""The standard library's compat32 with CRLF line ends: what `flatten` writes, byte for byte."""
MESSAGE_ID_DOMAIN = "llmcost"
"""The Message-ID domain when neither `from` nor `external_url` gives one (once that of every mail)."""
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[^\[\]\\\s]+\]")

_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


INSECURE_AUTH = (
    "notifications.email: SMTP login without STARTTLS would send the password in clear; "
    "set starttls: true, or allow_insecure_auth: true for a relay on a trusted network"
)


NO_STARTTLS_FIX = (
    "for a relay without TLS set starttls: false (and no username, or allow_insecure_auth: true); "
    "for one speaking TLS from the first byte (port 465) set implicit_tls: true"
)


_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


def split_addresses(entries: Sequence[str]) -> tuple[list[str], list[str]]:
    """The mail addresses in config entries, each one address or several separated by commas.

    Returns the addresses (each as written, display name included) and what is not an address: the
    entry, or in an entry of several addresses each part that is not one. A `to` written as one line,
    `a@example.com, b@example.com`, is a list people write as they would in a mail client: read as one
    address, everyone but the first would get nothing.
    """
    addresses: list[str] = []
    bad: list[str] = []
    for entry in entries:
        found, wrong = entry_addresses(entry)
        addresses.extend(found)
        bad.extend(part for _, part in wrong)
    return addresses, bad


def entry_addresses(entry: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The addresses in one config entry, and each part that is not one with its place in the entry.

    The place counts from 1 among the entry's comma-separated addresses, 0 when the whole entry is at
    fault (one address, or nothing an address could be read from), so a problem can name the entry as
    the user wrote it and the address in it.
    """
    parsed = getaddresses([entry])
    wrong = [(n, address) for n, (_, address) in enumerate(parsed, 1) if not _ADDRESS.fullmatch(address)]
    if len(parsed) > 1 and wrong and len(wrong) < len(parsed):
        return [], wrong  # name the part at fault, not the whole line
    if not parsed or wrong:
        return [], [(0, entry)]
    if len(parsed) == 1:
        return [entry.strip()], []
    return [formataddr(pair) for pair in parsed], []


SMTPS_PORT = 465
"""The port of SMTP over TLS from the first byte (RFC 8314); a relay there never answers a plain greeting."""


def implicit_tls(config: Mapping[str, Any]) -> bool:
    """Whether the `notifications.email` config asks for TLS from the first byte (SMTPS).

    `implicit_tls` says so; unset, it is true on port 465, as Alertmanager and mail clients read that port.
    """
    value = config.get("implicit_tls")
    if isinstance(value, bool):
        return value
    return config.get("smtp_port") == SMTPS_PORT


def message_id_domain(from_addr: str, external_url: str | None = None) -> str:
    """The domain of llmcost's Message-IDs: the `from` address's, else `external_url`'s host, else "llmcost".

    RFC 5322 wants a domain right of the "@" (spam filters score a bare word). It comes from the config
    alone, never this host's name, so a mail retried by another process or after a restart keeps its
    Message-ID and replies still find their thread.
    """
    _, at, sender_domain = parseaddr(from_addr)[1].rpartition("@")
    for candidate in (sender_domain if at else "", urlsplit(external_url or "").hostname or ""):
        try:
            domain = candidate.strip().lower().encode("idna").decode("ascii")  # a header is ASCII
        except UnicodeError:
            continue
        if _DOMAIN.fullmatch(domain):
            return domain
    return MESSAGE_ID_DOMAIN


def _utcnow() -> datetime:
    return datetime.now(UTC)


def thread_root_id(alert: Alert, domain: str = MESSAGE_ID_DOMAIN) -> str:
    """Return the Message-ID of the first mail about `alert`, which every later mail replies to."""
    return f"<{alert.fingerprint}.{int(alert.starts_at.timestamp())}@{domain}>"


def _root_id(notification: Notification, domain: str) -> str:
    # The stored root first: a thread begun under another domain (before an upgrade, or a changed
    # `from`) goes on under its own first Message-ID.
    stored = (notification.reference or {}).get("message_id")
    if isinstance(stored, str) and _MESSAGE_ID.fullmatch(stored):
        return stored
    return thread_root_id(notification.alert, domain)


def _thread_subject(notification: Notification) -> str | None:
    """The subject stored for the alert's own mail thread, if any: its replies keep it.

    Stored for threads an older release began under another subject (`0013_mail_thread_subject`): mail
    clients split a thread whose subject changes, and today's template names a budget's levels by family.
    """
    subject = (notification.reference or {}).get("subject")
    return subject if isinstance(subject, str) and subject else None


def _group_thread(notification: Notification) -> tuple[str, str] | None:
    """The grouped mail (Message-ID, subject) in whose thread this alert's reminder, resolve or ack is told.

    None unless the alert is listed in a grouped mail (its reference is the digest's, see
    `alerting.gateway.grouping.member_reference`): its own root Message-ID was never sent, so a reply to it
    would start a thread of its own per instance. The subject is "" for grouped mails sent before it was kept.
    """
    if notification.kind not in GROUP_THREAD_KINDS:
        return None
    digest = (notification.reference or {}).get("digest")
    if not isinstance(digest, Mapping):
        return None
    message_id, subject = digest.get("message_id"), digest.get("subject")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        return None
    return message_id, subject if isinstance(subject, str) else ""


def _shared_group_thread(digest: Digest) -> tuple[str, str] | None:
    """The one grouped mail every alert of a reminder (resolve, acknowledgement) digest is listed in, if any."""
    if digest.kind not in GROUP_THREAD_KINDS or not digest.group:
        return None
    threads = {_group_thread(n) for n in digest.notifications}
    return threads.pop() if len(threads) == 1 and None not in threads else None


def _reply_in(message: Message, thread: tuple[str, str]) -> None:
    """Make `message` a reply in the grouped mail `thread` (Message-ID, subject): its headers and subject."""
    root, subject = thread
    message["In-Reply-To"] = root
    message["References"] = root
    if subject:  # the grouped mail's own subject: mail clients split threads when it changes
        del message["Subject"]
        message["Subject"] = _header(sanitize_header(f"Re: {subject}", limit=250))


def _message_id(notification: Notification, root: str, domain: str) -> str:
    if notification.kind is NotificationKind.FIRING:
        return root
    alert = notification.alert
    if notification.outbox_id is not None:  # stable across retries, so duplicates can be recognised
        started = int(alert.starts_at.timestamp())
        ident = f"{alert.fingerprint}.{started}.{notification.kind.value}.{notification.outbox_id}"
        return f"<{ident}@{domain}>"
    return make_msgid(idstring=f"{alert.fingerprint}.{notification.kind.value}", domain=domain)


def build_email(
    notification: Notification,
    *,
    from_addr: str,
    to: Sequence[str],
    now: datetime,
    domain: str | None = None,
    acknowledge_in: Sequence[str] | None = None,
) -> Message:
    """Build the complete mail for a notification: thread headers, a text part and an HTML alternative.

    Built with the `compat32` MIME classes: `EmailMessage` with a modern policy parses every header
    through the header registry, ~10x slower, and mail is the costliest step of a fan-out. Header values
    are sanitised (no CR/LF), non-ASCII is encoded (RFC 2047 headers, quoted-printable bodies).
    `domain`: of the Message-IDs (default: `message_id_domain(from_addr)`). `acknowledge_in`: the channels
    (`Slack`, `PagerDuty`) where the alert reached and an acknowledgement there reaches llmcost (None: both).
    """
    domain = domain or message_id_domain(from_addr)
    root = _root_id(notification, domain)
    message = MIMEMultipart("alternative")
    message["Subject"] = _header(sanitize_header(render("email.subject", notification), limit=250))
    message["From"] = _addresses([from_addr])
    message["To"] = _addresses(to)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = _message_id(notification, root, domain)
    group = _group_thread(notification)
    if group is not None:
        _reply_in(message, group)
    elif notification.kind is not NotificationKind.FIRING:
        message["In-Reply-To"] = root
        message["References"] = root
        subject = _thread_subject(notification)
        if subject is not None:
            del message["Subject"]
            message["Subject"] = _header(sanitize_header(f"Re: {subject}", limit=250))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["X-LLMCost-Fingerprint"] = _header(sanitize_header(notification.alert.fingerprint))
    message["X-LLMCost-Notification"] = notification.kind.value
    extra = {} if acknowledge_in is None else {"acknowledge_in": list(acknowledge_in)}
    message.attach(MIMEText(render("email.txt", notification, **extra) + "\n", "plain", _UTF8_QP))
    message.attach(MIMEText(render("email.html", notification, **extra) + "\n", "html", _UTF8_QP))
    return message


def digest_subject(digest: Digest) -> str:
    """The subject of a grouped mail (header-safe)."""
    return sanitize_header(f"[llmcost] {digest.title()}", limit=250)


def build_digest_email(
    digest: Digest, *, from_addr: str, to: Sequence[str], now: datetime, domain: str | None = None
) -> Message:
    """One mail for a digest; its Message-ID derives from the digest key, so a retried send is recognisable."""
    domain = domain or message_id_domain(from_addr)
    message = MIMEMultipart("alternative")
    message["Subject"] = _header(digest_subject(digest))
    message["From"] = _addresses([from_addr])
    message["To"] = _addresses(to)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = f"<{digest.key}.{digest.lead_id}@{domain}>"
    thread = _shared_group_thread(digest)
    if thread is not None:
        _reply_in(message, thread)
    message["Auto-Submitted"] = "auto-generated"
    message["X-LLMCost-Digest"] = _header(sanitize_header(digest.key))
    message.attach(MIMEText(digest.text() + "\n", "plain", _UTF8_QP))
    return message


def _header(value: str) -> Any:
    """ASCII as is; anything else as a `Header`, which the compat32 generator RFC 2047-encodes and folds.

    Typed Any: typeshed declares header values as `str`, though `Message` takes `Header` objects.
    """
    return value if value.isascii() else Header(value, _UTF8_QP)


def _addresses(addresses: Sequence[str]) -> str:
    """Addresses for a header, display names RFC 2047-encoded when they are not ASCII."""
    return ", ".join(formataddr(parseaddr(sanitize_header(a)), charset="utf-8") for a in addresses)


class _FastHeaders(Compat32):
    """`WIRE_POLICY`, writing short single-line ASCII headers as they are.

    compat32 folds every header through an `email.header.Header`, ~50 µs each and ~9 % of the
    gateway's CPU in a fan-out, though a short ASCII value comes out unchanged. `fold_binary` is the
    documented policy hook the generator calls for each header (`email.policy.Policy`), so those are
    written directly (the same bytes as `WIRE_POLICY`: a test compares them); the rest still go through
    compat32.
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        """The header line `name: value` with the line end, folded and encoded when it needs to be."""
        if (
            type(value) is str
            and value.isascii()
            and len(name) + len(value) + 2 <= (self.max_line_length or 78)
            and "\r" not in value
            and "\n" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_FAST_WIRE_POLICY = _FastHeaders(linesep="\r\n")


def flatten(message: Message) -> bytes:
    """The message as sent: CRLF line ends, 7-bit (quoted-printable parts, encoded headers)."""
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_FAST_WIRE_POLICY).flatten(message)
    return out.getvalue()


def _smtp_reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {one_line(text, 200)}"


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr}: {_smtp_reply(code, reply)}" for addr, (code, reply) in recipients.items())


IDLE_REUSE_SECONDS = 30.0
"""An idle SMTP session is reused for this long, well inside relays' idle timeouts (RFC 5321: 5 min)."""
MAX_IDLE_CONNECTIONS = 16
"""Idle sessions kept per notifier (one per concurrent sender is enough)."""


def _still_open(smtp: smtplib.SMTP) -> bool:
    """False when the relay closed the session or sent something unasked (it only does so to end it)."""
    sock = smtp.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close(smtp: smtplib.SMTP) -> None:
    """End a session politely if the relay still listens, else just drop the socket."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


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
        allow_insecure_auth: bool = False,
        implicit_tls: bool = False,
        external_url: str | None = None,
        acknowledge_in: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`implicit_tls`: TLS from the first byte (SMTPS, port 465) instead of STARTTLS; `starttls` is then moot.

        `external_url`: llmcost's public URL, whose host names the Message-IDs when `from_addr` has no domain.
        `acknowledge_in`: per severity, the channels a mail may tell people to acknowledge in (`Slack`,
        `PagerDuty`): those the severity is routed to and whose acknowledgements llmcost verifies (None: both).
        """
        if not to:
            raise ValueError("email notifier needs at least one recipient")
        if username and not starttls and not implicit_tls and not allow_insecure_auth:
            raise ValueError(INSECURE_AUTH)
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.from_addr = from_addr
        self.to = list(to)
        self.starttls = starttls and not implicit_tls
        self.implicit_tls = implicit_tls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._now = now
        self._envelope_from = parseaddr(from_addr)[1] or from_addr
        self.message_id_domain = message_id_domain(from_addr, external_url)
        self._envelope_to = [parseaddr(addr)[1] or addr for addr in self.to]
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._idle_lock = threading.Lock()
        # smtplib would otherwise resolve it (getfqdn, possibly a DNS query) for every mail's EHLO.
        self._local_hostname = socket.getfqdn()
        self._acknowledge_in = acknowledge_in

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EmailNotifier:
        """Build from the `notifications.email` config (secrets resolved; `external_url` added by the gateway)."""
        missing = [key for key in ("smtp_host", "from", "to") if not config.get(key)]
        if missing:
            raise ValueError(f"notifications.email: missing {', '.join(missing)}")
        to, bad = split_addresses([config["to"]] if isinstance(config["to"], str) else list(config["to"]))
        if bad:
            raise ValueError(f"notifications.email.to: not mail addresses: {bad}")
        return cls(
            smtp_host=str(config["smtp_host"]),
            smtp_port=int(config.get("smtp_port", 587)),
            starttls=bool(config.get("starttls", True)),
            username=config.get("username") or None,
            password=config.get("password") or None,
            from_addr=str(config["from"]),
            to=to,
            timeout=float(config.get("timeout_seconds", 10.0)),
            allow_insecure_auth=config.get("allow_insecure_auth") is True,
            implicit_tls=implicit_tls(config),
            external_url=config.get("external_url") or None,
            acknowledge_in=config.get("acknowledge_in"),
        )

    def send(self, notification: Notification) -> DeliveryResult:
        """Send one mail; see the module docstring for threading and for recipients that defer it."""
        domain = self.message_id_domain
        places = None if self._acknowledge_in is None else self._acknowledge_in.get(notification.alert.severity, ())
        message = build_email(
            notification, from_addr=self.from_addr, to=self.to, now=self._now(), domain=domain, acknowledge_in=places
        )
        reference = {"message_id": _root_id(notification, domain)}
        subject = _thread_subject(notification)
        if subject is not None:
            reference["subject"] = subject
        if _group_thread(notification) is not None:
            # Told in its grouped mail's thread: the alert stays listed there (its next news goes there too).
            reference = dict(notification.reference or {})
        settled = notification.settled_recipients
        recipients = [addr for addr in self._envelope_to if addr not in settled]
        if not recipients:  # settled by earlier attempts (a retry recorded after its last recipient took it)
            return DeliveryResult.sent(reference)
        return self._send_message(message, reference, recipients, settled=settled)

    def send_digest(self, digest: Digest) -> DeliveryResult:
        """Send one plain-text mail listing the digest's notifications (a thread of its own).

        Reminders, acknowledgements or resolves of alerts one grouped mail listed reply in that mail's thread instead,
        and keep it as their reference. A new grouped mail's reference keeps its subject for those replies.

        Recipients are settled as for one alert's mail, per row: the retry skips those who already got
        every row it lists (a digest that gained rows meanwhile goes to everyone: shown twice, never lost).
        """
        message = build_digest_email(
            digest, from_addr=self.from_addr, to=self.to, now=self._now(), domain=self.message_id_domain
        )
        settled = (
            set.intersection(*(set(n.settled_recipients) for n in digest.notifications))
            if digest.notifications
            else set()
        )
        recipients = [addr for addr in self._envelope_to if addr not in settled]
        thread = _shared_group_thread(digest)
        if thread is not None:
            reference = {"message_id": thread[0], "subject": thread[1]}
        else:
            reference = {"message_id": str(message["Message-ID"]), "subject": digest_subject(digest)}
        if not recipients:
            return DeliveryResult.sent(reference)
        done = [addr for addr in self._envelope_to if addr in settled]
        return self._send_message(message, reference, recipients, settled=done)

    def _send_message(
        self,
        message: Message,
        reference: dict[str, Any],
        recipients: Sequence[str],
        *,
        settled: Sequence[str] = (),
    ) -> DeliveryResult:
        """Send `message` to `recipients` (envelope addresses) and classify the outcome.

        `settled`: recipients earlier attempts settled. Recipients that defer (4xx) while others accept
        are retried alone: the result names everyone settled so far, which the outbox keeps with the rows.
        """
        try:
            refused = self._deliver(message, recipients)
        except smtplib.SMTPRecipientsRefused as error:
            text = self._redact(f"smtp: all recipients refused: {_refusals(error.recipients)}")
            deferred = {addr for addr, (code, _) in error.recipients.items() if 400 <= code < 500}
            if len(deferred) == len(error.recipients):  # greylisting-style 4xx for everyone: try again
                return DeliveryResult.retry(text)
            if deferred:  # those refused for good are settled; the deferred are tried again
                done = [*settled, *(addr for addr in recipients if addr not in deferred)]
                return DeliveryResult.retry(text, settled_recipients=done)
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
            text = self._redact(f"smtp: some recipients refused: {_refusals(refused)}")
            deferred = {addr for addr, (code, _) in refused.items() if 400 <= code < 500}
            if deferred:
                # The accepted ones (and those refused for good) are settled; only the deferred retry.
                done = [*settled, *(addr for addr in recipients if addr not in deferred)]
                return DeliveryResult.retry(text, settled_recipients=done)
            return DeliveryResult.sent(reference, warning=text)
        return DeliveryResult.sent(reference)

    def _deliver(self, message: Message, recipients: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        data = flatten(message)
        smtp = self._reusable_connection()
        if smtp is not None:
            try:
                return self._send_on(smtp, data, recipients)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                pass  # the reused session was dead (and is closed): send on a new one
        return self._send_on(self._connect(), data, recipients)

    def _send_on(self, smtp: smtplib.SMTP, data: bytes, recipients: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Send on `smtp`, keeping the session for reuse, or closing it if anything went wrong."""
        try:
            refused = smtp.sendmail(self._envelope_from, list(recipients), data)
        except BaseException:
            _close(smtp)
            raise
        self._keep(smtp)
        return refused

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self.implicit_tls:
            context = self._ssl_context or ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(
                self.smtp_host,
                self.smtp_port,
                local_hostname=self._local_hostname,
                timeout=self.timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                self.smtp_host, self.smtp_port, local_hostname=self._local_hostname, timeout=self.timeout
            )
        try:
            if self.starttls:
                try:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                except smtplib.SMTPNotSupportedError:
                    # smtplib's "STARTTLS extension not supported by server." left the reader to guess the fix.
                    raise smtplib.SMTPNotSupportedError(
                        f"the relay at {self.smtp_host}:{self.smtp_port} offers no STARTTLS, which "
                        f"notifications.email.starttls (true by default) requires: {NO_STARTTLS_FIX}"
                    ) from None
            if self.username:
                smtp.login(self.username, self._password or "")
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _reusable_connection(self) -> smtplib.SMTP | None:
        """An idle session from an earlier mail that the relay has not closed, or None.

        Reusing a session saves the connect, greeting, EHLO, STARTTLS and login of every mail (most of
        a mail's cost in a fan-out). A relay may have dropped it meanwhile. An idle session has nothing
        to read, so a readable socket means the relay said goodbye (`421` and close, or just close):
        that costs no round trip, unlike a NOOP. A session that died silently fails at MAIL FROM,
        before any of the message is sent; `_deliver` then sends on a new session.
        """
        while True:
            with self._idle_lock:
                if not self._idle:
                    return None
                smtp, since = self._idle.pop()
            if time.monotonic() - since <= IDLE_REUSE_SECONDS and _still_open(smtp):
                return smtp
            _close(smtp)

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((smtp, time.monotonic()))
                return
        _close(smtp)

    def close(self) -> None:
        """Close the idle sessions kept for reuse."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for smtp, _ in idle:
            _close(smtp)

    def _redact(self, text: str) -> str:
        return redact(text, [self._password])
