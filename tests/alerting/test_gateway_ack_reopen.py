"""An acknowledgement covers the level acknowledged: a rise to a higher severity re-opens the alert.

Defect: warnings routed to PagerDuty, a warning acknowledged, then the budget critical. llmcost sent
PagerDuty a `trigger` on the acknowledged incident, which PagerDuty only appends to the incident's log,
so the critical escalation paged nobody; llmcost itself kept the alert acknowledged by the warning's
acker (no reminders, a later ack of the critical ignored). An unack was sent as a `trigger` too, which
does not re-open an acknowledged incident either.

The PagerDuty stand-in keeps incidents as PagerDuty does (`tests/support/recording_pagerduty.py`), and
its webhooks are delivered to llmcost as PagerDuty would send them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerting.model import fingerprint
from tests.support.clock import FakeClock
from tests.support.gateway_harness import BUDGET_LABELS, Harness, Receivers

HOUR = 3600.0
ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
DEDUP_KEY = "llmcost-" + fingerprint("LLMBudget", BUDGET_LABELS)


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    rx.pagerduty.clock = clock
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def spend(h: Harness, level: str) -> int:
    severity = {"LLMBudgetWarning": "warning", "LLMBudgetCritical": "critical", "LLMBudgetExceeded": "critical"}
    change = h.gateway.fire(level, BUDGET_LABELS, severity=severity[level], annotations={"summary": f"{level} 9x%"})
    assert change.alert is not None and change.alert.id is not None
    return change.alert.id


def deliver_webhooks(h: Harness, rx: Receivers, start: int) -> list[dict[str, object]]:
    """Deliver what PagerDuty sends llmcost about its incidents since webhook number `start`."""
    return [h.pagerduty_webhook(body).json() for body in rx.pagerduty.webhooks[start:]]


def the_alert(h: Harness) -> dict[str, object]:
    [alert] = h.alerts()
    return alert


def test_a_critical_escalation_of_a_warning_acknowledged_in_pagerduty_pages_again(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    alert_id = spend(h, "LLMBudgetWarning")
    h.gateway.deliver_pending()
    [warning_incident] = rx.pagerduty.pages
    clock.advance(120)
    seen = len(rx.pagerduty.webhooks)
    ack = rx.pagerduty.acknowledge_in_pagerduty(DEDUP_KEY, by="Alice Oncall")
    assert h.pagerduty_webhook(ack).status_code == 200
    h.gateway.deliver_pending()
    assert the_alert(h)["acknowledged_by"] == "Alice Oncall"
    seen = len(rx.pagerduty.webhooks)

    clock.advance(300)
    assert spend(h, "LLMBudgetCritical") == alert_id
    h.gateway.deliver_pending()

    assert len(rx.pagerduty.pages) == 2, "the critical escalation paged nobody: " + str(warning_incident.log)
    critical_incident = rx.pagerduty.pages[-1]
    assert (critical_incident.dedup_key, critical_incident.status) == (DEDUP_KEY, "triggered")
    assert critical_incident.severity == "critical"
    assert "Escalated from warning to critical" in critical_incident.summary
    assert warning_incident.status == "resolved"
    alert = the_alert(h)
    assert (alert["id"], alert["state"], alert["acknowledged_by"]) == (alert_id, "firing", None)

    # PagerDuty says the warning's incident was resolved (by llmcost) and a new one triggered: neither
    # ends or changes the alert.
    answers = deliver_webhooks(h, rx, seen)
    assert [a.get("reason") for a in answers] == [
        "the incident was replaced when the alert was re-opened",
        "event type incident.triggered is not acted on",
    ]
    assert the_alert(h)["state"] == "firing"
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2

    # Slack: one message, updated in place, and a reply in its thread saying the ack was for the warning.
    assert len([p for p in rx.slack.calls("chat.postMessage") if not p.json.get("thread_ts")]) == 1
    reply = rx.slack.calls("chat.postMessage")[-1].json
    assert reply["thread_ts"] == rx.slack.calls("chat.update")[-1].json["ts"]
    assert "re-opened" in reply["text"] and "Alice Oncall" in reply["text"] and "LLMBudgetWarning" in reply["text"]
    buttons = [
        e["action_id"]
        for b in rx.slack.calls("chat.update")[-1].json["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert "llmcost_ack" in buttons
    # Mail: the same thread.
    first, *later = [m.message for m in rx.smtp.messages]
    assert later and all(m["In-Reply-To"] == first["Message-ID"] for m in later)
    assert "re-opened" in rx.smtp.messages[-1].part("text/plain")

    # The critical is acknowledgeable again, in PagerDuty as anywhere.
    clock.advance(60)
    seen = len(rx.pagerduty.webhooks)
    ack = rx.pagerduty.acknowledge_in_pagerduty(DEDUP_KEY, by="Bob Oncall")
    assert h.pagerduty_webhook(ack).json()["alerts"] == {"acknowledged": 1}
    alert = the_alert(h)
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", "Bob Oncall")
    assert {e["action"] for e in h.gateway.history(alert_id)} >= {"acknowledged", "escalated"}


def test_an_ack_over_http_holds_for_its_severity_and_the_critical_pages_and_repeats(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    alert_id = spend(h, "LLMBudgetWarning")
    h.gateway.deliver_pending()
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice"}).status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.incidents[-1].status == "acknowledged"

    clock.advance(600)
    spend(h, "LLMBudgetCritical")
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge", "resolve", "trigger"]
    assert len({e["dedup_key"] for e in rx.pagerduty.events}) == 1
    assert len(rx.pagerduty.pages) == 2, "the critical escalation paged nobody"
    assert the_alert(h)["state"] == "firing"

    # Unacknowledged at critical: reminders again.
    clock.advance(4 * HOUR)
    assert h.gateway.tick().repeats == 1
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2  # a reminder on the triggered incident pages nobody anew

    # An ack of the critical holds across the same severity (exceeded).
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "bob"}).status_code == 200
    h.gateway.deliver_pending()
    events = len(rx.pagerduty.events)
    spend(h, "LLMBudgetExceeded")
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.events) == events
    alert = the_alert(h)
    assert (alert["alertname"], alert["state"], alert["acknowledged_by"]) == (
        "LLMBudgetExceeded",
        "acknowledged",
        "bob",
    )


def test_an_unack_reopens_the_acknowledged_incident(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    alert_id = spend(h, "LLMBudgetCritical")
    h.gateway.deliver_pending()
    assert h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": "alice"}).status_code == 200
    h.gateway.deliver_pending()
    clock.advance(60)
    seen = len(rx.pagerduty.webhooks)
    assert h.admin("POST", f"/v1/alerts/{alert_id}/unack").status_code == 200
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2, "the unack paged nobody: the incident stayed acknowledged"
    assert rx.pagerduty.pages[-1].status == "triggered"
    assert "Unacknowledged" in rx.pagerduty.pages[-1].summary
    deliver_webhooks(h, rx, seen)  # the replaced incident's resolve does not end the alert
    assert the_alert(h)["state"] == "firing"


def test_a_failed_trigger_after_the_resolve_is_retried_without_a_second_page(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    alert_id = spend(h, "LLMBudgetWarning")
    h.gateway.deliver_pending()
    h.gateway.ack(alert_id, by="alice")
    h.gateway.deliver_pending()
    rx.pagerduty.fail_next("trigger", 503)
    spend(h, "LLMBudgetCritical")
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 1 and rx.pagerduty.incidents[0].status == "resolved"
    clock.advance(HOUR)  # past any backoff
    h.gateway.deliver_pending()
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2
    assert rx.pagerduty.pages[-1].status == "triggered"
    assert h.metric("llm_notifications_total", channel="pagerduty", outcome="retried") == 1
