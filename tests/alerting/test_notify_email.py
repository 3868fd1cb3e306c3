"""EmailNotifier against a real aiosmtpd SMTP server on loopback."""

from __future__ import annotations

import gc
import ssl
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.gateway.config import parse_settings
from alerting.model import Actor, Alert, Notification, NotificationKind, fingerprint
from alerting.notify import EmailNotifier, Notifier, build_notifiers
from tests.support.recording_servers import SMTPServer, unused_port
from tests.support.waiting import wait_until

STARTS_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC)


def make_alert(**changes: Any) -> Alert:
    labels = changes.pop("labels", {"budget": "team-a-monthly", "scope": "project", "key": "team-a"})
    fields: dict[str, Any] = {
        "id": 42,
        "fingerprint": fingerprint("LLMBudgetCritical", labels),
        "alertname": "LLMBudgetCritical",
        "labels": labels,
        "annotations": {"summary": "Budget team-a-monthly has used 96% of its $500.00 limit"},
        "severity": "critical",
        "starts_at": STARTS_AT,
    }
    return Alert(**{**fields, **changes})


def notify(kind: str, reference: dict[str, Any] | None = None, **changes: Any) -> Notification:
    actor = changes.pop("actor", None)
    outbox_id = changes.pop("outbox_id", None)
    return Notification(
        kind=NotificationKind(kind),
        alert=make_alert(**changes),
        channel="email",
        reference=reference,
        actor=actor,
        outbox_id=outbox_id,
    )


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


_opened: list[EmailNotifier] = []


@pytest.fixture(autouse=True)
def _close_notifiers():
    """Notifiers keep SMTP sessions open for reuse; close them when the test ends."""
    yield
    while _opened:
        _opened.pop().close()


def make_notifier(smtp: SMTPServer, **options: Any) -> EmailNotifier:
    settings: dict[str, Any] = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "starttls": False,
        "from_addr": "llmcost@example.com",
        "to": ["oncall@example.com", "finance@example.com"],
        "timeout": 5,
        "now": lambda: NOW,
    }
    notifier = EmailNotifier(**{**settings, **options})
    _opened.append(notifier)
    return notifier


@pytest.fixture
def notifier(smtp):
    return make_notifier(smtp)


def test_the_notifier_fulfils_the_protocol(notifier):
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "email"


