"""Live: an acknowledgement in llmcost silences the alert in a real Alertmanager, and the silence never
outlives the alert nor lets another level of it through.

What runs: `llmcost serve` (SQLite) with `alerting.alertmanager.silence_on_ack`, `resolve_after: 3s`
and a gateway tick every second, pushing its own budget alerts to the Alertmanager (`alertmanager.url`,
re-sent every second); one real Alertmanager with the shipped `alertmanager.yml` (webhook to llmcost,
group_wait/group_interval 1s, repeat_interval 2s); Slack and PagerDuty as recording servers.

A Prometheus rule alert is posted to Alertmanager's `POST /api/v2/alerts` by `RuleEvaluator`, exactly as
Prometheus's notifier does it: every second while the rule fires, with `endsAt` four resends ahead, and
with `endsAt` set to the resolve time once it stops. (A real Prometheus would need minutes of `for:`.)

1. Defect: an acknowledged rule alert that resolves in Alertmanager is held back by llmcost's own
   silence, so llmcost never heard of the resolve. Now llmcost notices the alert is gone from
   Alertmanager for `resolve_after`, resolves it (one resolve per channel) and expires the silence; while
   the alert is still active, and while Alertmanager is down or restarted without its alerts, nothing
   is resolved.
2. Defect: the silence of an acknowledged budget alert matched that level only, so the next level
   (LLMBudgetCritical acked, then LLMBudgetExceeded) was active and unsilenced in Alertmanager. Now it
   covers the levels the acknowledgement holds for in llmcost, and no more: a warning's ack does not
   silence the critical level, which re-opens the alert and pages. The page does not widen the
   warning's silence (nobody acknowledged the critical): it expires with the acknowledgement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from alerting.signatures import sign_pagerduty
from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, RecordedRequest, SlackAPIServer
from tests.support.rule_alerts import RuleEvaluator

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN_TOKEN = "silence-admin-token-0123456789abcdef"
INGEST_TOKEN = "silence-ingest-token-0123456789abcdef"
WEBHOOK_TOKEN = "silence-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-silence-test-token"
ROUTING_KEY = "R0123456789ABCDEF0123456789ABCDE"
PD_SECRET = "pd-webhook-secret-for-the-silence-test"
RESOLVE_AFTER = 3.0
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
TIMEOUT = 45.0
RULE_LABELS = {
    "alertname": "LLMCostIngestStalled",
    "severity": "warning",
    "job": "llmcost",
    "instance": "llmcost:9800",
}


@dataclass
class SilenceStack:
    llmcost: LlmcostProcess
    am: str
    alertmanager: Any
    slack: SlackAPIServer
    pagerduty: PagerDutyEventsServer
    workdir: Path

    def headers(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return live_stack.bearer(token)

    def gateway_alerts(self, **labels: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=self.headers(), timeout=5).json()
        return [a for a in body if all(a["labels"].get(k) == v for k, v in labels.items())]

    def gateway_alert(self, alert_id: int) -> dict[str, Any]:
        (alert,) = [a for a in self.gateway_alerts() if a["id"] == alert_id]
        return alert

    def notifications(self, alert_id: int) -> list[dict[str, Any]]:
        # `/v1/notifications` filters by status and channel only (another parameter is a 400): filter here.
        response = httpx.get(f"{self.llmcost.base}/v1/notifications", headers=self.headers(), timeout=5)
        assert response.status_code == 200, response.text
        return [n for n in response.json() if n["alert_id"] == alert_id]

    def am_alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alertmanager's active alerts (silenced and inhibited included) carrying these labels."""
        found = httpx.get(f"{self.am}/api/v2/alerts", timeout=5).json()
        return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]

    def silences(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.am}/api/v2/silences", timeout=5).json())

    def slack_posts(self, text: str) -> list[RecordedRequest]:
        """Top-level Slack messages mentioning `text` (thread replies are not new notifications)."""
        return [
            r
            for r in self.slack.calls("chat.postMessage")
            if not r.payload.get("thread_ts") and text in json.dumps(r.payload)
        ]

    def pd_events(self, action: str, dedup_key: str) -> list[dict[str, Any]]:
        return [e for e in self.pagerduty.events if e.get("event_action") == action and e.get("dedup_key") == dedup_key]

    def pagerduty_webhook(self, event_type: str, fingerprint: str, event_id: str) -> httpx.Response:
        """A signed PagerDuty webhook v3 delivery about the incident of `llmcost-<fingerprint>`."""
        body = orjson.dumps(
            {
                "event": {
                    "id": event_id,
                    "event_type": event_type,
                    "resource_type": "incident",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "agent": {"id": "PUSER01", "summary": "Bob Oncall", "type": "user_reference"},
                    "data": {"id": "Q1", "type": "incident", "incident_key": f"llmcost-{fingerprint}"},
                }
            }
        )
        return httpx.post(
            f"{self.llmcost.base}/v1/pagerduty/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(PD_SECRET, body)},
            timeout=10,
        )

    def put_budget(self, name: str, limit: float) -> None:
        body = {"scope": "project", "key": name, "period": "monthly", "limit": limit, "unit": "usd", "mode": "soft"}
        response = httpx.put(f"{self.llmcost.base}/v1/budgets/{name}", json=body, headers=self.headers(), timeout=10)
        assert response.status_code in (200, 201), response.text

    def spend(self, project: str, request_id: str, cost: float) -> None:
        live_stack.spend(self.llmcost.base, INGEST_TOKEN, project, request_id, cost)

    def ack(self, alert_id: int) -> None:
        response = httpx.post(
            f"{self.llmcost.base}/v1/alerts/{alert_id}/ack", json={"by": "oncall"}, headers=self.headers(), timeout=10
        )
        assert response.status_code == 200, response.text

    def unack(self, alert_id: int) -> None:
        response = httpx.post(
            f"{self.llmcost.base}/v1/alerts/{alert_id}/unack", json={"by": "oncall"}, headers=self.headers(), timeout=10
        )
        assert response.status_code == 200, response.text

    def diagnostics(self) -> str:
        sources = (
            ("Alertmanager alerts", lambda: httpx.get(f"{self.am}/api/v2/alerts", timeout=5).json()),
            ("Alertmanager silences", self.silences),
            ("gateway alerts", lambda: self.gateway_alerts()),
            ("Slack calls", lambda: [(r.path, r.payload.get("text")) for r in self.slack.requests]),
            ("PagerDuty events", lambda: [(e.get("event_action"), e.get("dedup_key")) for e in self.pagerduty.events]),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=4000, log_chars=3000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SilenceStack]:
    workdir = tmp_path_factory.mktemp("alertmanager-ack-silence")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        pagerduty = cleanup.enter_context(PagerDutyEventsServer())
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am_port = live_stack.free_ports(2)
        am = f"http://127.0.0.1:{am_port}"
        config = {
            "auth": {"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "external_url": "http://llmcost.test:9800",
            "alertmanager": {"url": am, "resend_interval": "1s", "retries": 1, "timeout": "2s"},
            "alerting": {
                "tick_interval": "1s",
                "alertmanager": {"silence_on_ack": True, "resolve_after": f"{RESOLVE_AFTER:g}s"},
            },
            "budgets": {"evaluate_seconds": 1, "items": []},
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {
                    "routing_key": ROUTING_KEY,
                    "events_url": pagerduty.events_url,
                    "webhook_secret": PD_SECRET,
                },
                "routes": {"info": [], "warning": ["slack", "pagerduty"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)
        ports = live_stack.Ports(llmcost_port, 0, am_port)
        server = live_stack.start_alertmanager(
            cleanup, workdir / "am", ports, credentials_file=token_file, timings=TIMINGS
        )
        yield SilenceStack(llmcost, am, server, slack, pagerduty, workdir)


def test_an_acknowledged_rule_alert_that_ends_in_alertmanager_resolves_once_and_its_silence_expires(
    stack: SilenceStack,
) -> None:
    rule = RuleEvaluator(stack.am, RULE_LABELS).start()
    try:
        assert live_stack.wait_until(lambda: bool(stack.gateway_alerts(job="llmcost")), TIMEOUT), stack.diagnostics()
        (alert,) = stack.gateway_alerts(job="llmcost")
        alert_id, dedup_key = alert["id"], f"llmcost-{alert['fingerprint']}"
        assert live_stack.wait_until(lambda: bool(stack.pd_events("trigger", dedup_key)), TIMEOUT), stack.diagnostics()
        assert len(stack.slack_posts("LLMCostIngestStalled")) == 1

        # Acknowledged in PagerDuty: llmcost silences it in Alertmanager.
        response = stack.pagerduty_webhook("incident.acknowledged", alert["fingerprint"], "01SILENCEACK0001")
        assert response.status_code == 200, response.text
        assert stack.gateway_alert(alert_id)["state"] == "acknowledged"

        def silenced() -> bool:
            found = stack.am_alerts(alertname="LLMCostIngestStalled")
            return bool(found) and bool(found[0]["status"]["silencedBy"])

        assert live_stack.wait_until(silenced, TIMEOUT), stack.diagnostics()
        (silence_id,) = stack.am_alerts(alertname="LLMCostIngestStalled")[0]["status"]["silencedBy"]

        # Still firing: however long it stays silenced, it is not resolved. (Passing time is the subject.)
        time.sleep(2 * RESOLVE_AFTER)
        assert stack.gateway_alert(alert_id)["state"] == "acknowledged", stack.diagnostics()

        # Alertmanager down for longer than resolve_after, then back without its alerts (they live in
        # memory; Prometheus sends them again): nothing is resolved meanwhile.
        stack.alertmanager.stop()
        time.sleep(2 * RESOLVE_AFTER)
        stack.alertmanager.start()
        assert live_stack.wait_until(silenced, TIMEOUT), stack.diagnostics()
        time.sleep(2 * RESOLVE_AFTER)
        assert stack.gateway_alert(alert_id)["state"] == "acknowledged", stack.diagnostics()
        assert not stack.pd_events("resolve", dedup_key)

        # The rule stops firing. Alertmanager resolves the alert but, silenced, tells nobody.
        rule.resolve()
        assert live_stack.wait_until(lambda: not stack.am_alerts(alertname="LLMCostIngestStalled"), TIMEOUT)
        assert live_stack.wait_until(lambda: stack.gateway_alert(alert_id)["state"] == "resolved", TIMEOUT), (
            stack.diagnostics()
        )
        assert live_stack.wait_until(lambda: bool(stack.pd_events("resolve", dedup_key)), TIMEOUT), stack.diagnostics()

        def silence_expired() -> bool:
            (silence,) = [s for s in stack.silences() if s["id"] == silence_id]
            return bool(silence["status"]["state"] == "expired")

        assert live_stack.wait_until(silence_expired, TIMEOUT), stack.diagnostics()

        def resolves_sent() -> list[str]:
            return sorted(
                n["channel"] for n in stack.notifications(alert_id) if n["kind"] == "resolved" and n["status"] == "sent"
            )

        assert live_stack.wait_until(lambda: resolves_sent() == ["alertmanager", "pagerduty", "slack"], TIMEOUT), (
            stack.notifications(alert_id)
        )
        # Nothing more comes of it (the rule keeps sending its resolved alert, as Prometheus does).
        time.sleep(2 * RESOLVE_AFTER)
        assert resolves_sent() == ["alertmanager", "pagerduty", "slack"]
        assert len(stack.pd_events("resolve", dedup_key)) == 1
        assert len(stack.pd_events("trigger", dedup_key)) == 1
        assert len(stack.slack_posts("LLMCostIngestStalled")) == 1
    finally:
        rule.stop()


def _silence_of(stack: SilenceStack, budget: str) -> dict[str, Any]:
    """The active silence llmcost created for this budget's alert."""
    (silence,) = [
        s
        for s in stack.silences()
        if s["status"]["state"] == "active" and {"name": "budget", "value": budget} in _plain(s["matchers"])
    ]
    return silence


def _plain(matchers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": m["name"], "value": m["value"]} for m in matchers]


def _cross_and_ack(stack: SilenceStack, budget: str, request_id: str, cost: float, level: str) -> str:
    """A $10 budget crossed to `level` (paged), then acknowledged and silenced in Alertmanager; its dedup_key."""
    stack.put_budget(budget, 10.0)
    stack.spend(budget, request_id, cost)
    assert live_stack.wait_until(lambda: bool(stack.gateway_alerts(budget=budget)), TIMEOUT), stack.diagnostics()
    (alert,) = stack.gateway_alerts(budget=budget)
    assert alert["alertname"] == level
    dedup_key = f"llmcost-{alert['fingerprint']}"
    assert live_stack.wait_until(lambda: bool(stack.pd_events("trigger", dedup_key)), TIMEOUT), stack.diagnostics()
    stack.ack(alert["id"])
    assert live_stack.wait_until(
        lambda: any(a["status"]["silencedBy"] for a in stack.am_alerts(alertname=level, budget=budget)),
        TIMEOUT,
    ), stack.diagnostics()
    return dedup_key


def test_an_acknowledged_critical_budget_stays_silenced_in_alertmanager_when_it_is_exceeded(
    stack: SilenceStack,
) -> None:
    budget = "team-exceeded"
    dedup_key = _cross_and_ack(stack, budget, "exceeded-1", 9.7, "LLMBudgetCritical")  # 97 %: critical
    silence = _silence_of(stack, budget)
    by_name = {m["name"]: m for m in silence["matchers"]}
    assert set(by_name) == {"alertname", "budget", "scope", "key"}  # not severity: it differs per level
    assert by_name["alertname"]["isRegex"] is True
    assert set(by_name["alertname"]["value"].split("|")) == {
        "LLMBudgetInfo",
        "LLMBudgetForecastOverrun",  # a level of the family, ranked between info and warning
        "LLMBudgetWarning",
        "LLMBudgetCritical",
        "LLMBudgetExceeded",
    }

    stack.spend(budget, "exceeded-2", 1.0)  # 107 %: exceeded
    assert live_stack.wait_until(lambda: bool(stack.am_alerts(alertname="LLMBudgetExceeded", budget=budget)), TIMEOUT)
    (exceeded,) = stack.am_alerts(alertname="LLMBudgetExceeded", budget=budget)
    assert exceeded["status"]["state"] == "suppressed", stack.diagnostics()
    assert exceeded["status"]["silencedBy"] == [silence["id"]]
    # Inside llmcost the acknowledgement holds too: nothing new was sent.
    pushed = live_stack.metric_value(stack.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent")
    assert live_stack.wait_until(
        lambda: (
            live_stack.metric_value(stack.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent") >= pushed + 4
        ),
        TIMEOUT,
    )
    assert len(stack.pd_events("trigger", dedup_key)) == 1, stack.diagnostics()
    assert len(stack.slack_posts(budget)) == 1, stack.diagnostics()
    assert stack.gateway_alerts(budget=budget)[0]["state"] == "acknowledged"

    # It ends: resolved once, and the family's silence expires.
    stack.put_budget(budget, 1_000_000.0)
    assert live_stack.wait_until(lambda: stack.gateway_alerts(budget=budget)[0]["state"] == "resolved", TIMEOUT)
    assert live_stack.wait_until(lambda: bool(stack.pd_events("resolve", dedup_key)), TIMEOUT), stack.diagnostics()
    assert live_stack.wait_until(
        lambda: next(s for s in stack.silences() if s["id"] == silence["id"])["status"]["state"] == "expired", TIMEOUT
    ), stack.diagnostics()


def test_an_acknowledged_warning_does_not_silence_the_critical_level_which_pages(stack: SilenceStack) -> None:
    budget = "team-warned"
    dedup_key = _cross_and_ack(stack, budget, "warned-1", 8.5, "LLMBudgetWarning")  # 85 %: warning
    by_name = {m["name"]: m for m in _silence_of(stack, budget)["matchers"]}
    assert set(by_name["alertname"]["value"].split("|")) == {
        "LLMBudgetInfo",
        "LLMBudgetForecastOverrun",
        "LLMBudgetWarning",
    }

    # Critical pages even an acknowledged alert in llmcost: Alertmanager must let it through to say so.
    stack.spend(budget, "warned-2", 1.2)  # 97 %: critical
    assert live_stack.wait_until(lambda: bool(stack.am_alerts(alertname="LLMBudgetCritical", budget=budget)), TIMEOUT)
    (critical,) = stack.am_alerts(alertname="LLMBudgetCritical", budget=budget)
    assert critical["status"]["silencedBy"] == [], stack.diagnostics()
    assert live_stack.wait_until(lambda: len(stack.pd_events("trigger", dedup_key)) == 2, TIMEOUT), stack.diagnostics()
    assert stack.gateway_alerts(budget=budget)[0]["alertname"] == "LLMBudgetCritical"

    stack.put_budget(budget, 1_000_000.0)
    assert live_stack.wait_until(lambda: stack.gateway_alerts(budget=budget)[0]["state"] == "resolved", TIMEOUT)


def test_a_warning_ack_silence_is_not_widened_by_the_critical_page_and_expires_with_the_reopening(
    stack: SilenceStack,
) -> None:
    # The escalation must not widen the warning's silence (that would silence a page nobody acknowledged)
    # nor leave it behind: the critical re-opens the alert, so the acknowledgement and its silence end.
    budget = "team-escalated"
    dedup_key = _cross_and_ack(stack, budget, "escalated-1", 8.5, "LLMBudgetWarning")  # 85 %: warning
    silence = _silence_of(stack, budget)

    stack.spend(budget, "escalated-2", 1.2)  # 97 %: critical, pages
    assert live_stack.wait_until(lambda: len(stack.pd_events("trigger", dedup_key)) == 2, TIMEOUT), stack.diagnostics()
    assert live_stack.wait_until(
        lambda: next(s for s in stack.silences() if s["id"] == silence["id"])["status"]["state"] == "expired", TIMEOUT
    ), stack.diagnostics()
    # Alertmanager re-sends the critical level to llmcost (repeat_interval 2s): still unsilenced, still
    # one page, and no silence until someone acknowledges the critical.
    pushed = live_stack.metric_value(stack.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent")
    assert live_stack.wait_until(
        lambda: (
            live_stack.metric_value(stack.llmcost.base, "llm_alertmanager_pushes_total", outcome="sent") >= pushed + 4
        ),
        TIMEOUT,
    )
    (critical,) = stack.am_alerts(alertname="LLMBudgetCritical", budget=budget)
    assert critical["status"]["silencedBy"] == [], stack.diagnostics()
    assert stack.gateway_alerts(budget=budget)[0]["state"] == "firing"
    assert len(stack.pd_events("trigger", dedup_key)) == 2, stack.diagnostics()
    assert len(stack.pd_events("resolve", dedup_key)) == 1  # the acknowledged warning incident, replaced
    assert len(stack.slack_posts(budget)) == 1, stack.diagnostics()  # one thread: the rise is a reply in it

    stack.put_budget(budget, 1_000_000.0)  # it ends: one resolve
    assert live_stack.wait_until(lambda: len(stack.pd_events("resolve", dedup_key)) == 2, TIMEOUT), stack.diagnostics()
    assert stack.gateway_alerts(budget=budget)[0]["state"] == "resolved"
