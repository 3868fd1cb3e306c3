"""`LLMBudgetRequestCapExceeded` as people receive it: how it reads, and that removing the cap resolves it.

Defect: its mail subject read `(budget=search-daily, key=search, period_start=1794355200, scope=project)`,
epoch seconds where every other time in a budget alert reads "2026-11-11 00:00 UTC". Now the label is
shown that way in mail and Slack; its value (part of the fingerprint) and PagerDuty's details are unchanged.

Removing a budget's per-request cap resolves the alert. Defect: `PUT /v1/budgets/{name}` (or
`llmcost budgets update`/`apply`) without `max_cost_per_request` left the cap alert of a call over the
cap firing until the period ended, though no cap was left to be over (deleting the budget resolved
it). Now the change resolves it at once, one resolve per channel in the alert's own thread; the
scheduler's evaluation resolves it too when another process made the change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.http import budget_routes
from alerting.budgets.service import BudgetService
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.cli import main
from tests.support.budgets import CONFIG_REF, NOON, budgets_on_gateway, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Receivers, gateway_config

ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
CAPPED = {"scope": "project", "key": "search", "period": "daily", "limit": 1000.0, "max_cost_per_request": 0.5}
CAPS = {"max_cost_per_request": 0.5, "max_tokens_per_request": 50}
CAP = "LLMBudgetRequestCapExceeded"
MIDNIGHT = datetime(2026, 11, 11, tzinfo=UTC).timestamp()  # the period of NOON


@pytest.fixture
def stack(db: str, rx: Receivers, clock: FakeClock) -> Iterator[tuple[Services, BudgetService, GatewayService]]:
    rx.pagerduty.clock = clock
    clock.set(NOON + 600)
    with budgets_on_gateway(db, [], clock, gateway_config(db, rx, routes=ROUTES)) as stack:
        yield stack


@contextmanager
def over_the_cap_through_the_api(
    stack: tuple[Services, BudgetService, GatewayService], cap: str = "max_cost_per_request"
) -> Iterator[TestClient]:
    """A budget with `cap` ($0.50, or 50 tokens) put through the budget API and a call over it ($2.50 and 110
    tokens): its alert fires. Yields the API's client, open."""
    services, budgets, gateway = stack
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        limits = {k: v for k, v in CAPPED.items() if k not in CAPS} | {cap: CAPS[cap]}
        assert client.put("/v1/budgets/search-daily", json=limits).status_code == 200
        ingest(services, call("big", NOON + 500, 2.5))
        gateway.deliver_pending()
        assert [a.alertname for a in gateway.alerts("firing")] == [CAP]
        yield client


def over_the_cap(stack: tuple[Services, BudgetService, GatewayService]) -> None:
    """`over_the_cap_through_the_api`, the API closed again: for the tests that go on without it."""
    with over_the_cap_through_the_api(stack):
        pass


def resolved_once_per_channel_in_its_thread(rx: Receivers, gateway: GatewayService) -> None:
    assert gateway.alerts("firing") == []
    [posted] = rx.slack.posted
    updates = [u.payload for u in rx.slack.calls("chat.update") if "RESOLVED" in str(u.payload.get("text", "")).upper()]
    assert [u["ts"] for u in updates] == [posted["ts"]]
    first, *replies = [m.message for m in rx.smtp.messages]
    assert len(replies) == 1 and replies[0]["In-Reply-To"] == first["Message-ID"]
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "resolve"]
    assert rx.pagerduty.events[0]["dedup_key"] == rx.pagerduty.events[1]["dedup_key"]


@pytest.mark.parametrize("cap", ["max_cost_per_request", "max_tokens_per_request"])
def test_a_put_without_the_cap_resolves_its_alert(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock, cap: str
) -> None:
    _services, budgets, gateway = stack
    with over_the_cap_through_the_api(stack, cap) as client:
        clock.advance(60)
        uncapped = {k: v for k, v in CAPPED.items() if k not in CAPS}
        assert client.put("/v1/budgets/search-daily", json=uncapped).status_code == 200
    gateway.deliver_pending()
    resolved_once_per_channel_in_its_thread(rx, gateway)
    [alert] = gateway.alerts("resolved")
    budgets.evaluate()  # nothing more to say
    gateway.deliver_pending()
    assert len(rx.pagerduty.events) == 2 and len(rx.smtp.messages) == 2
    assert alert.alertname == CAP


