"""The outbox: retries with backoff, Retry-After, dead letters, per-alert order, isolation, crashes."""

from __future__ import annotations

import logging
import time

import pytest

from alerting.gateway.records import parse_rfc3339
from tests.support.clock import FakeClock
from tests.support.gateway_harness import (
    BUDGET_LABELS,
    Harness,
    Receivers,
    am_alert,
    am_payload,
)
from tests.support.grouped_budget import FIRST_KEYS, instances
from tests.support.waiting import wait_until


def fire(h: Harness, severity: str = "critical", name: str = "LLMBudgetCritical"):  # type: ignore[no-untyped-def]
    return h.gateway.fire(name, BUDGET_LABELS, severity=severity, annotations={"summary": "96%"})


def pending(h: Harness, channel: str) -> list[dict]:  # type: ignore[type-arg]
    return h.gateway.notifications(status="pending", channel=channel)


def test_slack_rate_limit_retry_after_is_honoured_then_delivered(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    rx.slack.enqueue(429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"})
    with Harness(sqlite_url, rx, clock=clock) as h:
        fire(h)
        h.gateway.deliver_pending()
        assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
        [row] = pending(h, "slack")
        assert row["attempts"] == 1 and "ratelimited" in row["last_error"]
        assert h.metric("llm_notification_outbox_pending", channel="slack") == 1
        clock.advance(6.9)
        assert h.gateway.deliver_pending() == 0
        clock.advance(0.1)
        assert h.gateway.deliver_pending() == 1
        assert [r.path for r in rx.slack.requests] == ["/api/chat.postMessage"] * 2
        assert h.metric("llm_notifications_total", channel="slack", outcome="retried") == 1
        assert h.metric("llm_notifications_total", channel="slack", outcome="sent") == 1
        assert h.metric("llm_notification_outbox_pending", channel="slack") == 0


def test_pagerduty_5xx_is_retried_with_exponential_backoff(sqlite_url: str, rx: Receivers, clock: FakeClock) -> None:
    rx.pagerduty.enqueue(500, body={"status": "error"})
    rx.pagerduty.enqueue(503, body="unavailable")
    with Harness(sqlite_url, rx, clock=clock, alerting={"outbox": {"initial_backoff": "10s"}}) as h:
        fire(h)
        delays = []
        for _ in range(3):
            h.gateway.deliver_pending()
            for row in pending(h, "pagerduty"):
                due = parse_rfc3339(row["next_attempt_at"])
                delays.append(due - clock())
                clock.advance(delays[-1] - 0.01)
                assert h.gateway.deliver_pending() == 0  # not before it is due
                clock.advance(0.02)
        assert [n["status"] for n in h.gateway.notifications(channel="pagerduty")] == ["sent"]
        assert len(rx.pagerduty.events) == 3
        assert len(delays) == 2
        assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20  # equal jitter over 10 s, then 20 s
        assert h.metric("llm_notifications_total", channel="pagerduty", outcome="retried") == 2


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_a_permanent_failure_is_a_dead_letter_and_other_channels_still_deliver(
    db: str, rx: Receivers, clock: FakeClock
) -> None:
    rx.slack.enqueue(200, body={"ok": False, "error": "channel_not_found"})
    with Harness(db, rx, clock=clock) as h:
        fire(h)
        h.gateway.deliver_pending()
        assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
        assert h.metric("llm_notification_dead_letters", channel="slack") == 1
        assert h.metric("llm_notification_dead_letters", channel="email") == 0
        assert h.metric("llm_notifications_total", channel="slack", outcome="failed") == 1
        assert h.metric("llm_notifications_total", channel="email", outcome="sent") == 1
        [dead] = h.admin("GET", "/v1/notifications", params={"status": "dead"}).json()
        assert dead["channel"] == "slack" and dead["attempts"] == 1
        clock.advance(3600)
        assert h.gateway.deliver_pending() == 0  # a dead letter is not retried by itself


def test_retries_stop_after_max_attempts(sqlite_url: str, rx: Receivers, clock: FakeClock) -> None:
    for _ in range(3):
        rx.pagerduty.enqueue(502, body="bad gateway")
    with Harness(sqlite_url, rx, clock=clock, alerting={"outbox": {"max_attempts": 3}}) as h:
        fire(h)
        for _ in range(3):
            h.gateway.deliver_pending()
            clock.advance(3600)
        assert len(rx.pagerduty.events) == 3
        assert [n["status"] for n in h.gateway.notifications(channel="pagerduty")] == ["dead"]
        assert h.metric("llm_notifications_total", channel="pagerduty", outcome="retried") == 2
        assert h.metric("llm_notifications_total", channel="pagerduty", outcome="failed") == 1


def test_a_resolve_is_never_delivered_before_its_trigger(db: str, rx: Receivers, clock: FakeClock) -> None:
    rx.slack.enqueue(503, body="down")
    rx.pagerduty.enqueue(500, body="down")
    with Harness(db, rx, clock=clock) as h:
        alert_id = fire(h).alert.id
        h.gateway.deliver_pending()  # both triggers fail and wait for their backoff
        h.gateway.ack(alert_id, by="alice")
        h.gateway.resolve("LLMBudgetCritical", BUDGET_LABELS)
        assert h.gateway.deliver_pending() == 2  # email only: Slack and PagerDuty wait for their triggers
        assert len(rx.slack.requests) == 1 and len(rx.pagerduty.events) == 1
        clock.advance(600)
        h.gateway.deliver_pending()
        assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "trigger", "acknowledge", "resolve"]
        paths = [r.path.rsplit("/", 1)[-1] for r in rx.slack.requests]
        assert paths == ["chat.postMessage", "chat.postMessage", "chat.update", "chat.update"]
        assert {r.json["ts"] for r in rx.slack.requests[2:]} == {"1700000000.000100"}  # the living message


def test_one_channels_outage_never_delays_the_others(sqlite_url: str, rx: Receivers) -> None:
    for _ in range(3):  # Slack hangs on each of the three messages
        rx.slack.enqueue(200, body={"ok": True, "channel": "C123", "ts": "1.1"}, delay=1.5)
    with Harness(sqlite_url, rx, clock=time.time, start_workers=True, alerting={"outbox": {"concurrency": 3}}) as h:
        started = time.monotonic()
        for i in range(3):  # not spikes, which would be grouped when due together
            h.gateway.fire("LLMProviderErrors", {"project": f"p{i}"}, severity="critical")
        wait_until(lambda: len(rx.smtp.messages) == 3 and len(rx.pagerduty.events) == 3, timeout=5)
        assert time.monotonic() - started < 1.2  # while Slack is still stuck
        assert len(h.gateway.notifications(status="sent", channel="slack")) == 0
        wait_until(lambda: len(h.gateway.notifications(status="sent", channel="slack")) == 3, timeout=10)
        assert len(rx.slack.requests) == 3


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # same SQL paths run on PostgreSQL elsewhere
def test_accepted_alerts_survive_a_crash_before_delivery(db: str, rx: Receivers, clock: FakeClock) -> None:
    # Not spikes: three spikes of one label set due together would be grouped into one message.
    payload = am_payload([am_alert("LLMProviderErrors", labels={"model": m}, severity="critical") for m in "abc"])
    crashed = Harness(db, rx, clock=clock)  # accepts, never delivers (as if killed right after)
    assert crashed.post_alertmanager(payload).json() == {"status": "ok", "alerts": {"fired": 3}}
    crashed.gateway.ack(crashed.alerts()[0]["id"], by="alice")
    crashed.close()
    assert rx.counts() == {"slack": 0, "email": 0, "pagerduty": 0}

    with Harness(db, rx, clock=clock, start_workers=True) as restarted:
        wait_until(lambda: rx.counts() == {"slack": 4, "email": 4, "pagerduty": 4})
        assert restarted.post_alertmanager(payload).json() == {"status": "duplicate"}
        # Kept on purpose: that nothing more arrives can only be seen by letting time pass (three poll
        # intervals of the workers) and looking again.
        time.sleep(0.3)
        assert rx.counts() == {"slack": 4, "email": 4, "pagerduty": 4}
        assert [r.path for r in rx.slack.requests].index("/api/chat.update") > 0
        assert restarted.gateway.notifications(status="pending") == []


def test_a_crashed_senders_claim_is_retried_after_its_lease(db: str, rx: Receivers, clock: FakeClock) -> None:
    first = Harness(db, rx, clock=clock, alerting={"outbox": {"lease": "30s"}})
    fire(first)
    claimed = first.gateway.outbox.claim("slack", 10)  # took the row, then died before sending
    assert len(claimed) == 1
    first.close()
    with Harness(db, rx, clock=clock, alerting={"outbox": {"lease": "30s"}}) as second:
        assert second.gateway.deliver_pending() == 2  # email and PagerDuty; Slack is still leased
        clock.advance(29)
        assert second.gateway.deliver_pending() == 0
        clock.advance(1)
        assert second.gateway.deliver_pending() == 1
        assert rx.counts() == {"slack": 3, "email": 1, "pagerduty": 1}  # Slack: was it posted? No: post it
        assert [r.path for r in rx.slack.requests] == [
            "/api/conversations.list",
            "/api/conversations.history",
            "/api/chat.postMessage",
        ]


def test_retry_after_zero_does_not_make_a_hot_loop(sqlite_url: str, rx: Receivers, clock: FakeClock) -> None:
    for _ in range(3):
        rx.slack.enqueue(429, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"})
    with Harness(sqlite_url, rx, clock=clock, channels=("slack",)) as h:
        fire(h, "warning")
        assert h.gateway.deliver_pending() == 1  # returns: the retry waits for a later pass
        [row] = pending(h, "slack")
        # At least a second (MIN_RETRY_AFTER), else the first attempt's backoff (1-2 s at the default 2 s).
        assert 1.0 <= parse_rfc3339(row["next_attempt_at"]) - clock() <= 2.0


def test_a_short_retry_after_does_not_spend_the_attempts_faster_than_the_backoff(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    """Slack's `Retry-After: 1` is the least wait: the backoff still doubles, so ten rate-limited tries
    span as long as ten failed ones (they were ten seconds, and the alert a dead letter; see
    tests/e2e/test_slack_rate_limited.py)."""
    for _ in range(6):
        rx.slack.enqueue(429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})
    with Harness(sqlite_url, rx, clock=clock, channels=("slack",)) as h:
        fire(h, "warning")
        waits = []
        for _ in range(6):
            h.gateway.deliver_pending()
            [row] = pending(h, "slack")
            waits.append(parse_rfc3339(row["next_attempt_at"]) - clock())
            clock.advance(waits[-1] + 0.01)  # next_attempt_at is shown to the millisecond
        h.gateway.deliver_pending()
        assert [n["status"] for n in h.gateway.notifications(channel="slack")] == ["sent"]
        # Equal jitter over 2, 4, 8, … s: at least half of each, and never under the asked second.
        assert all(wait >= max(1.0, 2.0 * 2**i / 2) for i, wait in enumerate(waits)), waits
        assert sum(waits) >= 63


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the row's progress is plain SQL, run on both elsewhere
def test_a_recipient_deferred_with_4xx_gets_the_mail_later_and_the_others_only_once(
    db: str, rx: Receivers, clock: FakeClock
) -> None:
    to = {"to": ["oncall@example.com", "finance@example.com", "gone@example.com"]}
    rx.smtp.refuse = {
        "finance@example.com": "452 4.2.2 Mailbox full, try later",
        "gone@example.com": "550 5.1.1 No such user",
    }
    with Harness(db, rx, clock=clock, channels=("email",), channel_extra={"email": to}) as h:
        alert_id = fire(h, "warning", "LLMBudgetWarning").alert.id
        h.gateway.deliver_pending()
        [row] = pending(h, "email")
        assert "finance@example.com: 452" in row["last_error"] and "gone@example.com: 550" in row["last_error"]
        h.gateway.ack(alert_id, by="alice")
        assert h.gateway.deliver_pending() == 0  # the ack waits for the first mail to reach everyone

        rx.smtp.refuse = {"gone@example.com": "550 5.1.1 No such user"}
        clock.advance(3600)
        h.gateway.deliver_pending()
        h.gateway.deliver_pending()
        first, retried, ack = rx.smtp.messages
        assert (first.rcpt_tos, retried.rcpt_tos) == (["oncall@example.com"], ["finance@example.com"])
        assert first.message["Message-ID"] == retried.message["Message-ID"], "one mail, delivered in two parts"
        assert ack.rcpt_tos == ["oncall@example.com", "finance@example.com"]
        assert ack.message["In-Reply-To"] == first.message["Message-ID"]
        assert h.metric("llm_notifications_total", channel="email", outcome="retried") == 1
        assert h.metric("llm_notifications_total", channel="email", outcome="sent") == 2


def test_a_slack_post_whose_answer_was_lost_is_not_posted_twice(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    rx.slack.answer_late(2.0)  # Slack posts the message; its answer comes after the client gave up
    extra = {"slack": {"timeout_seconds": 1}}
    with Harness(sqlite_url, rx, clock=clock, channels=("slack",), channel_extra=extra) as h:
        alert_id = fire(h, "warning", "LLMBudgetWarning").alert.id
        h.gateway.deliver_pending()
        [row] = pending(h, "slack")
        assert "Timeout" in row["last_error"] or "timed out" in row["last_error"]
        clock.advance(60)
        h.gateway.deliver_pending()
        h.gateway.ack(alert_id, by="alice")
        h.gateway.deliver_pending()

        [message] = rx.slack.posted
        assert "Acknowledged by alice" in rx.slack.calls("chat.update")[-1].json["text"]
        assert rx.slack.calls("chat.update")[-1].json["ts"] == message["ts"], "the message people saw"
        assert h.gateway.notifications(status="pending") == []


def test_a_thread_reply_whose_answer_was_lost_is_not_replied_twice(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    extra = {"slack": {"timeout_seconds": 1}}
    with Harness(sqlite_url, rx, clock=clock, channels=("slack",), channel_extra=extra) as h:
        fire(h, "warning", "LLMBudgetWarning")
        h.gateway.deliver_pending()
        fire(h, "critical", "LLMBudgetCritical")
        rx.slack.enqueue(200, body={"ok": True, "channel": "C123", "ts": "1700000000.000100"})  # the update
        rx.slack.answer_late(2.0)  # the reply "Escalated from warning to critical" is posted, its answer lost
        h.gateway.deliver_pending()
        clock.advance(60)
        h.gateway.deliver_pending()

        [reply] = rx.slack.replies
        assert "Escalated from warning to critical" in reply["text"]
        assert h.gateway.notifications(status="pending") == []


def test_a_grouped_mail_deferred_for_one_recipient_reaches_it_later_and_the_others_once(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    to = {"to": ["oncall@example.com", "finance@example.com"]}
    rx.smtp.refuse = {"finance@example.com": "452 4.2.2 Mailbox full, try later"}
    with Harness(sqlite_url, rx, clock=clock, channels=("email",), channel_extra={"email": to}) as h:
        h.gateway.fire_many(instances("LLMBudgetWarning", FIRST_KEYS))
        h.gateway.deliver_pending()
        rx.smtp.refuse = {}
        clock.advance(3600)
        h.gateway.deliver_pending()

        first, retried = rx.smtp.messages
        assert (first.rcpt_tos, retried.rcpt_tos) == (["oncall@example.com"], ["finance@example.com"])
        assert first.message["Message-ID"] == retried.message["Message-ID"]
        assert "5 instances" in retried.message["Subject"]
        assert h.gateway.notifications(status="pending") == []


def test_a_grouped_slack_post_whose_answer_was_lost_is_not_posted_twice(
    sqlite_url: str, rx: Receivers, clock: FakeClock
) -> None:
    extra = {"slack": {"timeout_seconds": 1}}
    with Harness(sqlite_url, rx, clock=clock, channels=("slack",), channel_extra=extra) as h:
        rx.slack.answer_late(2.0)  # Slack posts "5 instances of budget per-project firing"; its answer is lost
        h.gateway.fire_many(instances("LLMBudgetWarning", FIRST_KEYS))
        h.gateway.deliver_pending()
        clock.advance(60)
        h.gateway.deliver_pending()

        [message] = rx.slack.posted
        assert "5 instances" in message["text"]
        assert h.gateway.notifications(status="pending") == []
        assert h.metric("llm_notifications_total", channel="slack", outcome="sent") == 5


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the lease is plain SQL, run on both elsewhere
def test_a_crash_between_the_slack_post_and_its_record_does_not_post_twice(
    db: str, rx: Receivers, clock: FakeClock
) -> None:
    settings = {"outbox": {"lease": "30s"}}
    crashed = Harness(db, rx, clock=clock, channels=("slack",), alerting=settings)
    alert_id = fire(crashed, "warning", "LLMBudgetWarning").alert.id
    [claimed] = crashed.gateway.outbox.claim("slack", 10)
    assert crashed.gateway.notifiers["slack"].send(claimed.notification).ok  # posted, then killed
    crashed.close()

    with Harness(db, rx, clock=clock, channels=("slack",), alerting=settings) as restarted:
        clock.advance(30)
        restarted.gateway.deliver_pending()
        restarted.gateway.ack(alert_id, by="alice")
        restarted.gateway.deliver_pending()

        [message] = rx.slack.posted
        assert rx.slack.calls("chat.update")[-1].json["ts"] == message["ts"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_a_restart_without_a_channel_that_still_has_pending_notifications_says_so(
    db: str, rx: Receivers, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect: a gateway restarted with `pagerduty` removed from the config kept that channel's pending
    notifications (a resolve for an open incident) for ever without a word: the incident stayed open and
    nothing in the log said why. They are kept (sent if the channel comes back); the start now says so."""
    rx.pagerduty.enqueue(503, body="unavailable")
    with Harness(db, rx, clock=clock) as h:
        fire(h)
        h.gateway.deliver_pending()
        assert len(pending(h, "pagerduty")) == 1
    caplog.set_level("WARNING", logger="alerting")
    with Harness(db, rx, clock=clock, channels=("slack", "email"), start_workers=True) as h:
        assert len(h.gateway.notifications(status="pending", channel="pagerduty")) == 1  # kept, not deleted
    said = [r.getMessage() for r in caplog.records if "pagerduty" in r.getMessage()]
    assert len(said) == 1, said
    assert "1 notification" in said[0] and "not configured" in said[0], said[0]


BAD_GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    + "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n" * 20
    + "</body>\n</html>\n"
)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_slack_answering_an_html_error_page_is_one_line_per_attempt_without_the_page(
    db: str, rx: Receivers, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Slack's edge answers a 5xx with an HTML page; slack_sdk logged it at ERROR on every attempt, beside
    # llmcost's own line, and llmcost's line quoted the page too.
    for _ in range(3):
        rx.slack.enqueue(502, {"Content-Type": "text/html; charset=utf-8"}, BAD_GATEWAY_PAGE)
    caplog.set_level(logging.INFO)
    with Harness(db, rx, clock=clock, alerting={"outbox": {"initial_backoff": "10s"}}) as h:
        fire(h)
        for _ in range(3):
            caplog.clear()
            h.gateway.deliver_pending()
            said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
            about_slack = [line for line in said if "slack" in line[0] or "slack" in line[2].lower()]
            [(name, level, message)] = about_slack
            assert (name, level) == ("alerting.gateway.outbox", "INFO"), about_slack
            assert message.endswith(": slack chat.postMessage: an HTML page, not the API's JSON (HTTP 502)")
            assert "<" not in message, message
            [row] = pending(h, "slack")
            clock.advance(parse_rfc3339(row["next_attempt_at"]) - clock() + 0.01)
        assert h.gateway.deliver_pending() == 1
        assert [n["status"] for n in h.gateway.notifications(channel="slack")] == ["sent"]
