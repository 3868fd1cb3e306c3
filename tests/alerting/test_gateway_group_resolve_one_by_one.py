"""A grouped PagerDuty incident stays open while any instance it lists fires, and is resolved with the last.

Five instances of a per-key budget crossing together are one PagerDuty incident (`llmcost-group-…`).
They then resolve one at a time, in separate passes (e.g. `POST /v1/budgets/{name}/reset` with a `key`
resolves that instance only). What on-call needs: the incident is not resolved while four instances still
fire, and it is resolved (once) when the last one resolves, whether it was still paging or acknowledged.

Defect: each instance's resolve went to its own `dedup_key` (`llmcost-<fingerprint>`, never triggered), so
the grouped incident stayed open (triggered: escalating) after every instance had resolved.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings

KEYS = FIRST_KEYS


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def resolve_one_by_one(h: Harness, rx: Receivers, clock: FakeClock, key: str, open_status: str) -> None:
    incident = rx.pagerduty.incidents[0]
    for i, k in enumerate(KEYS):
        h.gateway.resolve("LLMBudgetWarning", {**LABELS, "key": k}, by="admin", comment="budget reset")
        h.gateway.deliver_pending()
        clock.advance(60)
        if i < len(KEYS) - 1:
            assert incident.status == open_status, f"resolved with {len(KEYS) - 1 - i} instances still open"
    assert incident.status == "resolved", "the grouped incident stays open after its last instance resolved"
    resolves = [e for e in rx.pagerduty.events if e["event_action"] == "resolve" and e["dedup_key"] == key]
    assert len(resolves) == 1
    assert len(rx.pagerduty.pages) == 1


def test_a_paging_group_incident_is_resolved_with_its_last_instance(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    resolve_one_by_one(h, rx, clock, key, "triggered")


def test_an_acknowledged_group_incident_is_resolved_with_its_last_instance(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key = grouped_warnings(h, rx, clock)
    assert h.pagerduty_webhook(rx.pagerduty.acknowledge_in_pagerduty(key, by="Alice Oncall")).status_code == 200
    h.gateway.deliver_pending()
    assert rx.pagerduty.incidents[0].status == "acknowledged"
    resolve_one_by_one(h, rx, clock, key, "acknowledged")
