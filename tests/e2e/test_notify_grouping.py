"""Paging storms from one request (#14 part 4), as people receive them from a real `llmcost serve`.

A per-project `key: "*"` budget and ONE POST /v1/usage of 50 events for 50 new projects that each cross
it: each project is its own alert (own state, history, acknowledgement), but each channel gets ONE
message listing them (Slack post, mail, PagerDuty incident per budget), and "Acknowledge all" (Slack) or
acknowledging the grouped incident (PagerDuty) acknowledges every listed alert. One or two instances
are notified one by one exactly as before. A per-channel `max_per_minute` folds the overflow into one
summary ("and N more"), counted in `llm_notifications_folded_total{how="summarised"}`.

Slack and PagerDuty are local recording servers, mail a real aiosmtpd server; SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import yaml

from alerting.signatures import sign_pagerduty, sign_slack
from tests.support.helpers import total
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, ingest
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

SIGNING_SECRET = "slack-signing-secret-0123456789"
PD_SECRET = "pd-webhook-secret-0123456789"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"
ALL = ["slack", "email", "pagerduty"]


class Stack:
    """`llmcost serve` with a per-project budget, every channel pointing at a recording server."""

    def __init__(self, proc: LlmcostProcess, slack: SlackAPIServer, pd: PagerDutyEventsServer, smtp: SMTPServer):
        self.proc, self.slack, self.pd, self.smtp = proc, slack, pd, smtp

    def post_usage(self, projects: list[str], usd: float = 5.0) -> None:
        events = [
            {"provider": "openai", "model": "gpt-4o", "project": p, "cost_usd": usd, "request_id": uuid.uuid4().hex}
            for p in projects
        ]
        ingest(self.proc, events)

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        response = httpx.get(
            f"{self.proc.base}/v1/alerts", params=params, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return list(response.json())

    def metrics(self) -> str:
        return httpx.get(f"{self.proc.base}/metrics", timeout=10).text

    def pending(self) -> float:
        return total(self.metrics(), "llm_notification_outbox_pending")

    def slack_posts(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.slack.calls("chat.postMessage")]

    def slack_click(self, action_id: str, value: str) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "user": {"id": "U123", "username": "alice", "name": "alice"},
            "actions": [{"action_id": action_id, "block_id": "llmcost_actions", "value": value, "type": "button"}],
        }
        body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
        ts = str(int(time.time()))
        return httpx.post(
            f"{self.proc.base}/v1/slack/interactions",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign_slack(SIGNING_SECRET, ts, body),
            },
            timeout=30,
        )

    def pagerduty_webhook(self, event_type: str, incident_key: str) -> httpx.Response:
        return self.pagerduty_deliver(
            {
                "event": {
                    "id": uuid.uuid4().hex,
                    "event_type": event_type,
                    "resource_type": "incident",
                    "agent": {"id": "PLH1HKV", "summary": "Bob Oncall", "type": "user_reference"},
                    "data": {"id": "PGR0VU2", "type": "incident", "incident_key": incident_key},
                }
            }
        )

    def pagerduty_deliver(self, webhook: dict[str, Any]) -> httpx.Response:
        """POST a PagerDuty webhook v3 body (e.g. one the PagerDuty stand-in recorded), signed."""
        body = orjson.dumps(webhook)
        return httpx.post(
            f"{self.proc.base}/v1/pagerduty/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty([PD_SECRET], body)},
            timeout=30,
        )


def delivered(stack: Stack, alerts: int, state: str = "firing") -> None:
    """Wait until `alerts` alerts are in `state` and nothing is left to deliver."""
    wait_until(lambda: len(stack.alerts(state)) == alerts, what=f"{alerts} {state} alerts", timeout=60)
    wait_until(lambda: stack.pending() == 0, what="the outbox to drain", timeout=60)


@contextmanager
def running(
    db_url: str, tmp_path: Path, *, alerting: dict[str, Any] | None = None, **channel_extra: Any
) -> Iterator[Stack]:
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pd, SMTPServer() as smtp:
        notifications: dict[str, Any] = {
            "slack": {
                "token": "xoxb-test-token",
                "channel": "#llm-cost",
                "api_url": slack.api_url,
                "signing_secret": SIGNING_SECRET,
            },
            "email": smtp.email_settings(),
            "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pd.events_url, "webhook_secret": PD_SECRET},
            "routes": {"info": [], "warning": ALL, "critical": ALL},
        }
        for channel, extra in channel_extra.items():
            notifications[channel].update(extra)
        raw = {
            "auth": {"admin_tokens": [ADMIN_TOKEN], "ingest_tokens": [INGEST_TOKEN]},
            "budgets": {
                "evaluate_seconds": 3600,  # the ingest path raises the alerts; no pass in between
                "items": [
                    {
                        "name": "per-project",
                        "scope": "project",
                        "key": "*",
                        "period": "daily",
                        "limit": 1,
                        "thresholds": {"warning": 0.5, "critical": 0.8},
                    }
                ],
            },
            "notifications": notifications,
            "alerting": alerting or {},
        }
        config = tmp_path / "llmcost.yml"
        config.write_text(yaml.safe_dump(raw))
        proc = LlmcostProcess(db_url, config=config).start(tmp_path)
        try:
            yield Stack(proc, slack, pd, smtp)
        finally:
            proc.stop()


@pytest.mark.real_process
@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_fifty_instances_crossing_in_one_request_are_one_message_per_channel(db_url: str, tmp_path: Path) -> None:
    projects = [f"storm-{i:02d}" for i in range(50)]
    with running(db_url, tmp_path) as stack:
        stack.post_usage(projects)  # $5 each against a $1 budget: every project is over it
        delivered(stack, 50)

        alerts = stack.alerts("firing")
        assert sorted(a["labels"]["key"] for a in alerts) == projects  # one alert per instance, as before

        posts = stack.slack_posts()
        assert len(posts) == 1, [p.get("text") for p in posts]
        text = orjson.dumps(posts[0]["blocks"]).decode()
        assert "50 instances of budget per-project" in posts[0]["text"]
        assert "storm-00" in text and "and 25 more" in text
        button = next(b for b in posts[0]["blocks"] if b["type"] == "actions")["elements"][0]
        assert button["action_id"] == "llmcost_ack_digest"

        assert len(stack.pd.events) == 1
        page = stack.pd.events[0]
        assert page["event_action"] == "trigger" and page["dedup_key"].startswith("llmcost-group-")
        assert page["payload"]["custom_details"]["count"] == 50
        assert sorted(page["payload"]["custom_details"]["instances"]) == projects

        assert len(stack.smtp.messages) == 1
        body = stack.smtp.messages[0].part("text/plain")
        assert "50 instances of budget per-project" in body and "and 25 more" in body

        metrics = stack.metrics()
        for channel in ALL:
            assert total(metrics, "llm_notifications_folded_total", channel=channel, how="grouped") == 50
            assert total(metrics, "llm_notifications_total", channel=channel, outcome="sent") == 50

        # "Acknowledge all" on the grouped Slack message acknowledges every alert it listed...
        response = stack.slack_click("llmcost_ack_digest", button["value"])
        assert response.status_code == 200, response.text
        delivered(stack, 50, "acknowledged")
        assert {a["acknowledged_by"] for a in stack.alerts("acknowledged")} == {"alice"}
        # ... and says so in one message per channel; PagerDuty's grouped incident is acknowledged.
        assert len(stack.slack_posts()) == 2 and "acknowledged" in stack.slack_posts()[1]["text"]
        assert [e["event_action"] for e in stack.pd.events] == ["trigger", "acknowledge"]
        assert stack.pd.events[1]["dedup_key"] == page["dedup_key"]
        assert len(stack.smtp.messages) == 2


@pytest.mark.real_process
@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_acknowledging_the_grouped_pagerduty_incident_acknowledges_its_instances(db_url: str, tmp_path: Path) -> None:
    with running(db_url, tmp_path) as stack:
        stack.post_usage([f"pd-{i}" for i in range(5)])
        delivered(stack, 5)
        assert len(stack.pd.events) == 1
        key = stack.pd.events[0]["dedup_key"]

        response = stack.pagerduty_webhook("incident.acknowledged", key)
        assert response.status_code == 200, response.text
        delivered(stack, 5, "acknowledged")
        assert {a["acknowledged_by"] for a in stack.alerts("acknowledged")} == {"Bob Oncall"}
        assert len(stack.pd.events) == 1  # not echoed back to PagerDuty
        assert len(stack.slack_posts()) == 2  # the group, then one message saying they were acknowledged


@pytest.mark.real_process
@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_a_critical_escalation_of_an_acknowledged_group_pages_again(db_url: str, tmp_path: Path) -> None:
    # The group's acknowledged incident used to get only a `trigger`, which PagerDuty appends to its log:
    # the projects going critical paged nobody.
    projects = [f"esc-{i}" for i in range(5)]
    with running(db_url, tmp_path) as stack:
        stack.post_usage(projects, usd=0.6)  # 60 % of $1: warning, not critical (80 %)
        delivered(stack, 5)
        [warning_incident] = stack.pd.pages
        key = warning_incident.dedup_key
        button = next(b for b in stack.slack_posts()[0]["blocks"] if b["type"] == "actions")["elements"][0]
        assert stack.slack_click("llmcost_ack_digest", button["value"]).status_code == 200
        delivered(stack, 5, "acknowledged")
        assert warning_incident.status == "acknowledged"
        seen = len(stack.pd.webhooks)

        stack.post_usage(projects, usd=0.3)  # 90 %: critical, one pass for the five
        delivered(stack, 5)  # re-opened: firing again, as if nobody had acknowledged

        assert len(stack.pd.pages) == 2, "the critical escalation paged nobody: " + str(warning_incident.log)
        assert [e["event_action"] for e in stack.pd.events] == ["trigger", "acknowledge", "resolve", "trigger"]
        assert {e["dedup_key"] for e in stack.pd.events} == {key}
        critical_incident = stack.pd.pages[-1]
        assert (critical_incident.status, critical_incident.severity) == ("triggered", "critical")
        assert "5 instances of budget per-project escalated" in critical_incident.summary
        assert "re-opened" in critical_incident.summary
        assert warning_incident.status == "resolved"
        # PagerDuty's webhook about the replaced incident (resolved by llmcost) ends none of the alerts.
        reasons = [stack.pagerduty_deliver(w).json().get("reason") for w in stack.pd.webhooks[seen:]]
        assert "the incident was replaced when its alerts were re-opened" in reasons
        assert len(stack.alerts("firing")) == 5


@pytest.mark.real_process
@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_one_or_two_instances_are_notified_one_by_one_as_before(db_url: str, tmp_path: Path) -> None:
    with running(db_url, tmp_path) as stack:
        stack.post_usage(["solo-a", "solo-b"])
        delivered(stack, 2)
        posts = stack.slack_posts()
        assert len(posts) == 2
        buttons = [next(b for b in p["blocks"] if b["type"] == "actions")["elements"][0] for p in posts]
        assert {b["action_id"] for b in buttons} == {"llmcost_ack"}  # each alert its own living message
        keys = sorted(e["dedup_key"] for e in stack.pd.events)
        assert len(keys) == 2 and not any(k.startswith("llmcost-group-") for k in keys)
        assert len(stack.smtp.messages) == 2

        # The single alert's own button acknowledges it, and its message is updated in place.
        alert_id = buttons[0]["value"]
        assert stack.slack_click("llmcost_ack", alert_id).status_code == 200
        wait_until(lambda: len(stack.alerts("acknowledged")) == 1, what="the acknowledgement", timeout=60)
        wait_until(lambda: len(stack.slack.calls("chat.update")) == 1, what="the living message updated", timeout=60)
        assert len(stack.slack_posts()) == 2


@pytest.mark.real_process
@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_a_channel_rate_limit_summarises_the_overflow_in_one_message(db_url: str, tmp_path: Path) -> None:
    # Grouping off: 12 instances would be 12 Slack posts; max_per_minute 3 makes them 2 single posts and
    # one summary of the other 10, within the minute, none dropped.
    with running(db_url, tmp_path, alerting={"group_threshold": 0}, slack={"max_per_minute": 3}) as stack:
        stack.post_usage([f"rate-{i:02d}" for i in range(12)])
        delivered(stack, 12)
        posts = stack.slack_posts()
        assert len(posts) == 3, [p.get("text") for p in posts]
        summaries = [p for p in posts if "notifications summarised" in p["text"]]
        assert len(summaries) == 1, [p.get("text") for p in posts]  # sent beside the singles, in any order
        summary = summaries[0]
        assert "10 notifications summarised" in summary["text"]
        listed = orjson.dumps(summary["blocks"]).decode()
        assert sum(f"rate-{i:02d}" in listed for i in range(12)) == 10
        metrics = stack.metrics()
        assert total(metrics, "llm_notifications_folded_total", channel="slack", how="summarised") == 10
        assert total(metrics, "llm_notifications_total", channel="slack", outcome="sent") == 12
        # The other channels have no limit: one message per alert, as configured.
        assert len(stack.pd.events) == 12 and len(stack.smtp.messages) == 12


# --- the pieces, without a server --------------------------------------------------------------------


def _notification(key: str, alert_id: int = 1) -> Any:
    from datetime import UTC, datetime

    from alerting.model import Alert, Notification, NotificationKind

    labels = {"budget": "per-project", "scope": "project", "key": key}
    alert = Alert(
        id=alert_id,
        fingerprint=f"{alert_id:016x}",
        alertname="LLMBudgetExceeded",
        labels=labels,
        annotations={"summary": f"Budget per-project is at 500% for {key}"},
        severity="critical",
        starts_at=datetime(2026, 12, 4, tzinfo=UTC),
    )
    return Notification(kind=NotificationKind.FIRING, alert=alert, channel="slack")


def test_a_grouped_slack_message_escapes_instance_names() -> None:
    from alerting.notify.digest import Digest
    from alerting.notify.slack import build_digest_message

    hostile = "<!channel> *x* <https://evil.example|click>"
    message = build_digest_message(
        Digest(key="llmcost-group-0123456789abcdef", notifications=(_notification(hostile),))
    )
    text = orjson.dumps(message).decode()
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_grouping_settings_are_checked() -> None:
    from alerting.gateway.config import parse_settings

    problems: list[str] = []
    slack = {"token": "xoxb-1", "channel": "#c", "max_per_minute": -1, "group": "no"}
    parse_settings({"notifications": {"slack": slack}, "alerting": {"group_threshold": 1}}, Path("."), problems)
    assert any("alerting.group_threshold" in p for p in problems)
    assert any("notifications.slack.max_per_minute" in p for p in problems)
    assert any("notifications.slack.group" in p for p in problems)

    problems = []
    pd = {"routing_key": ROUTING_KEY, "group": False}
    slack = {"token": "xoxb-1", "channel": "#c", "max_per_minute": 20}
    settings = parse_settings(
        {"notifications": {"slack": slack, "pagerduty": pd}, "alerting": {"group_wait": "5s"}}, Path("."), problems
    )
    assert problems == []
    grouping = settings.grouping
    assert grouping.group_wait == 5.0 and grouping.group_threshold == 3
    assert grouping.max_per_minute == {"slack": 20}
    assert grouping.groups("slack") and not grouping.groups("pagerduty")
