"""The grouping stage through `GatewayService` with explicit deliveries and a fake clock (exact counts).

Complements tests/e2e/test_notify_grouping.py (a real `llmcost serve`): resolves of a group, retries of a
grouped message, the threshold, and `group: false`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerting.gateway.lifecycle import AlertInput
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers


def instances(n: int, budget: str = "per-project") -> list[AlertInput]:
    return [
        AlertInput(
            alertname="LLMBudgetExceeded",
            labels={"budget": budget, "scope": "project", "key": f"p{i:02d}"},
            severity="critical",
            annotations={"summary": f"Budget {budget} is at 500% for p{i:02d}"},
        )
        for i in range(n)
    ]


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with Harness(db, rx, clock=clock) as harness:
        yield harness


def test_a_group_resolving_together_is_one_message_and_resolves_the_grouped_incident(h: Harness, rx: Receivers) -> None:
    group = instances(6)
    h.gateway.fire_many(group)
    assert h.gateway.deliver_pending() == 18  # 6 alerts x 3 channels, as 3 messages
    assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
    trigger = rx.pagerduty.events[0]

    h.gateway.resolve_many([(a.alertname, a.labels) for a in group])
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 2, "email": 2, "pagerduty": 2}
    resolve = rx.pagerduty.events[1]
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
    assert "6 instances of budget per-project resolved" in rx.slack.calls("chat.postMessage")[1].payload["text"]
    assert h.metric("llm_notifications_folded_total", channel="email", how="grouped") == 12


def test_two_budgets_are_two_groups_and_two_instances_are_not_grouped(h: Harness, rx: Receivers) -> None:
    h.gateway.fire_many([*instances(4, "team-a"), *instances(4, "team-b"), *instances(2, "team-c")])
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 4, "email": 4, "pagerduty": 4}  # a, b grouped; c's two one by one
    keys = sorted(e["dedup_key"] for e in rx.pagerduty.events)
    assert sum(k.startswith("llmcost-group-") for k in keys) == 2


def test_a_grouped_message_that_fails_is_retried_whole_and_sent_once(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    rx.slack.enqueue(500)
    h.gateway.fire_many(instances(5))
    h.gateway.deliver_pending()
    assert len(rx.slack.calls("chat.postMessage")) == 1  # the failed attempt
    assert h.metric("llm_notifications_total", channel="slack", outcome="retried") == 5
    clock.advance(600)
    h.gateway.deliver_pending()
    assert len(rx.slack.calls("chat.postMessage")) == 2  # one retry of the one message
    assert h.metric("llm_notifications_total", channel="slack", outcome="sent") == 5
    assert h.metric("llm_notifications_folded_total", channel="slack", how="grouped") == 5


def test_group_false_notifies_each_instance_on_that_channel(db: str, rx: Receivers, clock: FakeClock) -> None:
    with Harness(db, rx, clock=clock, channel_extra={"pagerduty": {"group": False}}) as h:
        h.gateway.fire_many(instances(5))
        h.gateway.deliver_pending()
        assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 5}


def test_group_wait_holds_instances_so_later_passes_join_the_group(db: str, rx: Receivers, clock: FakeClock) -> None:
    with Harness(db, rx, clock=clock, alerting={"group_wait": "5s"}) as h:
        first, second = instances(2), instances(4)[2:]
        h.gateway.fire_many(first)
        assert h.gateway.deliver_pending() == 0  # held for the group to form
        clock.advance(2)
        h.gateway.fire_many(second)  # a later pass, within the wait
        clock.advance(3)
        h.gateway.deliver_pending()
        assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}  # the first two plus two later: one message
        clock.advance(5)
        h.gateway.deliver_pending()
        assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
