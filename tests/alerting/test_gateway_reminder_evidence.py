"""A "still firing" reminder of a budget or spike alert only after the scheduler's pass has seen it still firing.

Defect: `llmcost serve` stopped at 20:33 UTC with a daily budget's alert firing and restarted the next
morning. The gateway's first tick sent a ":repeat: Still firing since …" reply broadcast to Slack, a
reminder mail and a PagerDuty trigger (a page), and seconds later the budgets pass resolved the alert:
its period had ended at midnight. The reminder claimed what nobody had checked for twelve hours.
Now an alert the scheduler evaluates is reminded of only once a pass of its job has completed since the
reminder fell due (the job's last successful run, read from the store, so the gateway and the scheduler
may run in different processes). Alerts of Prometheus rules, received from Alertmanager, are reminded of
as before.

Two processes on one store, as with several `llmcost serve --role scheduler` (the leader runs the jobs,
every one of them ticks): `serving` takes the calls and runs the gateway's tick, `leader` runs the
budgets pass on the scheduler (`AlertScheduler.run_once`), both on the test's clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from alerting.scheduler import AlertScheduler, Outcome
from exporter.services import Services
from llmcost.services import open_services
from llmcost.wiring import EVALUATED_BY, AlertingParts, attach_alerting
from tests.support.budgets import call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, am_alert, am_payload, gateway_config
from tests.support.helpers import apply_config_budgets
from tests.support.monitoring_assets import SCHEDULER_ALERTS

STOPPED = datetime(2026, 12, 7, 20, 33, tzinfo=UTC).timestamp()
"""When the alerts were notified and the server stopped."""
MORNING = datetime(2026, 12, 8, 8, 30, tzinfo=UTC).timestamp()
"""The restart: past midnight (the daily period ended) and past the 4 h `repeat_interval`."""
REPEAT = 4 * 3600.0
DAILY = {"name": "daily-total", "scope": "global", "period": "daily", "limit": 1.0}
MONTHLY = {"name": "monthly-total", "scope": "global", "period": "monthly", "limit": 1.0}


@dataclass
class Process:
    """One `llmcost serve` process's alerting side on the shared store."""

    services: Services
    parts: AlertingParts


@dataclass
class Stack:
    serving: Process
    leader: Process
    scheduler: AlertScheduler

    def budgets_pass(self) -> None:
        """The leader's scheduled budgets pass (recorded in the store as the scheduler does)."""
        assert self.scheduler.run_once("budgets") is Outcome.SUCCESS

    def tick(self) -> int:
        """The serving process's gateway tick, then its deliveries: how many reminders the tick queued."""
        repeats = self.serving.parts.gateway.tick().repeats
        self.serving.parts.gateway.deliver_pending()
        return repeats

    def deliver(self) -> None:
        self.serving.parts.gateway.deliver_pending()


def open_process(db: str, rx: Receivers, clock: FakeClock, budget: dict[str, object]) -> Process:
    config = gateway_config(db, rx, budgets=[budget])
    services = open_services(config, clock=clock, start_writer=False)
    return Process(services, attach_alerting(services, "ingest"))  # no background scheduler: the test runs it


@pytest.fixture(params=[DAILY, MONTHLY], ids=["daily", "monthly"])
def stack(request: pytest.FixtureRequest, db: str, rx: Receivers, clock: FakeClock) -> Iterator[Stack]:
    rx.pagerduty.clock = clock
    clock.set(STOPPED)
    serving = open_process(db, rx, clock, request.param)
    leader = open_process(db, rx, clock, request.param)
    apply_config_budgets(leader.parts.budgets)
    scheduler = AlertScheduler(leader.services.store, {"budgets": (60.0, leader.parts.budgets.evaluate)}, clock=clock)
    try:
        yield Stack(serving, leader, scheduler)
    finally:
        for process in (serving, leader):
            process.services.close()


def exceed(stack: Stack, rx: Receivers) -> None:
    """$1.20 of a $1 budget at 20:32, the pass at 20:33: one critical alert, told on every channel."""
    ingest(stack.serving.services, call("late-call", STOPPED - 60, 1.2))
    stack.budgets_pass()
    stack.deliver()
    assert len(rx.slack.posted) == len(rx.smtp.messages) == len(rx.pagerduty.pages) == 1


