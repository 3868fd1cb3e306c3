"""A resolve mail reads RESOLVED, not the firing line of the alert it ends.

Seen by the on-call: the mail resolving LLMBudgetCritical of budget per-project-daily, key search, still
read `[CRITICAL] LLMBudgetCritical: …` under "Resolved at …", as if the budget were still critical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.budgets.service import BudgetService
from alerting.gateway.service import GatewayService
from exporter.services import Services
from tests.support.budgets import budgets_on_gateway, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, gateway_config

EVENING = datetime(2026, 12, 7, 22, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 8, 0, 0, tzinfo=UTC).timestamp()
PER_PROJECT_DAILY = {"name": "per-project-daily", "scope": "project", "key": "*", "period": "daily", "limit": 100.0}
ROUTES = {"info": [], "warning": ["slack", "email"], "critical": ["slack", "email", "pagerduty"]}


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


def slack_text(request: Any) -> str:
    """Everything a person reads in one Slack call: the fallback text and every block's text."""
    body = request.json
    parts = [body.get("text", "")]
    for block in body.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict) and element.get("type") in ("mrkdwn", "plain_text"):
                parts.append(element.get("text", ""))
    return "\n".join(parts)


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