def test_a_firing_alert_is_mailed_as_text_and_html(smtp, notifier):
    alert_fingerprint = make_alert().fingerprint
    result = notifier.send(notify("firing"))

    root = f"<{alert_fingerprint}.1714564800@example.com>"  # the domain of `from`
    assert result.ok and result.reference == {"message_id": root}
    [mail] = smtp.messages
    assert mail.mail_from == "llmcost@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "finance@example.com"]
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"].startswith("LLMBudget (budget=")  # a budget's levels share one thread
    assert message["Message-ID"] == root
    assert message["In-Reply-To"] is None
    assert message["Date"].datetime == NOW
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Budget team-a-monthly has used 96%" in mail.part("text/plain")
    assert "Budget team-a-monthly has used 96%" in mail.part("text/html")
    assert "llmcost alerts ack 42" in mail.part("text/plain")


def test_later_mails_about_an_alert_stay_in_its_thread(smtp, notifier):
    first = notifier.send(notify("firing"))
    notifier.send(notify("acknowledged", first.reference, actor=Actor(by="alice", via="slack")))
    notifier.send(notify("resolved", first.reference, resolved_at=datetime(2024, 5, 1, 13, 0, tzinfo=UTC)))

    firing, acked, resolved = (m.message for m in smtp.messages)
    root = firing["Message-ID"]
    for reply in (acked, resolved):
        assert reply["In-Reply-To"] == root
        assert reply["References"] == root
        assert reply["Message-ID"] not in (root, None)
        assert reply["Subject"] == "Re: " + firing["Subject"]
    assert acked["Message-ID"] != resolved["Message-ID"]
    assert "Acknowledged by alice via slack" in smtp.messages[1].part("text/plain")
    assert "Resolved at 2024-05-01 13:00 UTC" in smtp.messages[2].part("text/plain")


def test_the_thread_holds_without_a_stored_reference(smtp, notifier):
    first = notifier.send(notify("firing"))
    notifier.send(notify("resolved", None))

    assert smtp.messages[1].message["In-Reply-To"] == first.reference["message_id"]


def test_a_retried_mail_keeps_its_message_id(smtp, notifier):
    notifier.send(notify("repeat", outbox_id=7))
    notifier.send(notify("repeat", outbox_id=7))
    notifier.send(notify("repeat", outbox_id=8))

    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert ids[0] == ids[1] != ids[2]


def test_line_breaks_in_labels_neither_inject_headers_nor_stop_the_mail(smtp, notifier):
    labels = {"project": "evil\r\nBcc: victim@example.com\r\nX-Injected: yes", "user": "eve\nSubject: pwned"}
    result = notifier.send(notify("firing", labels=labels, alertname="Spike\r\nX-Evil: 1"))

    assert result.ok, result.error
    [mail] = smtp.messages
    assert mail.rcpt_tos == ["oncall@example.com", "finance@example.com"]
    headers = mail.data.split(b"\r\n\r\n", 1)[0]
    for injected in (b"\r\nBcc:", b"\r\nX-Injected:", b"\r\nX-Evil:", b"\r\nSubject: pwned"):
        assert injected not in headers
    assert mail.message["Bcc"] is None and mail.message["X-Injected"] is None
    assert len(mail.message.get_all("Subject")) == 1
    assert "\n" not in mail.message["Subject"] and "\r" not in mail.message["Subject"]
    assert "Bcc: victim@example.com" in mail.message["Subject"], "the text stays visible, flattened"


def test_html_in_annotations_is_escaped(smtp, notifier):
    annotations = {"summary": "<script>alert(1)</script>", "description": "<img src=x onerror=alert(2)>"}
    notifier.send(notify("firing", annotations=annotations, labels={"project": "<b>bold</b>"}))

    html = smtp.messages[0].part("text/html")
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" in smtp.messages[0].part("text/plain"), "plain text shows it as written"


def test_javascript_links_never_become_links(smtp, notifier):
    notifier.send(notify("firing", annotations={"runbook_url": "javascript:alert(1)"}))

    html = smtp.messages[0].part("text/html")
    assert "javascript:" not in html


def test_non_ascii_text_arrives_intact(smtp, notifier):
    labels = {"project": "Zürich 🚀"}
    notifier.send(notify("firing", labels=labels, annotations={"summary": "Ausgaben über Budget — 💸"}))

    mail = smtp.messages[0]
    assert "Zürich 🚀" in mail.message["Subject"]
    assert "Ausgaben über Budget — 💸" in mail.part("text/plain")
    assert mail.data.isascii(), "7-bit safe: no server needs 8BITMIME"


def test_all_recipients_refused_is_final(smtp, notifier):
    smtp.refuse = {
        "oncall@example.com": "550 5.1.1 No such user",
        "finance@example.com": "550 5.1.1 No such user",
    }
    result = notifier.send(notify("firing"))

    assert not result.ok and not result.retryable
    assert "oncall@example.com" in result.error and "550" in result.error
    assert smtp.messages == []


def test_recipients_deferred_with_4xx_are_retryable(smtp, notifier):
    smtp.refuse = {
        "oncall@example.com": "450 4.2.1 Mailbox busy, try later",
        "finance@example.com": "451 4.7.1 Greylisted",
    }
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable


def test_some_recipients_refused_still_counts_as_sent(smtp, notifier):
    smtp.refuse = {"finance@example.com": "550 5.1.1 No such user"}
    result = notifier.send(notify("firing"))

    assert result.ok, "retrying would mail oncall@ twice"
    assert "finance@example.com" in result.error
    assert smtp.messages[0].rcpt_tos == ["oncall@example.com"]


def test_a_deferred_recipient_is_retried_alone(smtp, notifier):
    smtp.refuse = {"finance@example.com": "451 4.7.1 Greylisted"}
    first = notifier.send(notify("firing", outbox_id=7))
    assert not first.ok and first.retryable and "finance@example.com: 451" in first.error
    assert first.settled_recipients == ("oncall@example.com",)

    smtp.refuse = {}
    retried = notifier.send(replace(notify("firing", outbox_id=7), settled_recipients=first.settled_recipients))
    assert retried.ok
    assert [m.rcpt_tos for m in smtp.messages] == [["oncall@example.com"], ["finance@example.com"]]
    assert smtp.messages[0].message["Message-ID"] == smtp.messages[1].message["Message-ID"]


def test_a_recipient_refused_for_good_is_not_retried_with_a_deferred_one(smtp, notifier):
    smtp.refuse = {"oncall@example.com": "550 5.1.1 No such user", "finance@example.com": "452 4.2.2 Mailbox full"}
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert result.settled_recipients == ("oncall@example.com",)


def test_a_temporary_data_failure_is_retryable(smtp, notifier):
    smtp.enqueue_data_reply("451 4.3.0 Try again later")
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert "451" in result.error


def test_a_rejected_message_is_final(smtp, notifier):
    smtp.enqueue_data_reply("554 5.7.1 Message rejected as spam")
    result = notifier.send(notify("firing"))

    assert not result.ok and not result.retryable
    assert "554" in result.error


def test_a_server_that_is_down_is_retryable():
    notifier = EmailNotifier(
        smtp_host="127.0.0.1", smtp_port=unused_port(), starttls=False, from_addr="a@example.com", to=["b@example.com"]
    )
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert "ConnectionRefusedError" in result.error


def test_a_burst_of_mail_shares_one_smtp_session(smtp, notifier):
    for kind in ("firing", "acknowledged", "resolved"):
        assert notifier.send(notify(kind)).ok
    assert len(smtp.messages) == 3
    assert smtp.sessions == 1, "one session for the burst, not one per mail"


def test_mail_after_the_relay_dropped_the_idle_session_arrives_once():
    with SMTPServer(idle_timeout=0.3) as server:
        notifier = make_notifier(server)
        try:
            assert notifier.send(notify("firing")).ok
            wait_until(lambda: server.sessions_closed == 1, what="the relay closing the idle session (421 timeout)")
            result = notifier.send(notify("resolved"))
        finally:
            notifier.close()
        assert result.ok, result.error
        assert [m.message["X-LLMCost-Notification"] for m in server.messages] == ["firing", "resolved"]
        assert server.sessions == 2


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl CLI), and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=smtp.test"]
    subprocess.run(
        [*request, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def relay_tls(certificate) -> ssl.SSLContext:
    """The server side of STARTTLS for the test relay."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def tls_smtp(certificate):
    with SMTPServer(tls_context=relay_tls(certificate)) as server:
        yield server


def test_mail_goes_over_starttls_to_a_trusted_relay(tls_smtp, certificate):
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    notifier = make_notifier(tls_smtp, starttls=True, ssl_context=trusted)
    for kind in ("firing", "resolved"):
        result = notifier.send(notify(kind))
        assert result.ok, result.error
    notifier.close()  # now, before the relay stops: its side of a session left open is a ResourceWarning later
    assert [m.over_tls for m in tls_smtp.messages] == [True, True]
    assert "Budget team-a-monthly has used 96%" in tls_smtp.messages[0].part("text/plain")


def test_a_relay_speaking_tls_from_the_first_byte_gets_the_mail_and_the_login(certificate, monkeypatch):
    """Port 465 (SMTPS): TLS before the greeting, as many providers offer it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test relay as a system CA would be
    with SMTPServer(
        credentials={"alerts": "s3cret-passw0rd"}, tls_context=relay_tls(certificate), implicit_tls=True
    ) as relay:
        section = {
            "smtp_host": relay.host,
            "smtp_port": relay.port,
            "implicit_tls": True,
            "username": "alerts",
            "password": "s3cret-passw0rd",
            "from": "llmcost@example.com",
            "to": "oncall@example.com",
            "timeout_seconds": 2,
        }
        problems: list[str] = []
        settings = parse_settings({"notifications": {"email": section}}, Path("."), problems)
        assert problems == []
        notifier = build_notifiers(settings.channels)["email"]
        try:
            result = notifier.send(notify("firing"))
        finally:
            notifier.close()  # type: ignore[attr-defined]  # before the relay stops, or its side stays open
        assert result.ok, result.error
        assert [(m.rcpt_tos, m.over_tls) for m in relay.messages] == [(["oncall@example.com"], True)]


def test_port_465_means_tls_from_the_first_byte():
    config = {"smtp_host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com"}
    assert EmailNotifier.from_config({**config, "smtp_port": 465}).implicit_tls
    assert not EmailNotifier.from_config({**config, "smtp_port": 587}).implicit_tls
    assert not EmailNotifier.from_config({**config, "smtp_port": 465, "implicit_tls": False}).implicit_tls


# aiosmtpd (the test relay) leaves its side of the refused handshake for the garbage collector; the
# collection below keeps its ResourceWarning in this test instead of whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_relay_with_an_untrusted_certificate_gets_nothing(certificate):
    with SMTPServer(tls_context=relay_tls(certificate)) as relay:
        result = make_notifier(relay, starttls=True).send(notify("firing"))  # system CAs refuse self-signed

        assert not result.ok and not result.retryable, "a certificate problem is configuration, not an outage"
        assert "certificate" in result.error
        assert relay.messages == []
    gc.collect()


def test_starttls_required_but_not_offered_is_final(smtp):
    result = make_notifier(smtp, starttls=True).send(notify("firing"))

    assert not result.ok and not result.retryable
    # What to change, not smtplib's "STARTTLS extension not supported by server." alone (a local relay
    # tried as docs/alerting.md suggests, with starttls left at its default, dead-lettered with that).
    assert result.error == (
        f"smtp: SMTPNotSupportedError: the relay at {smtp.host}:{smtp.port} offers no STARTTLS, which "
        "notifications.email.starttls (true by default) requires: for a relay without TLS set starttls: false "
        "(and no username, or allow_insecure_auth: true); for one speaking TLS from the first byte (port 465) "
        "set implicit_tls: true"
    )
    assert smtp.messages == []


def test_login_with_the_right_password_delivers():
    with SMTPServer(credentials={"alerts": "s3cret-passw0rd"}) as smtp:
        result = make_notifier(smtp, username="alerts", password="s3cret-passw0rd", allow_insecure_auth=True).send(
            notify("firing")
        )
        assert result.ok, result.error
        assert len(smtp.messages) == 1


def test_a_wrong_password_is_final_and_never_shown():
    with SMTPServer(credentials={"alerts": "s3cret-passw0rd"}) as smtp:
        result = make_notifier(smtp, username="alerts", password="wr0ng-passw0rd", allow_insecure_auth=True).send(
            notify("firing")
        )
        assert not result.ok and not result.retryable
        assert "535" in result.error
        assert "wr0ng-passw0rd" not in result.error
        assert smtp.messages == []


def test_login_without_tls_is_refused_unless_allowed(smtp):
    with pytest.raises(ValueError, match="in clear"):
        make_notifier(smtp, username="alerts", password="s3cret-passw0rd")
    problems: list[str] = []
    section = {
        "smtp_host": "mail",
        "starttls": False,
        "username": "u",
        "password": "p",
        "from": "a@x.org",
        "to": "b@x.org",
    }
    parse_settings({"notifications": {"email": section}}, Path("."), problems)
    assert any("in clear" in p for p in problems), problems
    problems = []
    parse_settings({"notifications": {"email": {**section, "allow_insecure_auth": True}}}, Path("."), problems)
    assert not any("in clear" in p for p in problems), problems


def test_notifier_is_built_from_the_notifications_config(smtp):
    notifier = EmailNotifier.from_config(
        {"smtp_host": smtp.host, "smtp_port": smtp.port, "starttls": False, "from": "a@example.com", "to": "b@x.org"}
    )
    _opened.append(notifier)
    assert notifier.send(notify("firing")).ok
    assert smtp.messages[0].rcpt_tos == ["b@x.org"]


def test_recipients_written_as_one_comma_separated_line_all_get_the_mail(smtp):
    section = {"smtp_host": smtp.host, "smtp_port": smtp.port, "starttls": False, "from": "a@example.com"}
    to = "oncall@example.com, Finance Team <finance@example.com>"
    problems: list[str] = []
    settings = parse_settings({"notifications": {"email": {**section, "to": to}}}, Path("."), problems)
    assert problems == []
    notifier = build_notifiers(settings.channels)["email"]
    _opened.append(notifier)  # type: ignore[arg-type]

    assert notifier.send(notify("firing")).ok
    assert smtp.messages[0].rcpt_tos == ["oncall@example.com", "finance@example.com"]
    assert smtp.messages[0].message["To"] == "oncall@example.com, Finance Team <finance@example.com>"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("to", "oncall@example.com finance@example.com", "'oncall@example.com finance@example.com' is not"),
        ("to", ["oncall@example.com", "finance"], "to[1]: 'finance' is not a mail address"),
        ("to", "oncall@example.com; finance@example.com", "is not a mail address"),
        ("to", "finops@example.com, Oncall <oncall@example.com>, finance", "to: 'finance' (address 3 of the entry) is"),
        ("from", "llmcost", "from: 'llmcost' is not a mail address"),
        ("from", "a@example.com, b@example.com", "from: must be one address"),
    ],
)
def test_a_recipient_that_is_not_an_address_is_a_config_problem(key, value, problem):
    section = {"smtp_host": "mail", "from": "a@example.com", "to": "oncall@example.com", key: value}
    problems: list[str] = []
    parse_settings({"notifications": {"email": section}}, Path("."), problems)
    assert any(f"notifications.email.{key}" in p and problem in p for p in problems), problems


def test_a_config_without_recipients_names_what_is_missing():
    with pytest.raises(ValueError, match="to"):
        EmailNotifier.from_config({"smtp_host": "localhost", "from": "a@example.com"})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"kind": "resolved"},
        {"annotations": {"summary": "Budget ümlaut € spend " * 3}},  # non-ASCII: RFC 2047, folded
        {"annotations": {"summary": "a long ASCII subject that has to be folded over lines " * 4}},
        {"labels": {"project": "line\nbreak", "key": "x" * 90}},
    ],
)
def test_the_wire_bytes_are_what_the_standard_library_writes(changes: dict[str, Any]) -> None:
    """`flatten` writes short ASCII headers itself (for speed); the bytes must stay the stdlib's."""
    from alerting.notify.mail import WIRE_POLICY, build_email, flatten

    kind = changes.pop("kind", "firing")
    message = build_email(
        notify(kind, **changes), from_addr="Kostenstelle Ö <llmcost@example.com>", to=["oncall@example.com"], now=NOW
    )
    assert flatten(message) == message.as_bytes(policy=WIRE_POLICY)
