"""The Dashboard link of an alert llmcost raised opens its own installation, with two in one Prometheus.

Defect: two `llmcost serve` installations (`job="llmcost-a"`, `job="llmcost-b"`) scraped by one
Prometheus, each with its `grafana_url` on its own installation (`…?orgId=1&var-job=llmcost-a`), both
with a budget named `monthly`. Every Slack button, mail link, PagerDuty link and console link of a budget
alert was `…/d/llmcost-budgets?var-budget=monthly`: `grafana_url`'s query was dropped, so Grafana opened
the Budgets dashboard on whichever installation its Installation variable selected first, and on-call
read the other team's spend. Now every link keeps `grafana_url`'s `orgId`, `var-datasource` and `var-job`.

What a link shows is asked of a real Prometheus scraping both processes: the dashboards rendered for both
jobs (`build_dashboards.py --selector 'job=~"llmcost-.*"'`), the link's variables put into the Budgets
dashboard's "Spent against limit" query.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.support import live_stack
from tests.support import monitoring_assets as assets
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

SPENT = {"llmcost-a": 12.0, "llmcost-b": 15.0}  # each over its $10 budget: LLMBudgetExceeded, paged
GRAFANA = "https://grafana.example.com/d/llmcost-overview?orgId=1&var-job={job}"
SELECTOR = 'job=~"llmcost-.*"'
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"


@dataclass
class Installation:
    """One `llmcost serve` with its own store and its own Slack, mail and PagerDuty receivers."""

    job: str
    proc: LlmcostProcess
    slack: SlackAPIServer
    pagerduty: PagerDutyEventsServer
    smtp: SMTPServer

    def links(self) -> dict[str, str]:
        """Every Dashboard link the alert's messages and the console carry, by where it was read."""
        (message,) = self.slack.calls("chat.postMessage")
        (actions,) = [b for b in message.payload["blocks"] if b["type"] == "actions"]
        (mail,) = self.smtp.messages
        (event,) = self.pagerduty.events
        console = httpx.get(f"{self.proc.base}/", timeout=10).text
        found = {
            "slack": next(e["url"] for e in actions["elements"] if e["text"]["text"] == "Dashboard"),
            "mail text": re.search(r"^Dashboard: (\S+)\r?$", mail.part("text/plain"), re.M)[1],  # type: ignore[index]
            "pagerduty": next(link["href"] for link in event["links"] if link["text"] == "Dashboard"),
            "console": re.search(r'<a class="dashboard" href="([^"]+)"', console)[1],  # type: ignore[index]
        }
        return {where: url.replace("&amp;", "&") for where, url in found.items()}


@pytest.fixture(scope="module")
def installations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Installation]]:
    """Both installations, their budget exceeded and its page sent on every channel."""
    with ExitStack() as cleanup:
        started = []
        for job, spent in SPENT.items():
            workdir = tmp_path_factory.mktemp(job)
            slack = cleanup.enter_context(SlackAPIServer())
            pagerduty = cleanup.enter_context(PagerDutyEventsServer())
            smtp = cleanup.enter_context(SMTPServer())
            config = {
                "grafana_url": GRAFANA.format(job=job),
                "budgets": {
                    "evaluate_seconds": 1,
                    "items": [{"name": "monthly", "scope": "global", "period": "monthly", "limit": 10}],
                },
                "notifications": {
                    "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                    "email": smtp.email_settings(),
                    "pagerduty": {
                        "routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32",
                        "events_url": pagerduty.events_url,
                    },
                },
            }
            path = workdir / "llmcost.yml"
            path.write_text(yaml.safe_dump(config))
            proc = LlmcostProcess(f"sqlite:///{workdir / 'llmcost.db'}", config=path).start(workdir)
            cleanup.callback(proc.stop)
            event = {"provider": "openai", "model": "gpt-4o", "cost_usd": spent, "project": "search"}
            httpx.post(f"{proc.base}/v1/usage", json=event, timeout=10).raise_for_status()
            started.append(Installation(job, proc, slack, pagerduty, smtp))
        for one in started:
            wait_until(
                lambda one=one: one.slack.calls("chat.postMessage") and one.smtp.messages and one.pagerduty.events,
                timeout=30,
                what=f"{one.job}'s page on every channel",
            )
        yield started


@pytest.fixture(scope="module")
def prometheus(installations: list[Installation], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping both installations, each as its own job."""
    workdir = tmp_path_factory.mktemp("prometheus")
    jobs = [
        {"job_name": one.job, "static_configs": [{"targets": [f"127.0.0.1:{one.proc.port}"]}]} for one in installations
    ]
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs}
    path = live_stack.stack.dump_yaml(config, workdir / "prometheus.yml")
    (port,) = live_stack.free_ports(1)
    server = live_stack.stack.prometheus_server(path, workdir / "data", port, workdir / "prometheus.log")
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        spent = "llm_budget_spent{budget='monthly'}"
        wait_until(lambda: len(live_stack.instant_query(url, spent)) == 2, timeout=30, what="both budgets scraped")
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def budgets_dashboard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Budgets dashboard rendered for both jobs, as docs/alerting-paths.md says."""
    out = tmp_path_factory.mktemp("grafana")
    argv = [sys.executable, str(assets.REPO / "grafana/build_dashboards.py"), "--out", str(out), "--selector", SELECTOR]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return dict(json.loads((out / "llmcost-budgets.json").read_text()))


def test_every_dashboard_link_of_a_budget_alert_opens_its_own_installation(
    installations: list[Installation], prometheus: str, budgets_dashboard: dict[str, Any]
) -> None:
    (spent,) = [q for q in assets.dashboard_queries(budgets_dashboard) if q.name == "Spent against limit [A]"]
    variables = {v["name"] for v in budgets_dashboard["templating"]["list"]}
    for one in installations:
        for where, link in one.links().items():
            url = urllib.parse.urlsplit(link)
            query = dict(urllib.parse.parse_qsl(url.query))
            assert url.path == "/d/llmcost-budgets", (one.job, where, link)
            chosen = {k.removeprefix("var-"): v for k, v in query.items() if k.startswith("var-")}
            assert set(chosen) <= variables, (one.job, where, link)
            # What the dashboard shows on opening: the link's variables, every other one on All.
            shown = live_stack.instant_query(prometheus, assets.substitute(spent.expr, chosen))
            assert [(s["metric"]["job"], float(s["value"][1])) for s in shown] == [(one.job, SPENT[one.job])], (
                f"{one.job}'s {where} link {link} shows {shown}"
            )
            assert query.get("orgId") == "1", f"{where}: the organisation of grafana_url: {link}"
