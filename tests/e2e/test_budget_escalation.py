"""One alert per budget instance, as a person receives it from a real `llmcost serve` process.

A budget driven from 0 to 110 % crosses info, warning, critical and exceeded: that is ONE alert whose
name and severity follow the level, so each channel carries one thread (one Slack message updated in
place with replies in its thread, one mail thread, one PagerDuty incident), and a level that is routed
(`info` included) notifies. Slack and PagerDuty are local recording servers, mail a real aiosmtpd server.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.helpers import total
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN = "admin-token-0123456789abcdef"
INGEST = "ingest-token-0123456789abcdef"
LABELS = {"budget": "daily", "scope": "global", "key": ""}


class Stack:
    """`llmcost serve` with one $100 daily budget and every channel pointing at a recording server."""

    def __init__(self, proc: LlmcostProcess, slack: SlackAPIServer, pd: PagerDutyEventsServer, smtp: SMTPServer):
        self.proc, self.slack, self.pd, self.smtp = proc, slack, pd, smtp
        self.config = Path()

    def spend(self, usd: float) -> None:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": usd, "request_id": uuid.uuid4().hex}
        response = httpx.post(
            f"{self.proc.base}/v1/usage", json=event, headers={"Authorization": f"Bearer {INGEST}"}, timeout=10
        )
        assert response.status_code == 200 and response.json()["accepted"] == 1, response.text

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        response = httpx.get(
            f"{self.proc.base}/v1/alerts", params=params, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return list(response.json())

    def ack(self, alert_id: int) -> None:
        response = httpx.post(
            f"{self.proc.base}/v1/alerts/{alert_id}/ack",
            json={"by": "alice"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def slack_posts(self) -> list[dict[str, Any]]:
        return [call.payload for call in self.slack.calls("chat.postMessage")]

    def slack_updates(self) -> list[dict[str, Any]]:
        return [call.payload for call in self.slack.calls("chat.update")]

    def set_limit(self, config: Path, limit: float) -> None:
        """Raise (or lower) the budget's limit as the runbook says: edit the config file, then SIGHUP."""
        data = yaml.safe_load(config.read_text())
        data["budgets"]["items"][0]["limit"] = limit
        config.write_text(yaml.safe_dump(data))
        assert self.proc.proc is not None
        self.proc.proc.send_signal(signal.SIGHUP)


def metric(stack: Stack, name: str, **labels: str) -> float:
    return total(httpx.get(f"{stack.proc.base}/metrics", timeout=10).text, name, **labels)


def drained(stack: Stack) -> None:
    """Wait until the outbox is empty: every notification enqueued so far has been delivered (or given up)."""

    def empty() -> bool:
        text = httpx.get(f"{stack.proc.base}/metrics", timeout=10).text
        return "llm_notification_outbox_pending" in text and total(text, "llm_notification_outbox_pending") == 0

    wait_until(empty, what="the outbox to drain", timeout=30)


def settle(stack: Stack) -> None:
    """Wait for two more budget evaluations and an empty outbox: anything else due would be sent by then."""
    start = metric(stack, "llm_scheduler_runs_total", task="budgets", outcome="success")
    wait_until(
        lambda: metric(stack, "llm_scheduler_runs_total", task="budgets", outcome="success") >= start + 2,
        what="two budget evaluations",
        timeout=30,
    )
    drained(stack)  # the outbox workers' last deliveries of what those evaluations enqueued


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pd, SMTPServer() as smtp:
        config = tmp_path / "llmcost.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "auth": {"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]},
                    "budgets": {
                        "evaluate_seconds": 1,
                        "items": [
                            {
                                "name": "daily",
                                "scope": "global",
                                "period": "daily",
                                "limit": 100,
                                "thresholds": {"info": 0.5, "warning": 0.8, "critical": 0.95},
                            }
                        ],
                    },
                    "notifications": {
                        "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                        "email": smtp.email_settings(),
                        "pagerduty": {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32", "events_url": pd.events_url},
                        "routes": {
                            "info": ["slack"],
                            "warning": ["slack", "email"],
                            "critical": ["slack", "email", "pagerduty"],
                        },
                    },
                }
            )
        )
        proc = LlmcostProcess(db_url, config=config).start(tmp_path)
        try:
            stack = Stack(proc, slack, pd, smtp)
            stack.config = config
            yield stack
        finally:
            proc.stop()


def test_a_budget_driven_from_0_to_110_percent_is_one_thread_per_channel(stack: Stack) -> None:
    stack.spend(55)  # 55 %: info is routed to Slack, so it speaks
    wait_until(lambda: len(stack.slack_posts()) == 1, what="the info message on Slack", timeout=30)
    [info] = stack.alerts("firing")
    assert (info["alertname"], info["severity"], info["labels"]) == ("LLMBudgetInfo", "info", LABELS)

    stack.spend(30)  # 85 %: warning
    wait_until(
        lambda: len(stack.smtp.messages) == 1 and stack.slack_updates(),
        what="the warning on Slack and mail",
        timeout=30,
    )
    stack.spend(12)  # 97 %: critical
    wait_until(
        lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 2, what="the critical page", timeout=30
    )
    stack.spend(13)  # 110 %: exceeded
    wait_until(
        lambda: len(stack.pd.events) == 2 and len(stack.smtp.messages) == 3, what="the exceeded update", timeout=30
    )
    settle(stack)

    # One alert, named after the level reached, the same id throughout.
    alerts = stack.alerts()
    assert [(a["id"], a["alertname"], a["severity"]) for a in alerts] == [(info["id"], "LLMBudgetExceeded", "critical")]

    # Slack: one message (updated in place at every level), every other post a reply in its thread.
    posts = stack.slack_posts()
    roots = [p for p in posts if not p.get("thread_ts")]
    assert len(roots) == 1, posts
    [root_ts] = {u["ts"] for u in stack.slack_updates()}
    assert {p["thread_ts"] for p in posts if p.get("thread_ts")} == {root_ts}
    assert len(stack.slack_updates()) == 3  # warning, critical, exceeded
    assert "LLMBudgetExceeded" in str(stack.slack_updates()[-1])

    # Mail: the first message starts the thread, every later one replies to it, under one subject.
    first, *later = [m.message for m in stack.smtp.messages]
    assert first["In-Reply-To"] is None and later
    assert all(m["In-Reply-To"] == first["Message-ID"] == m["References"] for m in later)
    assert {str(m["Subject"]).removeprefix("Re: ") for m in [first, *later]} == {str(first["Subject"])}

    # PagerDuty: one incident (one dedup_key) triggered at critical and updated at exceeded.
    events = stack.pd.events
    assert {e["dedup_key"] for e in events} == {events[0]["dedup_key"]}
    assert [(e["event_action"], e["payload"]["severity"]) for e in events] == [
        ("trigger", "critical"),
        ("trigger", "critical"),
    ]
    assert "LLMBudgetExceeded" in events[-1]["payload"]["summary"]


