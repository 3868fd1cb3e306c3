"""Every resolve llmcost sends says why, on both alert paths, as a reset's resolve says who and why.

Seen by the on-call after the budget period-end reasons landed, each reading "Resolved at …" and nothing more,
or a wrong who:

- with `alertmanager:` configured, dave's `budgets reset` (and erin's deletion) resolved the alert "by llmcost
  via scheduler": the Alertmanager sink had no resolve with a reason, so the person and their reason were lost;
- LLMBudgetRequestCapExceeded, resolved when its day ended, said only when;
- a budget whose limit dave raised past every level (`PUT`/`budgets update`, or a config reload) resolved
  saying only when, so the on-call could not tell a raised limit from a reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetService
from alerting.gateway.records import loads
from alerting.gateway.service import GatewayService
from alerting.push.sink import AlertmanagerSink
from exporter.services import Services
from llmcost.cli import main
from tests.support.budgets import CONFIG_REF, alertmanager_sink, budgets_on_gateway, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, gateway_config, slack_text

EVENING = datetime(2026, 12, 7, 22, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 8, 0, 0, tzinfo=UTC).timestamp()
ROUTES = {"info": [], "warning": ["slack", "email"], "critical": ["slack", "email", "pagerduty"]}
SEARCH_DAILY = {"scope": "project", "key": "search", "period": "daily", "limit": 100.0}
CAPPED = {**SEARCH_DAILY, "limit": 1000.0, "max_cost_per_request": 0.5}
PATHS = ["direct", "alertmanager"]

Stack = tuple[Services, BudgetService, GatewayService, AlertmanagerSink | None]


@pytest.fixture(params=PATHS)
def stack(request: pytest.FixtureRequest, db: str, rx: Receivers, clock: FakeClock) -> Iterator[Stack]:
    """The budgets on a real gateway, straight to it or (with `alertmanager:`) through the push sink."""
    rx.pagerduty.clock = clock
    clock.set(EVENING)
    config = gateway_config(db, rx, routes=ROUTES)
    with budgets_on_gateway(db, [], clock, config) as (services, budgets, gateway):
        sink = None
        if request.param == "alertmanager":
            sink = alertmanager_sink(services, gateway, clock)
            budgets.sink = sink
        yield services, budgets, gateway, sink


def deliver(stack: Stack) -> None:
    """What reaches people: Alertmanager routes the firing alerts pushed to it back to the gateway (as its
    webhook does), then the gateway's notifications are sent."""
    _services, _budgets, gateway, sink = stack
    if sink is not None:
        for row in sink.pushed():
            if row["ends_at"] is None:
                gateway.fire(
                    row["alertname"],
                    loads(row["labels"]),
                    severity=row["severity"],
                    annotations=loads(row["annotations"]),
                    starts_at=row["starts_at"],
                    source="alertmanager",
                )
    gateway.deliver_pending()


def critical_search(stack: Stack, *, by: str = "dave") -> None:
    """API budget search-daily ($100 a day, put by `by`) at $96 this evening: LLMBudgetCritical, delivered."""
    services, budgets, gateway, _sink = stack
    budgets.put("search-daily", SEARCH_DAILY, origin="api", by=by)
    ingest(services, call("search-evening", EVENING - 60, 96.0))
    budgets.evaluate()
    deliver(stack)
    [alert] = gateway.alerts("firing")
    assert alert.alertname == "LLMBudgetCritical"


def resolved_saying(rx: Receivers, said: str) -> None:
    """The alert's Slack message (edited) and its resolve mail both carry `said`; nothing else was resolved."""
    [update] = rx.slack.calls("chat.update")
    assert said in slack_text(update), slack_text(update)
    assert "[RESOLVED]" in slack_text(update)
    text = rx.smtp.messages[-1].part("text/plain")
    assert text.splitlines()[0] == said, text
    assert len(rx.smtp.messages) == 2, "one firing mail, one resolve mail"


def test_a_reset_says_who_and_why_on_either_path(stack: Stack, rx: Receivers, clock: FakeClock) -> None:
    _services, budgets, gateway, sink = stack
    critical_search(stack)
    [page] = rx.pagerduty.pages
    clock.advance(60)
    budgets.reset("search-daily", by="dave", reason="refund from OpenAI")
    budgets.evaluate()  # the scheduler's next pass finds nothing left to resolve
    deliver(stack)
    resolved_saying(
        rx, "Resolved at 2026-12-07 22:01 UTC by dave via budgets: budget reset by dave: refund from OpenAI"
    )
    assert page.status == "resolved"
    if sink is not None:
        assert [row["ends_at"] for row in sink.pushed()] == [EVENING + 60], "the end is pushed to Alertmanager"
    [resolved] = gateway.alerts("resolved")
    assert resolved.alertname == "LLMBudgetCritical"


