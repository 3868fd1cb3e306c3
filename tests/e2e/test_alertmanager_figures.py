"""Live: with `alertmanager:` configured, llmcost shows its own alerts' current figures, not the first ones.

What runs: `llmcost serve` (SQLite) with `alertmanager: {url: …}` re-sending every second and budgets
evaluated every second, Slack as a recording server; one real Alertmanager with the shipped
`alertmanager.yml` (the gateway webhook on llmcost's port), group_wait/group_interval 1s and the shipped
order of repeat_interval (1h): Alertmanager's webhook sends a group again only when its alerts come or
go, or after repeat_interval, never because an alert's annotations changed.

The story: a budget is exceeded (150 %), reaches llmcost through Alertmanager and is notified once; then
the spend grows tenfold at the same level. llmcost pushes the new figures to Alertmanager at once, and
they showed there while `GET /v1/alerts` (the console, `llmcost alerts list`) kept "150 %" for up to the
repeat interval. Now llmcost's own record follows at once, with no second notification, and an
Alertmanager delivery carrying older figures does not bring them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import RecordedRequest, SlackAPIServer

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN_TOKEN = "figures-admin-token-0123456789abcdef"
INGEST_TOKEN = "figures-ingest-token-0123456789abcdef"
WEBHOOK_TOKEN = "figures-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-figures-test-token"
BUDGET = "team-f"
ALERT = "LLMBudgetExceeded"
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
TIMEOUT = 45.0


@dataclass
class FiguresStack:
    llmcost: LlmcostProcess
    alertmanager: str
    slack: SlackAPIServer
    workdir: Path

    def headers(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return live_stack.bearer(token)

    def spend(self, request_id: str, cost: float) -> None:
        live_stack.spend(self.llmcost.base, INGEST_TOKEN, BUDGET, request_id, cost)

    def held_by_alertmanager(self) -> dict[str, str]:
        """The annotations Alertmanager holds for the budget's alert ({} before it has it)."""
        found = httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()
        alerts = [a for a in found if a["labels"].get("budget") == BUDGET and a["labels"]["alertname"] == ALERT]
        return dict(alerts[0]["annotations"]) if alerts else {}

    def shown_by_llmcost(self) -> dict[str, str]:
        """The annotations llmcost shows for the budget's open alert ({} before it has it)."""
        body = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers(), timeout=5).json()
        alerts = [a for a in body if a["labels"].get("budget") == BUDGET and a["state"] != "resolved"]
        return dict(alerts[0]["annotations"]) if alerts else {}

    def slack_posts(self) -> list[RecordedRequest]:
        return [r for r in self.slack.calls("chat.postMessage") if not r.payload.get("thread_ts")]

    def diagnostics(self) -> str:
        sources = (
            ("Alertmanager", lambda: httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()),
            ("gateway alerts", lambda: httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers()).json()),
            ("Slack calls", lambda: [(r.path, r.payload.get("text")) for r in self.slack.requests]),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=3000, log_chars=2000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FiguresStack]:
    workdir = tmp_path_factory.mktemp("alertmanager-figures")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am_port = live_stack.free_ports(2)
        alertmanager = f"http://127.0.0.1:{am_port}"
        config: dict[str, Any] = {
            "auth": {"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "external_url": "http://llmcost.test:9800",
            "alertmanager": {"url": alertmanager, "resend_interval": "1s", "retries": 1, "timeout": "2s"},
            "budgets": {
                "evaluate_seconds": 1,
                "items": [
                    {"name": BUDGET, "scope": "project", "key": BUDGET, "period": "monthly", "limit": 10, "unit": "usd"}
                ],
            },
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)
        ports = live_stack.Ports(llmcost_port, 0, am_port)
        live_stack.start_alertmanager(cleanup, workdir / "am", ports, credentials_file=token_file, timings=TIMINGS)
        yield FiguresStack(llmcost, alertmanager, slack, workdir)


def test_llmcost_shows_its_alerts_current_figures_while_alertmanager_sends_nothing_new(stack: FiguresStack) -> None:
    stack.spend("figures-1", 15.0)  # 150 %: exceeded
    arrived = live_stack.wait_until(lambda: bool(stack.shown_by_llmcost()) and bool(stack.slack_posts()), TIMEOUT)
    assert arrived, stack.diagnostics()
    first = stack.shown_by_llmcost()
    assert first == stack.held_by_alertmanager(), stack.diagnostics()

    stack.spend("figures-2", 135.0)  # 1,500 %: the same level, other figures
    moved = live_stack.wait_until(lambda: stack.held_by_alertmanager() not in ({}, first), TIMEOUT)
    assert moved, stack.diagnostics()
    now = stack.held_by_alertmanager()
    assert now["description"] != first["description"]
    # Alertmanager delivers nothing for an annotation change (repeat_interval 1h): llmcost follows all the same.
    followed = live_stack.wait_until(lambda: stack.shown_by_llmcost() == stack.held_by_alertmanager(), 10)
    assert followed, f"llmcost shows {stack.shown_by_llmcost()}, Alertmanager holds {now}\n{stack.diagnostics()}"
    assert len(stack.slack_posts()) == 1, stack.diagnostics()  # new figures are no new notification

    # A delivery flushed before Alertmanager took the new figures (a retry, a slow one) arrives late.
    alerts = httpx.get(f"{stack.alertmanager}/api/v2/alerts", timeout=5).json()
    [held] = [a for a in alerts if a["labels"].get("budget") == BUDGET and a["labels"]["alertname"] == ALERT]
    late = {
        "version": "4",
        "groupKey": '{}:{alertname="LLMBudgetExceeded"}',
        "status": "firing",
        "receiver": "llmcost-critical",
        "alerts": [
            {
                "status": "firing",
                "labels": held["labels"],
                "annotations": first,
                "startsAt": held["startsAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": held["generatorURL"],
            }
        ],
    }
    response = httpx.post(
        f"{stack.llmcost.base}/v1/alertmanager", json=late, headers=stack.headers(WEBHOOK_TOKEN), timeout=10
    )
    assert response.status_code == 200, response.text
    assert stack.shown_by_llmcost() == now, stack.diagnostics()
