"""A budget alert resolved because its period ended says so, on every channel, as a reset's resolve says why.

Seen by the on-call at 00:00 UTC: LLMBudgetCritical of budget per-project-daily, key search, resolved
with "Resolved at 2026-12-08 00:00 UTC" and nothing more: spend does not fall within a period, so was it
reset (a reset says "by dave via budgets: budget reset by dave: …"), or did the day end? And the resolve
mail still read `[CRITICAL] LLMBudgetCritical: …` under that line, as if the budget were still critical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerting.budgets.service import BudgetService
from alerting.gateway.service import GatewayService
from exporter.services import Services
from tests.support.budgets import SEARCH_REQUESTS, alertmanager_sink, budgets_on_gateway, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, gateway_config, slack_text

EVENING = datetime(2026, 12, 7, 22, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 8, 0, 0, tzinfo=UTC).timestamp()
PER_PROJECT_DAILY = {"name": "per-project-daily", "scope": "project", "key": "*", "period": "daily", "limit": 100.0}
ROUTES = {"info": [], "warning": ["slack", "email"], "critical": ["slack", "email", "pagerduty"]}
DAY_ENDED = "the daily period ended (2026-12-07 in UTC); spend starts again from $0.00 in the new period"
NOVEMBER_ENDS_IN_PARIS = datetime(2026, 11, 30, 23, tzinfo=UTC).timestamp()
RESOLVED_BY_THE_DAY = f"Resolved at 2026-12-08 00:00 UTC by llmcost via scheduler: {DAY_ENDED}"


@pytest.fixture
def stack(db: str, rx: Receivers, clock: FakeClock) -> Iterator[tuple[Services, BudgetService, GatewayService]]:
    rx.pagerduty.clock = clock
    clock.set(EVENING)
    config = gateway_config(db, rx, routes=ROUTES)
    with budgets_on_gateway(db, [PER_PROJECT_DAILY], clock, config) as stack:
        yield stack


def spend(services: Services, budgets: BudgetService, gateway: GatewayService, *projects: str) -> None:
    """$96 in each project this evening (critical), evaluated and delivered."""
    ingest(services, *[call(f"{project}-evening", EVENING - 60, 96.0, project=project) for project in projects])
    budgets.evaluate()
    gateway.deliver_pending()


def the_day_ends(budgets: BudgetService, gateway: GatewayService, clock: FakeClock) -> None:
    """The scheduler's first budget pass of 2026-12-08, nothing spent yet today."""
    clock.set(MIDNIGHT + 30)
    budgets.evaluate()
    gateway.deliver_pending()


