"""Budget alerts raised while an evaluation is under way: the evaluation must not resolve what it never saw.

An evaluation (the scheduler leader's budget job) reads the budgets' state, then reconciles the open alerts
with it. In between, an ingest in any process may cross a threshold and raise an alert at once, or a new
leader may do so while this one is stalled (SIGSTOP, a long GC pause). Resolving that alert from the stale
state would send a resolve, and the next evaluation would open a new alert: a second Slack thread and a
second PagerDuty incident for one problem.
"""

from __future__ import annotations

from sqlalchemy import select

from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from alerting.gateway.tables import alerts, notification_outbox
from tests.support.budgets import DAILY, NOON, build, call, ingest
from tests.support.clock import FakeClock


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
