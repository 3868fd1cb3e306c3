"""Budget alerts raised while an evaluation is under way: the evaluation must not resolve what it never saw.

An evaluation (the scheduler leader's budget job) reads the budgets' state, then reconciles the open alerts
with it. In between, an ingest in any process may cross a threshold and raise an alert at once, or a new
leader may do so while this one is stalled (SIGSTOP, a long GC pause). Resolving that alert from the stale
state would send a resolve, and the next evaluation would open a new alert: a second Slack thread and a
second PagerDuty incident for one problem.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from alerting.gateway.config import settings_from_config
from alerting.gateway.records import rfc3339
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from alerting.gateway.tables import alerts, notification_outbox
from alerting.push.pusher import Pusher
from alerting.push.settings import parse_push_section
from tests.support.budgets import DAILY, NOON, alertmanager_sink, build, call, ingest
from tests.support.clock import FakeClock
from tests.support.recording_servers import RecordingServer


def test_an_alert_raised_after_the_evaluation_read_the_state_is_not_resolved_by_it(
    db_url: str, clock: FakeClock
) -> None:
    clock.set(NOON)
    services, budgets, _recorder = build(db_url, [DAILY], clock)
    gateway = GatewayService(services.store, settings_from_config(services.config), clock=clock, start_workers=False)
    budgets.sink = GatewaySink(gateway)
    try:
        ingest(services, call("a", NOON - 5, 40.0))
        started = clock.now
        stale = budgets.instances(started)  # the evaluation reads the state: 40 %, nothing to alert on
        clock.advance(30)  # ... and stalls, while an ingest crosses 80 % and raises the warning at once
        ingest(services, call("b", NOON - 4, 45.0))
        clock.advance(30)
        budgets.alerts.reconcile(budgets.definitions(), stale, started)  # it wakes up and reconciles
        budgets.evaluate()  # the next evaluation, on the current state
        with services.store.reading() as conn:
            rows = conn.execute(select(alerts.c.alertname, alerts.c.state)).all()
            kinds = conn.execute(select(notification_outbox.c.kind).distinct()).scalars().all()
        assert [tuple(r) for r in rows] == [("LLMBudgetWarning", "firing")], "one alert, never resolved"
        assert "resolved" not in kinds
    finally:
        gateway.close()
        services.close()


def test_through_alertmanager_an_alert_raised_after_the_evaluation_read_the_state_is_not_resolved_by_it(
    db_url: str, clock: FakeClock
) -> None:
    """The same race with `alertmanager:` configured: the push sink must not push the stale resolve either.

    Otherwise Alertmanager is told the warning ended, then (next evaluation) that a new one started: a
    resolve and a second notification routed to every receiver, and a resolve of the gateway's alert.
    """
    clock.set(NOON)
    services, budgets, _recorder = build(db_url, [DAILY], clock)
    gateway = GatewayService(services.store, settings_from_config(services.config), clock=clock, start_workers=False)
    with RecordingServer() as alertmanager:
        settings = parse_push_section({"url": alertmanager.url.rstrip("/"), "retries": 0}, [])
        pusher = Pusher(services.store, settings, clock=clock, sleep=lambda _s: None)
        sink = alertmanager_sink(services, gateway, clock)
        budgets.sink = sink
        try:
            ingest(services, call("a", NOON - 5, 40.0))
            started = clock.now
            stale = budgets.instances(started)  # the evaluation reads the state: 40 %, nothing to alert on
            clock.advance(30)  # ... and stalls, while an ingest crosses 80 % and raises the warning at once
            ingest(services, call("b", NOON - 4, 45.0))
            raised = clock.now
            pusher.push()
            (warning,) = _posted(alertmanager)
            # Alertmanager routes it back to the gateway, as the shipped alertmanager.yml does.
            gateway.receive_alertmanager(
                {"version": "4", "groupKey": "{}:{}", "alerts": [{**warning, "status": "firing"}]}
            )
            clock.advance(30)
            budgets.alerts.reconcile(budgets.definitions(), stale, started)  # it wakes up and reconciles
            budgets.evaluate()  # the next evaluation, on the current state
            alertmanager.requests.clear()
            pusher.push()
            (pushed,) = _posted(alertmanager)
            assert pushed["labels"]["alertname"] == "LLMBudgetWarning"
            assert pushed["startsAt"] == rfc3339(raised), "the same occurrence, never ended and restarted"
            assert pushed["endsAt"] > rfc3339(clock.now), "still firing in Alertmanager"
            assert [(r["alertname"], r["ends_at"]) for r in sink.pushed()] == [("LLMBudgetWarning", None)]
            with services.store.reading() as conn:
                rows = conn.execute(select(alerts.c.alertname, alerts.c.state)).all()
            assert [tuple(r) for r in rows] == [("LLMBudgetWarning", "firing")], "one alert, never resolved"
        finally:
            gateway.close()
            services.close()


def test_an_alert_raised_by_a_process_whose_clock_is_behind_is_not_resolved_by_a_stale_evaluation(
    db_url: str, clock: FakeClock
) -> None:
    """Defect: the evaluation told "raised since I read the state" from "seen" by comparing the alert's start,
    written with the clock of the process that raised it, with its own clock. An ingest host a minute slow
    raised its warning "before" the evaluation began, so the leader resolved it from a state read before
    the crossing: a resolve on Slack and PagerDuty, and a new thread and incident at the next evaluation.
    Now an alert is resolved only when the budget's state, read again just before, no longer calls for it.
    """
    clock.set(NOON)
    services, budgets, _recorder = build(db_url, [DAILY], clock)
    gateway = GatewayService(services.store, settings_from_config(services.config), clock=clock, start_workers=False)
    budgets.sink = GatewaySink(gateway)
    slow = FakeClock(NOON - 60)  # the ingest host's clock: a minute behind the leader's
    other, other_budgets, _ = build(db_url, [DAILY], slow)
    other_gateway = GatewayService(other.store, settings_from_config(other.config), clock=slow, start_workers=False)
    other_budgets.sink = GatewaySink(other_gateway)
    try:
        ingest(services, call("a", NOON - 5, 40.0))
        started = clock.now
        stale = budgets.instances(started)  # the leader's evaluation reads the state: 40 %, nothing to alert on
        clock.advance(1)  # ... and while it works, the other process crosses 80 % and raises the warning
        slow.advance(1)
        ingest(other, call("b", NOON - 4, 45.0))
        budgets.alerts.reconcile(budgets.definitions(), stale, started)
        clock.advance(30)
        budgets.evaluate()  # the next evaluation, on the current state
        with services.store.reading() as conn:
            rows = conn.execute(select(alerts.c.alertname, alerts.c.state)).all()
            kinds = conn.execute(select(notification_outbox.c.kind).distinct()).scalars().all()
        assert [tuple(r) for r in rows] == [("LLMBudgetWarning", "firing")], "one alert, never resolved"
        assert "resolved" not in kinds
    finally:
        other_gateway.close()
        other.close()
        gateway.close()
        services.close()


def _posted(server: RecordingServer) -> list[dict[str, Any]]:
    return [alert for request in server.requests for alert in request.json]
