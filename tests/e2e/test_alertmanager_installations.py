"""Live: two llmcost installations push their own alerts to one Alertmanager, each routed to its own gateway.

What runs: two `llmcost serve` (team A and team B, each its own SQLite store, Slack and PagerDuty recording
servers), each with `alertmanager: {url: …, external_labels: {cluster: team-a|team-b}}` and
`silence_on_ack`, and one real Alertmanager on the shipped `alertmanager.yml` with the per-installation
route its comment shows: `cluster="team-b"` to team B's gateway, the rest (team A) to team A's. Both have a
budget of the same name over 95 %.

Before, nothing said which installation an alert came from: both `LLMBudgetCritical{budget="monthly", …}`
were one alert in Alertmanager, delivered to one gateway; B's resolve ended A's alert there, and an ack in A
silenced B's budget too. Now each is its own alert in Alertmanager, notified once by its own installation,
an ack silences only that installation's, and one resolving leaves the other firing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, RecordedRequest, SlackAPIServer

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN_TOKEN = "installations-admin-token-0123456789"
INGEST_TOKEN = "installations-ingest-token-0123456789"
WEBHOOK_TOKEN = "installations-webhook-token-0123456789"
SLACK_TOKEN = "xoxb-installations-test-token"
ROUTING_KEY = "R0123456789ABCDEF0123456789ABCDE"
BUDGET = "monthly"
PROJECT = "search"
ALERT = "LLMBudgetCritical"
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
TIMEOUT = 45.0


@dataclass
class Installation:
    """One llmcost with its own store and its own people's Slack and PagerDuty."""

    name: str
    llmcost: LlmcostProcess
    slack: SlackAPIServer
    pagerduty: PagerDutyEventsServer

    def headers(self) -> dict[str, str]:
        return live_stack.bearer(ADMIN_TOKEN)

    def put_budget(self, limit: float) -> None:
        body = {"scope": "project", "key": PROJECT, "period": "monthly", "limit": limit, "unit": "usd", "mode": "soft"}
        response = httpx.put(f"{self.llmcost.base}/v1/budgets/{BUDGET}", json=body, headers=self.headers(), timeout=10)
        assert response.status_code in (200, 201), response.text

    def spend(self, request_id: str, cost: float) -> None:
        live_stack.spend(self.llmcost.base, INGEST_TOKEN, PROJECT, request_id, cost)

    def slack_posts(self) -> list[RecordedRequest]:
        """Top-level Slack messages (thread replies about acks and resolves are not new notifications)."""
        return [r for r in self.slack.calls("chat.postMessage") if not r.payload.get("thread_ts")]

    def pagerduty_actions(self) -> list[str]:
        return [str(e.get("event_action")) for e in self.pagerduty.events]

    def gateway_alerts(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers(), timeout=5).json()
        return [a for a in body if a["labels"].get("budget") == BUDGET]


@dataclass
class Shared:
    """Team A and team B, and the one Alertmanager both push to."""

    a: Installation
    b: Installation
    alertmanager: str
    workdir: Path

    def am_alerts(self, **params: str) -> list[dict[str, Any]]:
        """Alertmanager's own view (`GET /api/v2/alerts`) of the budget's critical alerts."""
        found = httpx.get(f"{self.alertmanager}/api/v2/alerts", params=params, timeout=5).json()
        return [a for a in found if a["labels"].get("alertname") == ALERT and a["labels"].get("budget") == BUDGET]

    def by_cluster(self, **params: str) -> dict[str, dict[str, Any]]:
        return {a["labels"].get("cluster", ""): a for a in self.am_alerts(**params)}

    def diagnostics(self) -> str:
        sources = [("Alertmanager", lambda: httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json())]
        for one in (self.a, self.b):
            sources += [
                (f"{one.name} gateway alerts", one.gateway_alerts),
                (f"{one.name} Slack", lambda one=one: [(r.path, r.payload.get("text")) for r in one.slack.requests]),
                (f"{one.name} PagerDuty", one.pagerduty_actions),
            ]
        return live_stack.diagnostics(sources, self.workdir, answer_chars=3000, log_chars=2000)


def route_team_b_to_its_gateway(port: int) -> Any:
    """The per-installation route of the shipped alertmanager.yml's comment, to team B's llmcost on `port`."""

    def edit(config: dict[str, Any]) -> None:
        [default] = [r for r in config["receivers"] if r["name"] == "llmcost-default"]
        hooks = copy.deepcopy(default["webhook_configs"])
        for hook in hooks:
            hook["url"] = f"http://127.0.0.1:{port}/v1/alertmanager"
        config["receivers"].append({"name": "llmcost-team-b", "webhook_configs": hooks})
        spikes = {"matchers": ['alertname="LLMCostSpike"'], "group_by": ["alertname", "cluster"]}
        spikes["group_interval"] = "1m"
        route = {"matchers": ['cluster="team-b"'], "receiver": "llmcost-team-b", "routes": [spikes]}
        config["route"]["routes"].insert(1, route)  # after the fallback route, which carries on (continue)

    return edit