def test_a_budget_alert_resolved_by_the_end_of_its_day_says_so_in_slack_mail_and_pagerduty(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    services, budgets, gateway = stack
    spend(services, budgets, gateway, "search")
    [alert] = gateway.alerts("firing")
    assert alert.alertname == "LLMBudgetCritical"
    [page] = rx.pagerduty.pages
    assert len(rx.smtp.messages) == 1

    the_day_ends(budgets, gateway, clock)

    [resolved] = gateway.alerts("resolved")
    [update] = rx.slack.calls("chat.update")
    shown = slack_text(update)
    assert "[RESOLVED] LLMBudgetCritical" in shown, shown
    assert RESOLVED_BY_THE_DAY in shown, shown
    assert "is at 96% ($96.00 of $100.00)" in shown, "the finished day's figures"

    mail = rx.smtp.messages[-1]
    text, html = mail.part("text/plain"), mail.part("text/html")
    lines = text.splitlines()
    assert lines[0] == RESOLVED_BY_THE_DAY, text
    assert "[RESOLVED] LLMBudgetCritical: Budget per-project-daily is at 96% ($96.00 of $100.00)" in lines, text
    assert "[CRITICAL]" not in text, f"the resolve mail reads as if still critical:\n{text}"
    assert RESOLVED_BY_THE_DAY in html, html
    assert "[RESOLVED] LLMBudgetCritical" in html and "[CRITICAL]" not in html, html

    # Events API v2: a resolve carries no text; llmcost sends the bare resolve, which ends the incident.
    resolve = rx.pagerduty.events[-1]
    assert set(resolve) == {"routing_key", "event_action", "dedup_key"}, resolve
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", page.dedup_key)
    assert page.status == "resolved"
    assert resolved.id == alert.id


def test_a_reset_still_says_who_and_why_and_its_mail_reads_resolved(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    services, budgets, gateway = stack
    spend(services, budgets, gateway, "search")
    clock.advance(60)
    budgets.reset("per-project-daily", key="search", by="dave", reason="refund from OpenAI")
    gateway.deliver_pending()
    said = "Resolved at 2026-12-07 22:01 UTC by dave via budgets: budget reset by dave: refund from OpenAI"
    text = rx.smtp.messages[-1].part("text/plain")
    assert said in text and "[RESOLVED] LLMBudgetCritical" in text and "[CRITICAL]" not in text, text
    assert said in slack_text(rx.slack.calls("chat.update")[-1])
    the_day_ends(budgets, gateway, clock)  # nothing left open to resolve
    assert len(rx.smtp.messages) == 2


def test_instances_resolved_together_by_the_end_of_the_day_say_why_in_their_grouped_threads(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    services, budgets, gateway = stack
    spend(services, budgets, gateway, "search", "chat", "ui")
    [grouped_post] = rx.slack.posted
    assert grouped_post["text"].startswith("3 instances of budget per-project-daily firing"), grouped_post["text"]
    [grouped_mail] = rx.smtp.messages
    [page] = rx.pagerduty.pages

    the_day_ends(budgets, gateway, clock)

    assert len(gateway.alerts("resolved")) == 3
    reply = rx.slack.replies[-1]
    assert reply["thread_ts"] == grouped_post["ts"], "not in the grouped message's thread"
    shown = slack_text(rx.slack.calls("chat.postMessage")[-1])
    assert "3 instances of budget per-project-daily resolved by llmcost via scheduler" in shown, shown
    assert f"Why: {DAY_ENDED}" in shown, shown
    mail = rx.smtp.messages[-1]
    assert mail.message["In-Reply-To"] == grouped_mail.message["Message-ID"]
    text = mail.part("text/plain")
    assert "3 instances of budget per-project-daily resolved by llmcost via scheduler" in text, text
    assert f"Why: {DAY_ENDED}" in text, text
    assert page.status == "resolved"


@pytest.mark.parametrize(
    ("period", "timezone", "ended", "said"),
    [
        ("hourly", "UTC", MIDNIGHT, "the hourly period ended (2026-12-07 23:00 to 00:00 in UTC)"),
        ("weekly", "UTC", MIDNIGHT - 86400, "the weekly period ended (2026-11-30 to 2026-12-06 in UTC)"),
        ("monthly", "Europe/Paris", NOVEMBER_ENDS_IN_PARIS, "the monthly period ended (November 2026 in Europe/Paris)"),
        ("yearly", "UTC", datetime(2027, 1, 1, tzinfo=UTC).timestamp(), "the yearly period ended (2026 in UTC)"),
    ],
    ids=["hourly", "weekly", "monthly-in-paris", "yearly"],
)
def test_the_reason_names_the_period_that_ended_in_the_budgets_timezone(
    db_url: str, rx: Receivers, clock: FakeClock, period: str, timezone: str, ended: float, said: str
) -> None:
    budget = {
        "name": "search-tokens",
        "scope": "project",
        "key": "search",
        "period": period,
        "timezone": timezone,
        "unit": "tokens",
        "limit": 1000,
    }
    clock.set(ended - 600)
    routes = {"info": [], "warning": ["slack"], "critical": ["slack"]}
    config = gateway_config(db_url, rx, channels=("slack",), routes=routes)
    with budgets_on_gateway(db_url, [budget], clock, config) as (services, budgets, gateway):
        ingest(services, call("big", ended - 660, 0.0, input_tokens=900, output_tokens=60))
        budgets.evaluate()
        gateway.deliver_pending()
        assert [a.alertname for a in gateway.alerts("firing")] == ["LLMBudgetCritical"]
        clock.set(ended + 30)
        budgets.evaluate()
        gateway.deliver_pending()
        shown = slack_text(rx.slack.calls("chat.update")[-1])
        assert said in shown and "starts again from 0 tokens in the new period" in shown, shown


def test_a_crossing_early_in_the_next_hour_ends_the_last_hours_alert_saying_why(
    db_url: str, rx: Receivers, clock: FakeClock
) -> None:
    """Four requests at 11:00:01, before the scheduler's next pass: the ingest itself ends 10:50's alert."""
    ten_fifty = datetime(2026, 11, 11, 10, 50, tzinfo=UTC).timestamp()
    clock.set(ten_fifty)
    routes = {"info": [], "warning": ["slack"], "critical": ["slack"]}
    config = gateway_config(db_url, rx, channels=("slack",), routes=routes)
    with budgets_on_gateway(db_url, [SEARCH_REQUESTS], clock, config) as (services, _budgets, gateway):
        ingest(services, *[call(f"a{i}", ten_fifty - 10 + i, 0.01) for i in range(4)])
        gateway.deliver_pending()
        clock.set(ten_fifty + 600 + 5)
        ingest(services, *[call(f"b{i}", ten_fifty + 600 + 1 + i, 0.01) for i in range(4)])
        gateway.deliver_pending()
        [update] = rx.slack.calls("chat.update")
        said = (
            "Resolved at 2026-11-11 11:00 UTC by llmcost via scheduler: the hourly period ended "
            "(2026-11-11 10:00 to 11:00 in UTC); spend starts again from 0 requests in the new period"
        )
        assert said in slack_text(update), slack_text(update)
        assert len(rx.slack.calls("chat.postMessage")) == 2, "the new hour's crossing is a thread of its own"


def test_through_alertmanager_the_resolve_says_why_too(db_url: str, rx: Receivers, clock: FakeClock) -> None:
    """With `alertmanager:` the budget's alerts come back through Alertmanager's webhook, but their end is
    applied to the gateway at once, with its reason (Alertmanager's own end, routed back later, has none)."""
    clock.set(EVENING)
    routes = {"info": [], "warning": ["slack"], "critical": ["slack"]}
    config = gateway_config(db_url, rx, channels=("slack",), routes=routes)
    with budgets_on_gateway(db_url, [PER_PROJECT_DAILY], clock, config) as (services, budgets, gateway):
        sink = alertmanager_sink(services, gateway, clock)
        budgets.sink = sink
        ingest(services, call("search-evening", EVENING - 60, 96.0))
        budgets.evaluate()
        [row] = sink.pushed()
        labels = {"budget": "per-project-daily", "scope": "project", "key": "search"}
        gateway.fire(row["alertname"], labels, severity="critical", source="alertmanager")  # as it delivers it
        gateway.deliver_pending()
        the_day_ends(budgets, gateway, clock)
        assert [r["ends_at"] for r in sink.pushed()] == [MIDNIGHT + 30]
        [update] = rx.slack.calls("chat.update")
        assert RESOLVED_BY_THE_DAY in slack_text(update), slack_text(update)
