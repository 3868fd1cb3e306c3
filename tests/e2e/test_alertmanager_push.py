"""Live: llmcost pushes its own budget alerts to two real Alertmanager replicas, which route them back.

What runs: `llmcost serve` (SQLite) with `alertmanager: {urls: [am1, am2]}` re-sending every second,
`silence_on_ack`, Slack and PagerDuty as recording servers; two Alertmanager replicas (HA clustering
off, so each is told about every alert by llmcost itself) with the shipped `alertmanager.yml`, the
gateway webhook on llmcost's port and group_wait/group_interval 1s, repeat_interval 2s instead of
seconds to hours. Budgets are evaluated every second.

The story, in order (one test runs the steps top to bottom on one stack):

1. A spend crosses 95 % of a budget while replica 2 is down: the alert is visible in `amtool alert
   query`, reaches Slack once and PagerDuty once (the warning-level alerts of the same budget are
   inhibited by the shipped rule), and the failed pushes to replica 2 are counted, not fatal.
2. Replica 2 comes up, learns the alert from the next push and delivers it too: still one message.
3. Acknowledging in llmcost silences the alert in Alertmanager (`silence_on_ack`).
4. The budget stops being critical: the alert resolves everywhere (Alertmanager, gateway, Slack,
   PagerDuty) and the silence from the ack expires.
5. `amtool silence add` on both replicas, then a second crossing: Alertmanager shows it suppressed and
   nothing is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support import monitoring_assets as assets
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, RecordedRequest, SlackAPIServer

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN_TOKEN = "push-admin-token-0123456789abcdef"
INGEST_TOKEN = "push-ingest-token-0123456789abcdef"
WEBHOOK_TOKEN = "push-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-push-test-token"
ROUTING_KEY = "R0123456789ABCDEF0123456789ABCDE"
BUDGET = "team-a"
ALERT = "LLMBudgetCritical"
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
TIMEOUT = 45.0


@dataclass
class PushStack:
    """llmcost, the two replicas (the second started later), and the recorders."""

    llmcost: LlmcostProcess
    replicas: list[str]
    second: Any
    slack: SlackAPIServer
    pagerduty: PagerDutyEventsServer
    workdir: Path

    def headers(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return live_stack.bearer(token)

    def put_budget(self, limit: float) -> None:
        body = {"scope": "project", "key": BUDGET, "period": "monthly", "limit": limit, "unit": "usd", "mode": "soft"}
        response = httpx.put(f"{self.llmcost.base}/v1/budgets/{BUDGET}", json=body, headers=self.headers(), timeout=10)
        assert response.status_code in (200, 201), response.text

    def spend(self, request_id: str, cost: float) -> None:
        live_stack.spend(self.llmcost.base, INGEST_TOKEN, BUDGET, request_id, cost)

    def am_alerts(self, replica: str, **params: str) -> list[dict[str, Any]]:
        """Alertmanager's own view (`GET /api/v2/alerts`) of this budget's alerts."""
        found = httpx.get(f"{replica}/api/v2/alerts", params=params, timeout=5).json()
        return [a for a in found if a["labels"].get("budget") == BUDGET]

    def slack_posts(self) -> list[RecordedRequest]:
        """Top-level Slack messages (thread replies about acks and resolves are not new notifications)."""
        return [r for r in self.slack.calls("chat.postMessage") if not r.payload.get("thread_ts")]

    def triggers(self) -> list[dict[str, Any]]:
        return [e for e in self.pagerduty.events if e.get("event_action") == "trigger"]

    def pushes(self, replica: str, outcome: str) -> float:
        return live_stack.metric_value(
            self.llmcost.base, "llm_alertmanager_pushes_total", alertmanager=replica, outcome=outcome
        )

    def gateway_alerts(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers(), timeout=5).json()
        return [a for a in body if a["labels"].get("budget") == BUDGET]

    def webhooks_sent(self, replica: str) -> float:
        return live_stack.metric_value(replica, "alertmanager_notifications_total", integration="webhook")

    def diagnostics(self) -> str:
        sources = (
            *(
                (f"Alertmanager {r}", lambda r=r: httpx.get(f"{r}/api/v2/alerts", timeout=5).json())
                for r in self.replicas
            ),
            ("gateway alerts", lambda: httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers()).json()),
            ("Slack calls", lambda: [(r.path, r.payload.get("text")) for r in self.slack.requests]),
            ("PagerDuty events", lambda: [(e.get("event_action"), e.get("dedup_key")) for e in self.pagerduty.events]),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=3000, log_chars=2000)


def amtool(*args: str) -> str:
    done = assets.run(["amtool", *args])
    assert done.returncode == 0, f"amtool {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushStack]:
    workdir = tmp_path_factory.mktemp("alertmanager-push")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        pagerduty = cleanup.enter_context(PagerDutyEventsServer())
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am1_port, am2_port = live_stack.free_ports(3)
        replicas = [f"http://127.0.0.1:{am1_port}", f"http://127.0.0.1:{am2_port}"]
        config = {
            "auth": {"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "external_url": "http://llmcost.test:9800",
            "alertmanager": {"urls": replicas, "resend_interval": "1s", "retries": 1, "timeout": "2s"},
            "alerting": {"alertmanager": {"silence_on_ack": True}},
            "budgets": {"evaluate_seconds": 1, "items": []},
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url},
                "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)

        servers = []
        for i, port in enumerate((am1_port, am2_port), start=1):
            ports = live_stack.Ports(llmcost_port, 0, port)
            server = live_stack.alertmanager_server(
                workdir / f"am{i}", ports, credentials_file=token_file, timings=TIMINGS
            )
            cleanup.callback(server.stop)
            servers.append(server)
        servers[0].start()  # the second replica stays down until test 2
        yield PushStack(llmcost, replicas, servers[1], slack, pagerduty, workdir)


def step_a_budget_crossing_is_visible_in_alertmanager_and_notified_once_with_a_replica_down(
    stack: PushStack,
) -> None:
    am1, am2 = stack.replicas
    stack.put_budget(10.0)
    stack.spend("push-1", 9.7)  # 97 %: critical (and warning, inhibited by the shipped rule)

    assert live_stack.wait_until(lambda: bool(stack.am_alerts(am1, filter=f'alertname="{ALERT}"')), TIMEOUT), (
        stack.diagnostics()
    )
    alert = stack.am_alerts(am1, filter=f'alertname="{ALERT}"')[0]
    assert alert["labels"] == {
        "alertname": ALERT,
        "budget": BUDGET,
        "scope": "project",
        "key": BUDGET,
        "severity": "critical",
        "llmcost_origin": "llmcost",
    }
    assert alert["generatorURL"] == f"http://llmcost.test:9800/#budget-{BUDGET}"
    assert alert["annotations"]["runbook_url"] == "http://llmcost.test:9800/runbook#llmbudgetcritical"
    queried = json.loads(amtool("alert", "query", f"--alertmanager.url={am1}", "-o", "json", f"budget={BUDGET}"))
    assert ALERT in {a["labels"]["alertname"] for a in queried}

    assert live_stack.wait_until(lambda: bool(stack.slack_posts()) and bool(stack.triggers()), TIMEOUT), (
        stack.diagnostics()
    )
    # Alertmanager re-sends the group every 2 s and llmcost re-pushes every second: still once.
    sent = stack.webhooks_sent(am1)
    assert live_stack.wait_until(lambda: stack.webhooks_sent(am1) >= sent + 2, TIMEOUT), stack.diagnostics()
    assert [ALERT in str(p.payload.get("text")) for p in stack.slack_posts()] == [True], stack.diagnostics()
    assert len(stack.triggers()) == 1, stack.diagnostics()
    runbook = "http://llmcost.test:9800/runbook#llmbudgetcritical"
    assert runbook in json.dumps(stack.slack_posts()[0].payload)  # the Runbook button
    assert {"href": runbook, "text": "Runbook"} in stack.triggers()[0]["links"]
    (gateway_alert,) = [a for a in stack.gateway_alerts() if a["alertname"] == ALERT]
    assert "llmcost_origin" not in gateway_alert["labels"]
    assert gateway_alert["annotations"]["runbook_url"] == "http://llmcost.test:9800/runbook#llmbudgetcritical"

    # The replica that is down is retried and counted; pushing to the other one went on.
    assert live_stack.wait_until(lambda: stack.pushes(am2, "failed") >= 2, TIMEOUT), stack.diagnostics()
    assert stack.pushes(am2, "retried") >= 2
    assert stack.pushes(am1, "sent") >= 2
    assert stack.llmcost.proc is not None and stack.llmcost.proc.poll() is None


def step_the_second_replica_learns_the_alert_when_it_comes_up_and_nothing_is_notified_twice(
    stack: PushStack,
) -> None:
    _am1, am2 = stack.replicas
    stack.second.start()
    assert live_stack.wait_until(lambda: bool(stack.am_alerts(am2, filter=f'alertname="{ALERT}"')), TIMEOUT), (
        stack.diagnostics()
    )
    assert live_stack.wait_until(lambda: stack.webhooks_sent(am2) >= 2, TIMEOUT), stack.diagnostics()
    assert live_stack.wait_until(lambda: stack.pushes(am2, "sent") >= 2, TIMEOUT), stack.diagnostics()
    assert len(stack.slack_posts()) == 1, stack.diagnostics()
    assert len(stack.triggers()) == 1, stack.diagnostics()


def step_an_ack_in_llmcost_silences_the_alert_in_alertmanager(stack: PushStack) -> None:
    am1, _am2 = stack.replicas
    (alert,) = [a for a in stack.gateway_alerts() if a["alertname"] == ALERT]
    response = httpx.post(
        f"{stack.llmcost.base}/v1/alerts/{alert['id']}/ack", json={"by": "oncall"}, headers=stack.headers(), timeout=10
    )
    assert response.status_code == 200, response.text

    def suppressed() -> bool:
        found = stack.am_alerts(am1, filter=f'alertname="{ALERT}"')
        return bool(found) and found[0]["status"]["state"] == "suppressed" and bool(found[0]["status"]["silencedBy"])

    assert live_stack.wait_until(suppressed, TIMEOUT), stack.diagnostics()
    assert live_stack.wait_until(
        lambda: any(e.get("event_action") == "acknowledge" for e in stack.pagerduty.events), TIMEOUT
    ), stack.diagnostics()
    assert len(stack.slack_posts()) == 1


def step_the_alert_resolves_everywhere(stack: PushStack) -> None:
    # No longer critical, nor projected over the limit (a forecast overrun, inhibited while the critical
    # alert fires, would otherwise be notified as soon as the critical one resolves): all resolve.
    stack.put_budget(1_000_000.0)

    def resolved_everywhere() -> bool:
        active = [a for r in stack.replicas for a in stack.am_alerts(r, active="true", silenced="true")]
        gateway = [a for a in stack.gateway_alerts() if a["alertname"] == ALERT]
        return not active and bool(gateway) and all(a["state"] == "resolved" for a in gateway)

    assert live_stack.wait_until(resolved_everywhere, TIMEOUT), stack.diagnostics()
    assert live_stack.wait_until(
        lambda: any(e.get("event_action") == "resolve" for e in stack.pagerduty.events), TIMEOUT
    ), stack.diagnostics()
    assert live_stack.wait_until(lambda: bool(stack.slack.calls("chat.update")), TIMEOUT), stack.diagnostics()
    am1 = stack.replicas[0]
    silences = httpx.get(f"{am1}/api/v2/silences", timeout=5).json()
    assert silences and all(s["status"]["state"] == "expired" for s in silences), silences
    assert len(stack.slack_posts()) == 1, stack.diagnostics()
    assert len(stack.triggers()) == 1, stack.diagnostics()


def step_a_silence_added_with_amtool_keeps_a_second_crossing_quiet(stack: PushStack) -> None:
    for replica in stack.replicas:
        amtool(
            "silence",
            "add",
            f"--alertmanager.url={replica}",
            "--comment=planned batch job",
            "--duration=1h",
            f"budget={BUDGET}",
        )
    slack_before, pd_before = len(stack.slack.requests), len(stack.pagerduty.events)
    stack.put_budget(10.0)  # 97 % again: a second crossing

    def suppressed_on_both() -> bool:
        found = [stack.am_alerts(r, filter=f'alertname="{ALERT}"') for r in stack.replicas]
        return all(f and f[0]["status"]["state"] == "suppressed" for f in found)

    assert live_stack.wait_until(suppressed_on_both, TIMEOUT), stack.diagnostics()
    # Long enough for group_wait + group_interval on both replicas, measured by llmcost's own pushes.
    pushed = stack.pushes(stack.replicas[0], "sent")
    assert live_stack.wait_until(lambda: stack.pushes(stack.replicas[0], "sent") >= pushed + 4, TIMEOUT)
    assert len(stack.slack.requests) == slack_before, stack.diagnostics()
    assert len(stack.pagerduty.events) == pd_before, stack.diagnostics()


STEPS = (
    step_a_budget_crossing_is_visible_in_alertmanager_and_notified_once_with_a_replica_down,
    step_the_second_replica_learns_the_alert_when_it_comes_up_and_nothing_is_notified_twice,
    step_an_ack_in_llmcost_silences_the_alert_in_alertmanager,
    step_the_alert_resolves_everywhere,
    step_a_silence_added_with_amtool_keeps_a_second_crossing_quiet,
)


def test_the_story_top_to_bottom(stack: PushStack) -> None:
    """The five steps in order, in one test: each builds on the state the one before left.

    They were five tests sharing a module's stack; pytest-xdist deals tests out one by one, so a step
    could run on a worker whose stack had never seen the step before it (it failed with `-n 3`).
    """
    for step in STEPS:
        step(stack)