def test_a_cap_kept_or_only_changed_keeps_its_alert(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    _services, budgets, gateway = stack
    with over_the_cap_through_the_api(stack) as client:
        assert client.put("/v1/budgets/search-daily", json={**CAPPED, "limit": 2000.0}).status_code == 200
        assert client.put("/v1/budgets/search-daily", json={**CAPPED, "max_cost_per_request": 1.0}).status_code == 200
    budgets.evaluate()
    gateway.deliver_pending()
    assert [a.alertname for a in gateway.alerts("firing")] == [CAP]


def test_a_cap_removed_by_another_process_is_resolved_by_the_next_evaluation(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    # `llmcost budgets update` runs without the gateway's sink: the server's scheduler finishes the job.
    _services, budgets, gateway = stack
    over_the_cap(stack)
    budgets.sink = None
    budgets.put("search-daily", {k: v for k, v in CAPPED.items() if k not in CAPS}, origin="cli")
    budgets.sink = GatewaySink(gateway)
    assert [a.alertname for a in gateway.alerts("firing")] == [CAP]
    clock.advance(60)
    budgets.evaluate()
    gateway.deliver_pending()
    resolved_once_per_channel_in_its_thread(rx, gateway)


def test_llmcost_budgets_update_removing_the_cap_resolves_its_alert(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, db: str, tmp_path: Path, clock: FakeClock
) -> None:
    _services, _budgets, gateway = stack
    over_the_cap(stack)
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump(gateway_config(db, rx, routes=ROUTES).raw))
    argv = ["budgets", "update", "search-daily", "--json", '{"max_cost_per_request": null}', "--by", "carol"]
    assert main([*argv, "--config", str(config), "--db", db]) == 0
    clock.set(time.time() + 1)  # the command queued on the wall clock, the test's server runs on `clock`
    gateway.deliver_pending()  # the running server sends what the command queued
    resolved_once_per_channel_in_its_thread(rx, gateway)
    [alert] = gateway.alerts("resolved")
    assert alert.alertname == CAP


def test_the_period_start_label_reads_as_a_time_in_mail_and_slack(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers
) -> None:
    _services, _budgets, gateway = stack
    over_the_cap(stack)
    epoch = str(int(MIDNIGHT))
    [alert] = gateway.alerts("firing")
    assert alert.labels["period_start"] == epoch  # the label itself, part of the fingerprint, is unchanged
    [mail] = rx.smtp.messages
    assert mail.message["Subject"] == (
        "[WARNING] LLMBudgetRequestCapExceeded "
        "(budget=search-daily, key=search, period_start=2026-11-11 00:00 UTC, scope=project)"
    )
    assert "2026-11-11 00:00 UTC" in mail.part("text/plain") and epoch not in mail.part("text/plain")
    [posted] = rx.slack.posted
    assert "2026-11-11 00:00 UTC" in json.dumps(posted["blocks"]) and epoch not in json.dumps(posted["blocks"])
    [page] = rx.pagerduty.events
    assert page["payload"]["custom_details"]["labels"]["period_start"] == epoch  # read by machines: as is


def test_a_config_file_applied_without_the_cap_resolves_its_alert(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    # `llmcost budgets apply` and a SIGHUP reload of the config file go through `apply_config`.
    services, budgets, gateway = stack
    problems: list[str] = []
    capped = parse_budgets_section([{"name": "search-daily", **CAPPED}], problems)
    budgets.apply_config(capped.items, origin_ref=CONFIG_REF)
    ingest(services, call("big", NOON + 500, 2.5))
    gateway.deliver_pending()
    assert [a.alertname for a in gateway.alerts("firing")] == [CAP]
    uncapped = {k: v for k, v in CAPPED.items() if k not in CAPS}
    budgets.apply_config(
        parse_budgets_section([{"name": "search-daily", **uncapped}], problems).items, origin_ref=CONFIG_REF
    )
    assert problems == []
    gateway.deliver_pending()
    resolved_once_per_channel_in_its_thread(rx, gateway)