def test_a_deletion_says_who_on_either_path(stack: Stack, rx: Receivers, clock: FakeClock) -> None:
    _services, budgets, _gateway, sink = stack
    critical_search(stack, by="erin")
    clock.advance(60)
    budgets.delete("search-daily", by="erin")
    deliver(stack)
    resolved_saying(rx, "Resolved at 2026-12-07 22:01 UTC by erin via budgets: budget deleted")
    if sink is not None:
        assert [row["ends_at"] for row in sink.pushed()] == [EVENING + 60]


def test_a_cap_alert_ended_by_its_day_says_so(stack: Stack, rx: Receivers, clock: FakeClock) -> None:
    services, budgets, gateway, _sink = stack
    budgets.put("search-daily", CAPPED, origin="api", by="dave")
    ingest(services, call("big-one", EVENING - 60, 2.5))
    deliver(stack)
    [alert] = gateway.alerts("firing")
    assert alert.alertname == "LLMBudgetRequestCapExceeded"

    clock.set(MIDNIGHT + 30)
    budgets.evaluate()
    deliver(stack)

    resolved_saying(
        rx,
        "Resolved at 2026-12-08 00:00 UTC by llmcost via scheduler: the daily period ended (2026-12-07 in UTC); "
        "a call over a per-request cap in the new period raises the alert again",
    )


def test_a_limit_raised_past_every_level_through_the_api_says_by_whom_and_to_what(
    stack: Stack, rx: Receivers, clock: FakeClock
) -> None:
    _services, budgets, gateway, _sink = stack
    critical_search(stack)
    clock.advance(60)
    budgets.put("search-daily", {"limit": 200}, origin="api", by="dave", mode="update")
    budgets.evaluate()
    deliver(stack)
    resolved_saying(rx, "Resolved at 2026-12-07 22:01 UTC by dave via budgets: the limit was raised to $200.00 by dave")
    [update] = rx.slack.calls("chat.update")
    assert "is at 48% ($96.00 of $200.00)" in slack_text(update), "the figures of the new limit"
    assert [a.alertname for a in gateway.alerts("resolved")] == ["LLMBudgetCritical"]


def test_a_limit_raised_in_the_config_file_says_so(stack: Stack, rx: Receivers, clock: FakeClock) -> None:
    services, budgets, _gateway, _sink = stack
    problems: list[str] = []
    before = parse_budgets_section([{"name": "search-daily", **SEARCH_DAILY}], problems)
    budgets.apply_config(before.items, origin_ref=CONFIG_REF)
    ingest(services, call("search-evening", EVENING - 60, 96.0))
    budgets.evaluate()
    deliver(stack)
    clock.advance(60)
    after = parse_budgets_section([{"name": "search-daily", **SEARCH_DAILY, "limit": 250}], problems)
    assert not problems
    budgets.apply_config(after.items, origin_ref=CONFIG_REF)  # a config reload in the leader
    budgets.evaluate()
    deliver(stack)
    resolved_saying(
        rx,
        "Resolved at 2026-12-07 22:01 UTC by config via budgets: the limit was raised to $250.00 in the config file",
    )


def test_llmcost_budgets_update_raising_the_limit_says_by_whom(
    db: str, rx: Receivers, clock: FakeClock, tmp_path: Path
) -> None:
    """The command runs on the wall clock, in its own process's view of the store (the running server sends)."""
    now = time.time()
    clock.set(now)
    config = gateway_config(db, rx, routes=ROUTES)
    with budgets_on_gateway(db, [], clock, config) as (services, budgets, gateway):
        budgets.put("search-daily", SEARCH_DAILY, origin="cli", by="carol")
        ingest(services, call("search-now", now - 1, 96.0))
        budgets.evaluate()
        gateway.deliver_pending()
        path = tmp_path / "llmcost.yml"
        path.write_text(yaml.safe_dump(config.raw))
        argv = ["budgets", "update", "search-daily", "--limit", "200", "--by", "carol"]
        assert main([*argv, "--config", str(path), "--db", db]) == 0
        clock.set(time.time() + 1)
        gateway.deliver_pending()
        [update] = rx.slack.calls("chat.update")
        shown = slack_text(update)
        assert "by carol via budgets: the limit was raised to $200.00 by carol" in shown, shown
        assert "is at 48% ($96.00 of $200.00)" in shown, shown
