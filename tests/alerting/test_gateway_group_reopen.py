"""An escalation or unack re-opening acknowledged alerts of a GROUPED PagerDuty incident pages again.

Defect: warnings of a per-key budget crossing together are one PagerDuty incident (`llmcost-group-…`,
`alerting.gateway.grouping`). Acknowledged (in PagerDuty, or "Acknowledge all" in Slack), then the
instances going critical: llmcost re-opened the alerts but sent the group's incident only a `trigger`,
which PagerDuty appends to the acknowledged incident's log, so the critical escalation paged nobody (an
unack of the instances likewise). Alerts notified one by one were already resolved and triggered anew
(`test_gateway_ack_reopen.py`); a group's incident now is too, and PagerDuty's webhooks about the replaced
incident (its resolve, by llmcost) change nothing, in particular do not resolve the instances that are
still acknowledged.

The PagerDuty stand-in keeps incidents as PagerDuty does (`tests/support/recording_pagerduty.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, slack_action_body
from tests.support.grouped_budget import FIRST_KEYS, grouped_harness, grouped_warnings, instances, states

KEYS = FIRST_KEYS


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def deliver_webhooks(h: Harness, rx: Receivers, start: int) -> list[object]:
    """Deliver what PagerDuty sends llmcost about its incidents since webhook number `start`."""
    return [h.pagerduty_webhook(body).json().get("reason") for body in rx.pagerduty.webhooks[start:]]


def test_a_critical_escalation_of_a_group_acknowledged_in_pagerduty_pages_again(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    ack = rx.pagerduty.acknowledge_in_pagerduty(key, by="Alice Oncall")
    assert h.pagerduty_webhook(ack).json()["alerts"] == {"acknowledged": 5}
    h.gateway.deliver_pending()
    warning_incident = rx.pagerduty.incidents[0]
    seen = len(rx.pagerduty.webhooks)

    clock.advance(300)
    h.gateway.fire_many(instances("LLMBudgetCritical", KEYS))
    h.gateway.deliver_pending()

    assert len(rx.pagerduty.pages) == 2, "the critical escalation paged nobody: " + str(warning_incident.log)
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve", "trigger"]
    assert {e["dedup_key"] for e in rx.pagerduty.events} == {key}  # the group's stable key
    critical_incident = rx.pagerduty.pages[-1]
    assert (critical_incident.status, critical_incident.severity) == ("triggered", "critical")
    assert critical_incident.summary == (
        "5 instances of budget per-project escalated (LLMBudget, critical): "
        "re-opened, the acknowledgement was for warning"
    )
    assert warning_incident.status == "resolved"
    assert states(h) == {k: ("firing", None) for k in KEYS}

    # PagerDuty tells llmcost the old incident was resolved (by llmcost) and a new one triggered.
    assert deliver_webhooks(h, rx, seen) == [
        "the incident was replaced when its alerts were re-opened",
        "event type incident.triggered is not acted on",
    ]
    assert states(h) == {k: ("firing", None) for k in KEYS}
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2

    # The new incident is acknowledgeable in PagerDuty, for every instance it lists.
    clock.advance(60)
    ack = rx.pagerduty.acknowledge_in_pagerduty(key, by="Bob Oncall")
    assert h.pagerduty_webhook(ack).json()["alerts"] == {"acknowledged": 5}
    assert states(h) == {k: ("acknowledged", "Bob Oncall") for k in KEYS}


def test_part_of_a_group_acknowledged_in_slack_escalating_pages_and_the_rest_stays_acknowledged(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    assert h.slack_click(slack_action_body(key, action_id="llmcost_ack_digest")).status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.incidents[0].status == "acknowledged"
    seen = len(rx.pagerduty.webhooks)

    clock.advance(300)
    h.gateway.fire_many(instances("LLMBudgetCritical", KEYS[:3]))  # three of them go critical together
    h.gateway.deliver_pending()

    assert len(rx.pagerduty.pages) == 2, "the critical escalation paged nobody"
    assert rx.pagerduty.pages[-1].summary.startswith("3 instances of budget per-project escalated")
    assert "re-opened" in rx.pagerduty.pages[-1].summary
    # llmcost's resolve of the replaced incident does not resolve the two instances still acknowledged.
    assert deliver_webhooks(h, rx, seen)[0] == "the incident was replaced when its alerts were re-opened"
    assert states(h) == {
        **{k: ("firing", None) for k in KEYS[:3]},
        **{k: ("acknowledged", "alice") for k in KEYS[3:]},
    }
    # Slack and mail: one grouped message each, saying so.
    assert "re-opened" in rx.slack.calls("chat.postMessage")[-1].payload["text"]
    assert "re-opened" in rx.smtp.messages[-1].part("text/plain")


def test_unacknowledging_instances_of_an_acknowledged_group_pages_again(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    ack = rx.pagerduty.acknowledge_in_pagerduty(key)
    h.pagerduty_webhook(ack)
    h.gateway.deliver_pending()
    seen = len(rx.pagerduty.webhooks)

    clock.advance(60)
    for alert in h.alerts()[:3]:
        assert h.admin("POST", f"/v1/alerts/{alert['id']}/unack").status_code == 200
    h.gateway.deliver_pending()

    assert len(rx.pagerduty.pages) == 2, "the unack paged nobody: the group's incident stayed acknowledged"
    assert [e["event_action"] for e in rx.pagerduty.events][-2:] == ["resolve", "trigger"]
    assert rx.pagerduty.pages[-1].dedup_key == key and rx.pagerduty.pages[-1].status == "triggered"
    deliver_webhooks(h, rx, seen)  # the replaced incident's resolve ends nothing
    assert sorted(state for state, _ in states(h).values()) == ["acknowledged"] * 2 + ["firing"] * 3


def test_a_group_unacknowledged_in_pagerduty_is_not_echoed_back(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    key = grouped_warnings(h, rx, clock)
    h.pagerduty_webhook(rx.pagerduty.acknowledge_in_pagerduty(key))
    h.gateway.deliver_pending()
    events = len(rx.pagerduty.events)
    unack = rx.pagerduty.webhooks[-1]
    unack["event"] = {**unack["event"], "id": "EVUNACK", "event_type": "incident.unacknowledged"}
    assert h.pagerduty_webhook(unack).json()["alerts"] == {"unacknowledged": 5}
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.events) == events  # PagerDuty re-triggered its own incident
