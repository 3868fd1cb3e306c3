"""A grouped PagerDuty incident is acknowledged once every instance it lists is acknowledged, one by one.

Five instances of a per-key budget crossing together are one PagerDuty incident (`llmcost-group-…`). The
on-call then acknowledges them one at a time, as `llmcost alerts ack ID`, `POST /v1/alerts/{id}/ack` and
the console's button do. What on-call needs: the incident keeps paging while one instance is still
unacknowledged, and stops paging (acknowledged) once none is.

Defect: each instance's acknowledgement went to its own `dedup_key` (`llmcost-<fingerprint>`, never
triggered, so PagerDuty ignored it): with every instance acknowledged in llmcost, the grouped incident
stayed triggered and PagerDuty went on escalating it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, pd_time
from tests.support.grouped_budget import FIRST_KEYS, LABELS, grouped_harness, grouped_warnings, states
from tests.support.recording_pagerduty import Incident


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with grouped_harness(db, rx, clock) as harness:
        yield harness


def grouped_incident(h: Harness, rx: Receivers, clock: FakeClock) -> tuple[str, Incident, dict[str, int]]:
    """`grouped_warnings`: its dedup_key, the one incident PagerDuty holds, and each project's alert id."""
    key = grouped_warnings(h, rx, clock)
    [incident] = rx.pagerduty.incidents
    return key, incident, {a["labels"]["key"]: a["id"] for a in h.alerts()}


def ack(h: Harness, alert_id: int, by: str) -> None:
    response = h.admin("POST", f"/v1/alerts/{alert_id}/ack", json={"by": by})
    assert response.status_code == 200, response.text
    h.gateway.deliver_pending()


def test_the_group_incident_is_acknowledged_with_its_last_firing_instance(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    key, incident, ids = grouped_incident(h, rx, clock)
    for i, project in enumerate(FIRST_KEYS):
        ack(h, ids[project], "bob")
        clock.advance(60)
        if i < len(FIRST_KEYS) - 1:
            assert incident.status == "triggered", f"acknowledged with {len(FIRST_KEYS) - 1 - i} instances firing"
    assert incident.status == "acknowledged", "every instance is acknowledged, yet the incident still escalates"
    acks = [e for e in rx.pagerduty.events if e["event_action"] == "acknowledge" and e["dedup_key"] == key]
    assert len(acks) == 1
    assert len(rx.pagerduty.pages) == 1  # nobody paged anew
    assert all(state == ("acknowledged", "bob") for state in states(h).values())


def test_a_resolved_instance_does_not_keep_the_others_acknowledgements_from_reaching_the_incident(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    _key, incident, ids = grouped_incident(h, rx, clock)
    first, *others = FIRST_KEYS
    h.gateway.resolve("LLMBudgetWarning", {**h.alerts()[0]["labels"], "key": first}, by="carol", comment="reset")
    h.gateway.deliver_pending()
    for project in others:
        assert incident.status == "triggered"
        ack(h, ids[project], "bob")
    assert incident.status == "acknowledged"


def test_an_unacknowledged_group_incident_unacknowledges_every_instance_acknowledged_one_by_one(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    # After the acks one by one, only the last-acknowledged instance was still recorded as listed in the
    # incident (the others' own acks had replaced their reference to it). When PagerDuty unacknowledged
    # the incident (its ack timeout ran out) and paged again, llmcost un-acked that one instance alone:
    # the four others stayed acknowledged, unseen, while the on-call was paged about all five.
    key, incident, ids = grouped_incident(h, rx, clock)
    for project in FIRST_KEYS:
        ack(h, ids[project], "bob")
        clock.advance(60)
    assert incident.status == "acknowledged"
    unack = {
        "event": {
            "id": "EVACKTIMEOUT",
            "event_type": "incident.unacknowledged",
            "resource_type": "incident",
            "occurred_at": pd_time(clock()),
            "agent": {"id": "PSERVICE", "summary": "Acknowledgement timeout", "type": "service_reference"},
            "data": {"id": "PGR0VU3", "type": "incident", "status": "triggered", "incident_key": key},
        }
    }
    response = h.pagerduty_webhook(unack)
    assert response.status_code == 200, response.text
    assert response.json()["alerts"] == {"unacknowledged": len(FIRST_KEYS)}
    assert all(state == ("firing", None) for state in states(h).values()), states(h)
    # And resolving them one by one still ends the incident with the last, not before.
    h.gateway.deliver_pending()
    for project in FIRST_KEYS:
        assert incident.status != "resolved"
        h.gateway.resolve("LLMBudgetWarning", {**LABELS, "key": project}, by="carol", comment="reset")
        h.gateway.deliver_pending()
    assert incident.status == "resolved"