def installation_config(name: str, alertmanager: str, slack: SlackAPIServer, pd: PagerDutyEventsServer) -> Any:
    return {
        "auth": {"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
        "external_url": f"http://llmcost-{name}.test:9800",
        "alertmanager": {
            "url": alertmanager,
            "resend_interval": "1s",
            "retries": 1,
            "timeout": "2s",
            "external_labels": {"cluster": name},
        },
        "alerting": {"alertmanager": {"silence_on_ack": True}},
        "budgets": {"evaluate_seconds": 1, "items": []},
        "notifications": {
            "slack": {"token": SLACK_TOKEN, "channel": f"#llm-cost-{name}", "api_url": slack.api_url},
            "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pd.events_url},
            "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
        },
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    workdir = tmp_path_factory.mktemp("alertmanager-installations")
    with ExitStack() as cleanup:
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        port_a, port_b, am_port = live_stack.free_ports(3)
        alertmanager = f"http://127.0.0.1:{am_port}"
        installations = []
        for name, port in (("team-a", port_a), ("team-b", port_b)):
            slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
            pagerduty = cleanup.enter_context(PagerDutyEventsServer())
            config = installation_config(name, alertmanager, slack, pagerduty)
            (workdir / name).mkdir()
            llmcost = serve_with_config(workdir / name, config, port, cleanup)
            installations.append(Installation(name, llmcost, slack, pagerduty))
        live_stack.start_alertmanager(
            cleanup,
            workdir / "am",
            live_stack.Ports(port_a, 0, am_port),
            credentials_file=token_file,
            timings=TIMINGS,
            edit=route_team_b_to_its_gateway(port_b),
        )
        yield Shared(installations[0], installations[1], alertmanager, workdir)


def test_two_installations_keep_their_own_alerts_in_one_alertmanager(shared: Shared) -> None:
    a, b = shared.a, shared.b
    for one in (a, b):
        one.put_budget(10.0)
        one.spend(f"{one.name}-1", 9.7)  # 97 %: critical

    # Two alerts in Alertmanager, one per installation, each notified once by its own installation.
    assert live_stack.wait_until(lambda: set(shared.by_cluster()) == {"team-a", "team-b"}, TIMEOUT), (
        shared.diagnostics()
    )
    for name, alert in shared.by_cluster().items():
        assert alert["labels"] == {
            "alertname": ALERT,
            "budget": BUDGET,
            "scope": "project",
            "key": PROJECT,
            "severity": "critical",
            "llmcost_origin": "llmcost",
            "cluster": name,
        }
        assert alert["generatorURL"] == f"http://llmcost-{name}.test:9800/#budget-{BUDGET}"
    for one in (a, b):
        assert live_stack.wait_until(lambda one=one: "trigger" in one.pagerduty_actions(), TIMEOUT), (
            shared.diagnostics()
        )
        (alert,) = [x for x in one.gateway_alerts() if x["alertname"] == ALERT]
        assert "cluster" not in alert["labels"]  # the fingerprint the scheduler gave it
    # Alertmanager re-sends each group every 2 s and both push every second: still one of each.
    sent = live_stack.metric_value(shared.alertmanager, "alertmanager_notifications_total", integration="webhook")
    assert live_stack.wait_until(
        lambda: (
            live_stack.metric_value(shared.alertmanager, "alertmanager_notifications_total", integration="webhook")
            >= sent + 4
        ),
        TIMEOUT,
    )
    for one in (a, b):
        assert len(one.slack_posts()) == 1, shared.diagnostics()
        assert one.pagerduty_actions() == ["trigger"], shared.diagnostics()

    # An ack in team A silences team A's alert in Alertmanager, not team B's budget of the same name.
    (alert,) = [x for x in a.gateway_alerts() if x["alertname"] == ALERT]
    response = httpx.post(
        f"{a.llmcost.base}/v1/alerts/{alert['id']}/ack", json={"by": "oncall-a"}, headers=a.headers(), timeout=10
    )
    assert response.status_code == 200, response.text
    assert live_stack.wait_until(
        lambda: bool(shared.by_cluster().get("team-a", {}).get("status", {}).get("silencedBy")), TIMEOUT
    ), shared.diagnostics()
    assert shared.by_cluster()["team-b"]["status"]["state"] == "active", shared.diagnostics()
    assert [x["state"] for x in b.gateway_alerts() if x["alertname"] == ALERT] == ["firing"]

    # Team B's budget resolves: its alert ends everywhere, team A's stays open, nobody in A is told.
    b.put_budget(1_000_000.0)
    assert live_stack.wait_until(lambda: "resolve" in b.pagerduty_actions(), TIMEOUT), shared.diagnostics()
    assert live_stack.wait_until(
        lambda: set(shared.by_cluster(active="true", silenced="true")) == {"team-a"}, TIMEOUT
    ), shared.diagnostics()
    pushed = live_stack.metric_value(a.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent")
    assert live_stack.wait_until(
        lambda: live_stack.metric_value(a.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent") >= pushed + 3,
        TIMEOUT,
    )
    assert [x["state"] for x in a.gateway_alerts() if x["alertname"] == ALERT] == ["acknowledged"]
    assert a.pagerduty_actions() == ["trigger", "acknowledge"], shared.diagnostics()
    assert len(a.slack_posts()) == 1, shared.diagnostics()
