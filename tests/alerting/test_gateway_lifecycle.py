"""Alert lifecycle through `GatewayService` against real receivers, on SQLite and PostgreSQL.

Deliveries run explicitly (`deliver_pending`, no worker threads) and time is a fake clock, so every
count below is exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from alerting.gateway.changes import AlertConflict, AlertNotFound
from alerting.model import fingerprint
from tests.support.clock import FakeClock
from tests.support.gateway_harness import (
    BUDGET_LABELS,
    Harness,
    Receivers,
    am_alert,
    am_payload,
)

HOUR = 3600.0


@pytest.fixture
def h(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    with Harness(db, rx, clock=clock) as harness:
        yield harness


def fire(h: Harness, severity: str = "critical", name: str = "LLMBudgetCritical", **kw):  # type: ignore[no-untyped-def]
    annotations = kw.pop("annotations", {"summary": "Budget team-a-monthly at 96%"})
    return h.gateway.fire(name, BUDGET_LABELS, severity=severity, annotations=annotations, **kw)


def test_a_new_critical_alert_notifies_each_channel_once(h: Harness, rx: Receivers) -> None:
    change = fire(h)
    assert change.action == "fired" and change.decision is not None
    assert change.decision.reason.value == "first notification"
    assert set(change.channels) == {"slack", "email", "pagerduty"}
    assert fire(h).action == "unchanged"  # the scheduler re-evaluating a minute later

    assert h.gateway.deliver_pending() == 3
    assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 1}
    [post] = rx.slack.calls("chat.postMessage")
    buttons = [e for b in post.json["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {"action_id": "llmcost_ack", "value": str(change.alert.id)}.items() <= buttons[0].items()
    [event] = rx.pagerduty.events
    fp = fingerprint("LLMBudgetCritical", BUDGET_LABELS)
    assert (event["event_action"], event["dedup_key"]) == ("trigger", f"llmcost-{fp}")
    [mail] = rx.smtp.messages
    # A budget's levels are one alert: its mail subject names the family, stable across escalation.
    assert mail.message["Subject"].startswith("LLMBudget (budget=")
    assert h.metric("llm_notifications_total", outcome="sent") == 3
    assert h.metric("llm_alerts_active", alertname="LLMBudgetCritical", state="firing") == 1
    assert h.gateway.deliver_pending() == 0


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_routes_follow_severity(h: Harness, rx: Receivers) -> None:
    assert set(fire(h, "warning", "LLMBudgetWarning").channels) == {"slack", "email"}
    other = {**BUDGET_LABELS, "key": "team-b"}  # another instance: the same one's info would be a fall
    assert h.gateway.fire("LLMBudgetInfo", other, severity="info", annotations={}).channels == ()
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 1, "email": 1, "pagerduty": 0}


def test_a_fall_under_a_paging_severity_resolves_the_incident_and_edits_the_message(h: Harness, rx: Receivers) -> None:
    """A limit raised under critical: the incident stops paging, Slack shows the level, nobody is told."""
    alert_id = fire(h).alert.id
    h.gateway.deliver_pending()
    change = fire(h, "warning", "LLMBudgetWarning", annotations={"summary": "Budget team-a-monthly at 84%"})
    assert (change.action, change.reason, set(change.channels)) == ("updated", "severity fell", {"pagerduty", "slack"})
    assert (
        fire(h, "warning", "LLMBudgetWarning", annotations={"summary": "Budget team-a-monthly at 84%"}).channels == ()
    )
    assert h.gateway.deliver_pending() == 2
    trigger, resolve = rx.pagerduty.events
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
    [edit] = rx.slack.calls("chat.update")
    assert "LLMBudgetWarning" in str(edit.json) and "84%" in str(edit.json)
    assert len(rx.slack.calls("chat.postMessage")) == 1 and len(rx.smtp.messages) == 1  # nobody notified

    # Critical again (spend caught up with the new limit): the same alert rises, and pages anew.
    rose = fire(h)
    assert (rose.alert.id, rose.action, set(rose.channels)) == (alert_id, "escalated", {"slack", "email", "pagerduty"})
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve", "trigger"]
    assert {e["dedup_key"] for e in rx.pagerduty.events} == {trigger["dedup_key"]}


def test_repeats_only_after_the_repeat_interval_and_never_while_acknowledged(
    h: Harness, rx: Receivers, clock: FakeClock
) -> None:
    alert_id = fire(h, "warning").alert.id
    h.gateway.deliver_pending()
    clock.advance(4 * HOUR - 1)
    assert h.gateway.tick().repeats == 0
    assert fire(h, "warning").action == "unchanged"
    clock.advance(1)
    assert h.gateway.tick().repeats == 1
    assert h.gateway.tick().repeats == 0  # the same tick again (another process): nothing more
    h.gateway.deliver_pending()
    assert rx.counts() == {"slack": 3, "email": 2, "pagerduty": 0}  # Slack: message update + thread reply
    assert rx.slack.calls("chat.update") and rx.slack.calls("chat.postMessage")[-1].json["thread_ts"]

    h.gateway.ack(alert_id, by="alice")
    h.gateway.deliver_pending()
    before = rx.counts()
    clock.advance(24 * HOUR)
    assert h.gateway.tick().repeats == 0
    assert fire(h, "warning").action == "unchanged"
    h.gateway.deliver_pending()
    assert rx.counts() == before

    h.gateway.unack(alert_id, by="alice")
    clock.advance(4 * HOUR)
    assert h.gateway.tick().repeats == 1


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # same SQL paths run on PostgreSQL elsewhere
def test_a_severity_rise_escalates_once_and_pages(h: Harness, rx: Receivers) -> None:
    fire(h, "warning", "LLMCostSpike")
    h.gateway.deliver_pending()
    change = fire(h, "critical", "LLMCostSpike")
    assert change.action == "escalated"
    assert set(change.channels) == {"slack", "email", "pagerduty"}
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger"]
    assert "Escalated from warning to critical" in rx.smtp.messages[-1].part("text/plain")
    assert fire(h, "warning", "LLMCostSpike").action == "unchanged"  # falling back is not news
    assert fire(h, "critical", "LLMCostSpike").action == "unchanged"  # nor rising back to what was sent


def test_resolve_notifies_once_and_a_new_fire_is_a_new_incident(h: Harness, rx: Receivers) -> None:
    first = fire(h).alert
    h.gateway.deliver_pending()
    assert h.gateway.resolve("LLMBudgetCritical", BUDGET_LABELS).action == "resolved"
    assert h.gateway.resolve("LLMBudgetCritical", BUDGET_LABELS).action == "ignored"
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert len(rx.smtp.messages) == 2 and len(rx.slack.calls("chat.update")) == 1
    assert h.metric("llm_alerts_active") == 0

    again = fire(h).alert
    assert again.id != first.id and again.state == "firing"
    h.gateway.deliver_pending()
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve", "trigger"]
    states = {a["id"]: a["state"] for a in h.alerts()}
    assert states == {first.id: "resolved", again.id: "firing"}


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_a_resolve_with_figures_shows_them_only_at_the_level_they_were_read_for(h: Harness, rx: Receivers) -> None:
    """The figures a budget evaluation read when it resolved (tests/e2e/test_budget_limit_raised.py) are
    what the resolve shows; figures read for another level (the alert rose meanwhile) are left out."""
    fire(h)
    h.gateway.deliver_pending()
    now = {"summary": "Budget team-a-monthly at 9%"}
    other = {("LLMBudgetWarning", frozenset(BUDGET_LABELS.items())): now}
    [ignored] = h.gateway.resolve_many([("LLMBudgetCritical", BUDGET_LABELS)], started_by=None, figures=other)
    assert ignored.alert.annotations["summary"] == "Budget team-a-monthly at 96%"

    fire(h)
    h.gateway.deliver_pending()
    figures = {("LLMBudgetCritical", frozenset(BUDGET_LABELS.items())): now}
    [resolved] = h.gateway.resolve_many([("LLMBudgetCritical", BUDGET_LABELS)], figures=figures)
    assert resolved.action == "resolved" and resolved.alert.annotations == now
    h.gateway.deliver_pending()
    assert "at 9%" in str(rx.slack.calls("chat.update")[-1].json)
    assert "at 9%" in rx.smtp.messages[-1].part("text/plain")


def test_an_ack_updates_every_notified_channel_and_is_audited(h: Harness, rx: Receivers) -> None:
    alert_id = fire(h).alert.id
    h.gateway.deliver_pending()
    change = h.gateway.ack(alert_id, by="alice", comment="on it")
    assert change.action == "acknowledged" and change.alert.acknowledged_by == "alice"
    assert h.gateway.ack(alert_id, by="bob").action == "unchanged"  # a replayed ack changes nothing
    h.gateway.deliver_pending()
    [update] = rx.slack.calls("chat.update")
    assert update.json["ts"] == "1700000000.000100"
    assert re.search(
        r"Acknowledged by alice via api at \d{4}-\d\d-\d\d \d\d:\d\d UTC: on it", str(update.json["blocks"])
    )
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge"]
    root, reply = rx.smtp.messages
    assert reply.message["In-Reply-To"] == root.message["Message-ID"]
    assert h.metric("llm_alerts_active", state="acknowledged") == 1

    h.gateway.unack(alert_id, by="alice", comment="not mine")
    h.gateway.resolve("LLMBudgetCritical", BUDGET_LABELS, by="budget-check")
    with pytest.raises(AlertConflict):
        h.gateway.ack(alert_id, by="alice")
    with pytest.raises(AlertNotFound):
        h.gateway.ack(alert_id + 100, by="alice")
    trail = [(e["action"], e["by"], e["via"], e["comment"]) for e in h.gateway.history(alert_id)]
    assert trail == [
        ("fired", "", "scheduler", ""),
        ("acknowledged", "alice", "api", "on it"),
        ("unacknowledged", "alice", "api", "not mine"),
        ("resolved", "budget-check", "scheduler", ""),
    ]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # no SQL difference to cover
def test_default_routes_are_limited_to_configured_channels(db: str, rx: Receivers) -> None:
    # A route the config writes must name configured channels (tests/alerting/test_gateway_route_channels.py);
    # the default ones name all three and keep those configured.
    with Harness(db, rx, channels=("slack",)) as h:
        assert fire(h, "warning", "A").channels == ("slack",)
        assert fire(h, "critical", "B").channels == ("slack",)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # same SQL paths run on PostgreSQL elsewhere
def test_tick_forgets_old_receipts_and_delivered_rows_but_keeps_dead_letters(
    db: str, rx: Receivers, clock: FakeClock
) -> None:
    rx.slack.enqueue(200, body={"ok": False, "error": "channel_not_found"})
    firing = am_payload([am_alert(severity="critical")])
    h = Harness(db, rx, clock=clock)
    try:
        h.post_alertmanager(firing)
        h.gateway.deliver_pending()
        h.post_alertmanager(am_payload([am_alert(severity="critical", status="resolved")]))
        h.gateway.deliver_pending()
        assert h.gateway.tick().receipts_purged == 0
        clock.advance(31 * 86400)
        result = h.gateway.tick()
        assert (result.repeats, result.receipts_purged, result.outbox_purged) == (0, 2, 5)
        assert [n["status"] for n in h.gateway.notifications()] == ["dead"]
    finally:
        h.close()
    # A new process (no memory of recent payloads, no receipt left) gets the old firing payload again:
    # the occurrence it describes was resolved, so it is not reopened.
    with Harness(db, rx, clock=clock) as fresh:
        assert fresh.post_alertmanager(firing).json() == {"status": "ok", "alerts": {"ignored": 1}}
        fresh.gateway.deliver_pending()
        assert rx.counts() == {"slack": 2, "email": 2, "pagerduty": 2}
