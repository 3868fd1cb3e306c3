"""Alert mail's Message-IDs name a real domain: the `from` address's, and stay the same across restarts.

Defect: every Message-ID ended in `@llmcost`, not a domain (RFC 5322 wants one; spam filters score a
bare word). Now the domain is the one of `notifications.email.from`, else the host of `external_url`,
else `llmcost` as before; it comes from the config alone, so a mail retried by a restarted process keeps
its Message-ID and later mails still reply to the first (`In-Reply-To`/`References`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerting.model import Alert, Notification, NotificationKind, fingerprint
from alerting.notify import EmailNotifier
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.recording_servers import SMTPServer

LABELS = {"budget": "team-a", "scope": "project", "key": "team-a"}
FROM = {"from": "LLMCost alerts <alerts@mail.example.org>", "to": ["oncall@example.com", "finance@example.com"]}


def test_message_ids_carry_the_from_domain_and_keep_the_thread_across_a_restart(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 11, 11, 12, 0, tzinfo=UTC).timestamp())
    rx.smtp.refuse = {"finance@example.com": "452 4.2.2 Mailbox full, try later"}
    with Harness(sqlite_url, rx, clock=clock, channels=("email",), channel_extra={"email": FROM}) as before:
        alert = before.gateway.fire(
            "LLMBudgetCritical", LABELS, severity="critical", annotations={"summary": "96%"}
        ).alert
        before.gateway.deliver_pending()  # reaches oncall only; finance deferred
    rx.smtp.refuse = {}
    clock.advance(3600)
    with Harness(sqlite_url, rx, clock=clock, channels=("email",), channel_extra={"email": FROM}) as after:
        after.gateway.deliver_pending()  # the restarted process retries the first mail for finance
        after.gateway.resolve("LLMBudgetCritical", LABELS)
        after.gateway.deliver_pending()

    first, retried, resolved = (m.message for m in rx.smtp.messages)
    root = first["Message-ID"]
    assert root == f"<{alert.fingerprint}.{int(alert.starts_at.timestamp())}@mail.example.org>"
    assert retried["Message-ID"] == root, "one mail, delivered in two parts by two processes"
    assert resolved["Message-ID"].endswith("@mail.example.org>") and resolved["Message-ID"] != root
    assert resolved["In-Reply-To"] == resolved["References"] == root


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def test_without_a_domain_in_from_the_external_url_host_is_used_then_llmcost(smtp_server: SMTPServer) -> None:
    labels = {"budget": "b"}
    alert = Alert(
        id=1,
        fingerprint=fingerprint("LLMBudgetWarning", labels),
        alertname="LLMBudgetWarning",
        labels=labels,
        annotations={"summary": "s"},
        severity="warning",
        starts_at=datetime(2026, 11, 11, 12, 0, tzinfo=UTC),
    )
    ids = []
    for external_url in ("https://LLMCost.Example.com:8443/base", None):
        notifier = EmailNotifier(
            smtp_host=smtp_server.host,
            smtp_port=smtp_server.port,
            starttls=False,
            from_addr="llmcost",  # not an address: a config check refuses it, a program may still pass it
            to=["oncall@example.com"],
            external_url=external_url,
        )
        try:
            notifier.send(Notification(kind=NotificationKind.FIRING, alert=alert, channel="email"))
        finally:
            notifier.close()
        ids.append(smtp_server.messages[-1].message["Message-ID"])
    assert [i.rpartition("@")[2] for i in ids] == ["llmcost.example.com>", "llmcost>"]


def test_a_thread_begun_before_the_upgrade_goes_on_under_its_first_message_id(smtp_server: SMTPServer) -> None:
    labels = {"budget": "b"}
    alert = Alert(
        id=1,
        fingerprint=fingerprint("LLMBudgetWarning", labels),
        alertname="LLMBudgetWarning",
        labels=labels,
        annotations={"summary": "s"},
        severity="warning",
        starts_at=datetime(2026, 11, 11, 12, 0, tzinfo=UTC),
        resolved_at=datetime(2026, 11, 11, 13, 0, tzinfo=UTC),
    )
    old_root = f"<{alert.fingerprint}.1794398400@llmcost>"  # stored with the alert's channel reference
    notifier = EmailNotifier(
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, starttls=False, from_addr=FROM["from"], to=["a@b.c"]
    )
    try:
        notifier.send(
            Notification(
                kind=NotificationKind.RESOLVED,
                alert=alert,
                channel="email",
                reference={"message_id": old_root},
                outbox_id=9,
            )
        )
    finally:
        notifier.close()
    message = smtp_server.messages[-1].message
    assert message["In-Reply-To"] == message["References"] == old_root
    assert message["Message-ID"].endswith("@mail.example.org>")
