"""New instances of a budget whose grouped PagerDuty incident is acknowledged page: a new group incident.

Defect: the warnings of a per-key budget crossing together are one PagerDuty incident (`llmcost-group-…`).
Acknowledged, then three projects that had no alert yet crossing together (even at critical): llmcost sent
the acknowledged incident a `trigger`, which PagerDuty only appends to its log ("trigger appended
(critical): 3 instances … firing"), so nobody was paged about problems nobody had acknowledged.

Now new instances joining a group whose incident is acknowledged open a new group incident (a new
`llmcost-group-…-<n>` key), which pages; the acknowledged incident and its instances stay acknowledged,
and each incident's webhooks change only the instances it listed. New instances joining a group whose
incident is still paging (triggered) join that incident: one problem, one incident. A single new instance
has its own `dedup_key`, so it pages too.

The PagerDuty stand-in keeps incidents as PagerDuty does (`tests/support/recording_pagerduty.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, slack_action_body
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings, instances, states

OLD = FIRST_KEYS
NEW = ["n0", "n1", "n2"]


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def test_new_instances_of_a_group_acknowledged_in_pagerduty_page_on_a_new_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    assert h.pagerduty_webhook(rx.pagerduty.acknowledge_in_pagerduty(key, by="Alice Oncall")).status_code == 200
    h.gateway.deliver_pending()
    old_incident = rx.pagerduty.incidents[0]
    seen = len(rx.pagerduty.webhooks)

    clock.advance(300)
    h.gateway.fire_many(instances("LLMBudgetCritical", NEW))  # three projects with no alert yet
    h.gateway.deliver_pending()

    assert len(rx.pagerduty.pages) == 2, "nobody was paged about the new instances: " + str(old_incident.log)
    new_incident = rx.pagerduty.pages[-1]
    assert new_incident.dedup_key.startswith(key + "-")
    assert (new_incident.status, new_incident.severity) == ("triggered", "critical")
    assert new_incident.summary == "3 instances of budget per-project firing (LLMBudget, critical)"
    assert old_incident.status == "acknowledged"  # not re-paged, not resolved
    assert [e["event_action"] for e in rx.pagerduty.events][1:] == ["trigger"]
    assert states(h) == {
        **{k: ("acknowledged", "Alice Oncall") for k in OLD},
        **{k: ("firing", None) for k in NEW},
    }
    assert [h.pagerduty_webhook(w).status_code for w in rx.pagerduty.webhooks[seen:]] == [200]  # its trigger

    # The new incident's acknowledgement acknowledges the new instances only ...
    clock.advance(60)
    ack = rx.pagerduty.acknowledge_in_pagerduty(new_incident.dedup_key, by="Bob Oncall")
    assert h.pagerduty_webhook(ack).json()["alerts"] == {"acknowledged": 3}
    # ... and resolving the old incident in PagerDuty concerns the old instances only: they were acknowledged
    # already, and stay open until their budget says otherwise (a resolve there acknowledges, see receiver).
    resolve = rx.pagerduty._change(old_incident, "resolved", "Alice Oncall", "resolved in PagerDuty")  # by hand
    assert h.pagerduty_webhook(resolve).json()["alerts"] == {"unchanged": 5}
    assert {a["labels"]["key"]: a["acknowledged_by"] for a in h.alerts("acknowledged")} == {
        **dict.fromkeys(OLD, "Alice Oncall"),
        **dict.fromkeys(NEW, "Bob Oncall"),
    }
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2


def test_new_instances_of_a_group_acknowledged_in_slack_page_and_a_group_resolve_ends_both_incidents(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    assert h.slack_click(slack_action_body(key, action_id="llmcost_ack_digest")).status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.incidents[0].status == "acknowledged"
    # Who took it, and when: the grouped acknowledgement said only "5 instances … acknowledged".
    when = datetime.fromtimestamp(clock.now, UTC).strftime("%Y-%m-%d %H:%M UTC")
    said = f"5 instances of budget per-project acknowledged by alice via slack at {when}"
    assert said in str([c.payload for c in rx.slack.requests][-2:])
    assert said in rx.smtp.messages[-1].part("text/plain")

    clock.advance(300)
    h.gateway.fire_many(instances("LLMBudgetWarning", NEW))
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2, "nobody was paged about the new instances"
    assert rx.pagerduty.pages[-1].status == "triggered"
    # Slack and mail: one new grouped message each, about the new instances.
    assert rx.slack.calls("chat.postMessage")[-1].payload["text"].startswith("3 instances of budget per-project")
    assert "3 instances of budget per-project firing" in rx.smtp.messages[-1].part("text/plain")

    # A new period resolves every instance together: both incidents are resolved.
    clock.advance(60)
    h.gateway.resolve_many([("LLMBudgetWarning", {**LABELS, "key": k}) for k in OLD + NEW])
    h.gateway.deliver_pending()
    assert [i.status for i in rx.pagerduty.incidents] == ["resolved", "resolved"]


def test_new_instances_join_a_group_incident_that_is_still_paging(h: Harness, rx: Receivers, clock: FakeClock) -> None:
    key = grouped_warnings(h, rx, clock)
    h.gateway.fire_many(instances("LLMBudgetWarning", NEW))
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 1  # the open incident is paging already: one problem, one incident
    assert {e["dedup_key"] for e in rx.pagerduty.events} == {key}
    ack = rx.pagerduty.acknowledge_in_pagerduty(key)
    assert h.pagerduty_webhook(ack).json()["alerts"] == {"acknowledged": 8}


def test_a_single_new_instance_of_an_acknowledged_group_pages_on_its_own_key(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    h.pagerduty_webhook(rx.pagerduty.acknowledge_in_pagerduty(key))
    h.gateway.deliver_pending()
    h.gateway.fire_many(instances("LLMBudgetCritical", NEW[:1]))
    h.gateway.deliver_pending()
    assert len(rx.pagerduty.pages) == 2
    assert rx.pagerduty.pages[-1].dedup_key.startswith("llmcost-") and rx.pagerduty.pages[-1].dedup_key != key
    assert rx.pagerduty.pages[-1].status == "triggered"
    assert rx.pagerduty.incidents[0].status == "acknowledged"