def reminders(rx: Receivers) -> list[str]:
    """Every "still firing" told so far, on any channel."""
    told = [r["text"] for r in rx.slack.replies if "Still firing" in r["text"]]
    told += [m.part("text/plain") for m in rx.smtp.messages if "Still firing" in m.part("text/plain")]
    return told + [f"PagerDuty {e['event_action']}" for e in rx.pagerduty.events[1:] if e["event_action"] == "trigger"]


@pytest.mark.parametrize("stack", [DAILY], ids=["daily"], indirect=True)
def test_no_reminder_after_downtime_for_a_daily_budget_whose_period_ended(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    exceed(stack, rx)
    [incident] = rx.pagerduty.pages

    clock.set(MORNING)  # restarted: the gateway's tick comes before the scheduler's first pass
    assert stack.tick() == 0, "reminded of an alert no pass has looked at since 20:33: " + " | ".join(reminders(rx))
    assert reminders(rx) == []

    clock.advance(1)
    stack.budgets_pass()  # the period ended at midnight: resolved
    stack.deliver()
    assert stack.serving.parts.gateway.alerts("firing") == []
    assert stack.tick() == 0
    assert reminders(rx) == []
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert incident.status == "resolved"
    [resolved] = rx.slack.calls("chat.update")  # its message shows the resolve; nothing else was posted
    assert resolved.json["text"].startswith("[RESOLVED]") and len(rx.slack.calls("chat.postMessage")) == 1


@pytest.mark.parametrize("stack", [MONTHLY], ids=["monthly"], indirect=True)
def test_after_downtime_a_budget_still_over_is_reminded_once_the_pass_has_seen_it(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    exceed(stack, rx)

    clock.set(MORNING)
    assert stack.tick() == 0
    assert reminders(rx) == []

    clock.advance(1)
    stack.budgets_pass()  # still over its monthly limit: that pass is the evidence, and reminds of it
    stack.tick()
    told = reminders(rx)
    assert len([t for t in told if t.startswith("PagerDuty")]) == 1, told
    assert len(told) == 3, told  # one Slack reply, one mail, one PagerDuty trigger (to the same incident)
    assert len(rx.pagerduty.pages) == 1

    clock.advance(60)
    assert stack.tick() == 0  # told once, not again until the next `repeat_interval`
    assert len(reminders(rx)) == 3


@pytest.mark.parametrize("stack", [MONTHLY], ids=["monthly"], indirect=True)
def test_while_the_scheduler_runs_reminders_come_every_repeat_interval(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    exceed(stack, rx)
    for _ in range(2):
        clock.advance(REPEAT)
        stack.budgets_pass()
        stack.tick()
    assert len([t for t in reminders(rx) if t.startswith("PagerDuty")]) == 2


@pytest.mark.parametrize("stack", [MONTHLY], ids=["monthly"], indirect=True)
def test_an_alert_of_a_prometheus_rule_is_reminded_without_a_scheduler_pass(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    gateway = stack.serving.parts.gateway
    alert = am_alert("LLMCostExporterDown", labels={"instance": "llmcost-0:9800"}, severity="critical")
    gateway.receive_alertmanager(am_payload([alert]))
    stack.deliver()
    assert len(rx.pagerduty.pages) == 1

    clock.advance(REPEAT)
    assert stack.tick() == 1  # Prometheus evaluates it, not llmcost's scheduler: as before
    assert len(reminders(rx)) == 3


@pytest.mark.parametrize("stack", [MONTHLY], ids=["monthly"], indirect=True)
def test_llmcosts_own_alert_back_from_alertmanager_waits_for_the_pass_too(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    """On the Alertmanager path the budget alert comes back through the webhook: still the budgets job's."""
    labels = {"budget": "monthly-total", "scope": "global", "key": "", "llmcost_origin": "llmcost"}
    gateway = stack.serving.parts.gateway
    gateway.receive_alertmanager(am_payload([am_alert("LLMBudgetWarning", labels=labels)]))
    stack.deliver()
    [alert] = gateway.alerts("firing")
    assert (alert.alertname, alert.source) == ("LLMBudgetWarning", "alertmanager")

    clock.advance(REPEAT)
    assert stack.tick() == 0  # no pass since it fell due
    stack.budgets_pass()  # nothing spent: the pass ends it
    assert gateway.alerts("firing") == []
    assert stack.tick() == 0
    assert reminders(rx) == []


def test_every_alert_the_scheduler_raises_waits_for_the_job_that_evaluates_it() -> None:
    """A new alert of the scheduler's not listed here would be reminded of with no pass behind it."""
    assert {name for names in EVALUATED_BY.values() for name in names} == SCHEDULER_ALERTS
