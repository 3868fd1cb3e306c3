"""Every instance of a `key: "*"` budget can be seen in the console, and its alerts link to its row.

Defect: the console lists at most 50 instances of a `key: "*"` budget, then "… and N more with lower
ratios: /v1/budgets/NAME", a link to the JSON API, which answers 401 in a browser once
`auth.admin_tokens` is set; and a budget alert linked to `<external_url>/#budget-NAME`, a page where
an instance outside the top 50 is not shown. Now `/?budget=NAME` lists every instance of that budget
(up to `MAX_BUDGET_INSTANCES`, saying so when it cuts), the "more" link goes there, and an alert for a
`key: "*"` instance links to `/?budget=NAME#budget-NAME:KEY`, the anchor of the instance's row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.testclient import TestClient

from exporter.http.app import build_app
from exporter.services import Services
from llmcost.services import open_services
from llmcost.wiring import AlertingParts, attach_alerting
from tests.support.clock import FakeClock
from tests.support.helpers import apply_config_budgets, make_config

NOW = 1_796_300_000.0  # 2026-12-03 09:33:20 UTC
LISTEN = "127.0.0.1:9800"
ADMIN = "admin-token-0123456789ab"
WILDCARD = "teams/a b"  # a "/" and a space: both must survive the links
ENCODED = "teams%2Fa%20b"
BUDGETS = [
    {"name": WILDCARD, "scope": "project", "key": "*", "period": "monthly", "limit": 1.0},
    {"name": "api", "scope": "service", "key": "api", "period": "monthly", "limit": 1.0},
]
PROJECTS = [f"p {i:02d}/x" for i in range(60)]  # keys need encoding too


@contextmanager
def serve(db_url: str, clock: FakeClock) -> Iterator[tuple[Services, AlertingParts, TestClient]]:
    """The app as `llmcost serve` builds it, with admin tokens; the client sends no token (a browser)."""
    clock.set(NOW)
    config = make_config(db_url, listen=LISTEN, auth={"admin_tokens": [ADMIN]}, budgets=BUDGETS)
    services = open_services(config, clock=clock, start_writer=False)
    try:
        parts = attach_alerting(services, "ingest")
        apply_config_budgets(parts.budgets)
        with TestClient(build_app(services, parts.routes), base_url=f"http://{LISTEN}") as browser:
            yield services, parts, browser
    finally:
        services.close()


def spend(services: Services, project: str, rid: str, usd: float) -> None:
    body: dict[str, Any] = {
        "request_id": rid,
        "timestamp": NOW - 60,
        "provider": "openai",
        "model": "gpt-4o",
        "project": project,
        "service": "api",
        "cost_usd": usd,
        "input_tokens": 10,
        "output_tokens": 1,
    }
    out = services.pipeline.ingest([(0, body)])
    assert not out.rejected, out.rejected


def instance_keys(html: str) -> list[str]:
    return re.findall(r'class="budget child" data-budget="teams/a b" data-key="([^"]+)"', html)


def test_the_more_link_and_an_alert_for_an_instance_outside_the_top_fifty_open_on_its_row(
    sqlite_url: str, clock: FakeClock
) -> None:
    with serve(sqlite_url, clock) as (services, parts, browser):
        for i, project in enumerate(PROJECTS):  # every one over its $1 limit, p 00/x the lowest ratio
            spend(services, project, f"r{i}", 1.0 + 0.01 * i)
        parts.budgets.evaluate()
        events_before = services.store.event_count()
        alerts_before = [(a.id, a.state) for a in parts.gateway.alerts(limit=10_000)]

        page = browser.get("/")
        assert page.status_code == 200
        assert len(instance_keys(page.text)) == 50 and "… and 10 more with lower ratios" in page.text
        (more,) = re.findall(r'<tr class="child more">.*?<a href="([^"]+)"', page.text, re.S)
        assert more == f"/?budget={ENCODED}#budget-{ENCODED}", more

        opened = browser.get(more.split("#")[0])
        assert opened.status_code == 200, opened.text[:200]
        assert sorted(instance_keys(opened.text)) == sorted(PROJECTS), "not every instance is listed"
        assert 'tbody class="budget-group wildcard open"' in opened.text  # listed open, not folded
        assert 'data-budget="api"' not in opened.text  # one budget's page

        # The alert for the lowest instance: its link opens that page on the instance's row.
        alert = next(
            a
            for a in parts.gateway.alerts("firing", limit=10_000)
            if a.alertname == "LLMBudgetExceeded" and a.labels.get("key") == "p 00/x"
        )
        link = urlsplit(alert.generator_url)
        assert f"{link.scheme}://{link.netloc}" == f"http://{LISTEN}"
        assert f"{link.path}?{link.query}" == f"/?budget={ENCODED}", alert.generator_url
        assert link.fragment == f"budget-{ENCODED}:p%2000%2Fx", alert.generator_url
        target = browser.get(f"{link.path}?{link.query}")
        assert target.status_code == 200
        row = re.search(rf'<tr id="{re.escape(link.fragment)}" class="budget child"[^>]*>', target.text)
        assert row and 'data-key="p 00/x"' in row.group(0), "no row carries the alert's anchor"

        # A budget with a fixed key keeps its link to its rows on the console.
        fixed = next(a for a in parts.gateway.alerts("firing") if a.labels.get("budget") == "api")
        assert fixed.generator_url == f"http://{LISTEN}/#budget-api"

        # Reading the console changed nothing.
        assert services.store.event_count() == events_before
        assert [(a.id, a.state) for a in parts.gateway.alerts(limit=10_000)] == alerts_before


def test_one_budget_s_page_is_bounded_and_says_how_many_it_left_out(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alerting.console.view as view

    monkeypatch.setattr(view, "MAX_BUDGET_INSTANCES", 55)
    with serve(sqlite_url, clock) as (services, _parts, browser):
        for i, project in enumerate(PROJECTS):
            spend(services, project, f"r{i}", 0.01 * (i + 1))
        html = browser.get(f"/?budget={ENCODED}").text
        keys = instance_keys(html)
        assert len(keys) == 55 and keys[0] == "p 59/x"  # the highest ratios
        text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
        assert "… and 5 more with lower ratios, not listed: this page lists at most 55" in text


def test_an_unknown_or_hostile_budget_name_is_answered_404_and_escaped(sqlite_url: str, clock: FakeClock) -> None:
    hostile = "<script>alert(1)</script>"
    with serve(sqlite_url, clock) as (_services, _parts, browser):
        page = browser.get("/", params={"budget": hostile})
        assert page.status_code == 404
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_switching_the_stacked_by_label_on_a_budget_s_page_stays_on_that_page(
    sqlite_url: str, clock: FakeClock
) -> None:
    """Defect: on `/?budget=NAME` the "Stacked by" links were `?by=model#spend`, which dropped the budget:
    choosing how to stack the charts left the budget's page for the main one."""
    with serve(sqlite_url, clock) as (services, _parts, browser):
        for i, project in enumerate(PROJECTS[:3]):
            spend(services, project, f"r{i}", 0.5)
        page = browser.get(f"/?budget={ENCODED}")
        switch = re.search(r'<p class="switch">(.*?)</p>', page.text, re.S)
        assert switch, "no stack switch"
        links = re.findall(r'<a href="([^"]+)"', switch.group(1))
        assert links, switch.group(1)
        for link in links:
            target = urljoin(f"/?budget={ENCODED}", link.replace("&amp;", "&")).split("#")[0]
            opened = browser.get(target)
            assert opened.status_code == 200
            assert 'class="focus"' in opened.text and 'data-budget="api"' not in opened.text, (
                f"{link} left the budget's page"
            )
            assert len(instance_keys(opened.text)) == 3
        assert any(link.endswith("by=model#spend") for link in links), links