def test_an_acknowledgement_covers_its_severity_and_a_rise_above_it_reopens_the_alert(stack: Stack) -> None:
    stack.spend(85)  # straight to warning: Slack and mail
    wait_until(lambda: len(stack.smtp.messages) == 1 and len(stack.slack_posts()) == 1, what="the warning", timeout=30)
    [warning] = stack.alerts("firing")
    stack.ack(warning["id"])
    wait_until(
        lambda: len(stack.slack_updates()) == 1 and len(stack.smtp.messages) == 2, what="the ack updates", timeout=30
    )

    stack.spend(12)  # 97 %: critical, above the acknowledged warning: re-opened, and it pages
    wait_until(lambda: len(stack.pd.events) == 1, what="the page", timeout=30)
    assert stack.pd.events[0]["event_action"] == "trigger"
    drained(stack)  # the critical level's Slack update and mail, enqueued with the page
    [alert] = stack.alerts()
    assert (alert["id"], alert["state"], alert["acknowledged_by"]) == (warning["id"], "firing", None)
    reply = stack.slack_posts()[-1]
    assert reply.get("thread_ts") and "re-opened" in reply["text"] and "LLMBudgetWarning" in reply["text"]

    stack.ack(warning["id"])  # the critical is acknowledged anew
    wait_until(lambda: len(stack.pd.events) == 2, what="the ack in PagerDuty", timeout=30)
    drained(stack)
    mails = len(stack.smtp.messages)
    slack_calls = len(stack.slack.calls("chat.postMessage")) + len(stack.slack_updates())

    stack.spend(13)  # 110 %: exceeded, same severity: the acknowledgement holds
    wait_until(lambda: stack.alerts()[0]["alertname"] == "LLMBudgetExceeded", what="the level to follow", timeout=30)
    settle(stack)
    assert [e["event_action"] for e in stack.pd.events] == ["trigger", "acknowledge"]
    assert len(stack.smtp.messages) == mails
    assert len(stack.slack.calls("chat.postMessage")) + len(stack.slack_updates()) == slack_calls
    [alert] = stack.alerts()
    assert (alert["id"], alert["state"], alert["acknowledged_by"]) == (warning["id"], "acknowledged", "alice")


def test_a_limit_raised_under_critical_ends_the_page_quietly_and_a_new_rise_pages_again(stack: Stack) -> None:
    """The runbook's mitigation for a critical budget is to raise its limit: that must stop the page.

    The alert falls to `LLMBudgetWarning`: nobody is notified (no Slack reply, no mail), the Slack
    message is edited to the new level, and the PagerDuty incident (critical only) is resolved instead
    of escalating to the next on-call for a level that no longer holds. Spend reaching critical of the
    new limit is a new rise: told in the same threads, and paged under the same dedup_key.
    """
    stack.spend(97)  # 97 % of $100: critical, paged
    wait_until(lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 1, what="the page", timeout=30)
    [critical] = stack.alerts("firing")
    dedup_key = stack.pd.events[0]["dedup_key"]

    stack.set_limit(stack.config, 115)  # 97 of 115 = 84 %: warning
    wait_until(
        lambda: [(e["event_action"], e["dedup_key"]) for e in stack.pd.events][1:] == [("resolve", dedup_key)],
        what="the incident resolved",
        timeout=30,
    )
    settle(stack)
    [warning] = stack.alerts("firing")
    assert (warning["id"], warning["alertname"], warning["severity"]) == (critical["id"], "LLMBudgetWarning", "warning")
    assert len(stack.slack_posts()) == 1 and len(stack.smtp.messages) == 1  # nobody told
    [edit] = stack.slack_updates()
    assert "LLMBudgetWarning" in str(edit) and "$115.00" in str(edit)
    assert stack.pd.open_incident(dedup_key) is None

    stack.spend(15)  # 112 of 115 = 97 %: critical again, under the new limit
    wait_until(lambda: len(stack.pd.events) == 3, what="the new page", timeout=30)
    settle(stack)
    assert [(e["event_action"], e["dedup_key"]) for e in stack.pd.events] == [
        ("trigger", dedup_key),
        ("resolve", dedup_key),
        ("trigger", dedup_key),
    ]
    root, reply = stack.slack_posts()
    assert reply["thread_ts"] == stack.slack_updates()[0]["ts"] and not root.get("thread_ts")
    first, second = [m.message for m in stack.smtp.messages]
    assert second["In-Reply-To"] == first["Message-ID"]
    assert [a["id"] for a in stack.alerts("firing")] == [critical["id"]]
