"""Live: a budget's limit raised mid-alert, on the direct path and through a real Alertmanager.

What runs: `llmcost serve` (SQLite), budgets evaluated every second, Slack and PagerDuty as recording
servers, mail through a real aiosmtpd; for the Alertmanager path one real Alertmanager with the shipped
`alertmanager.yml` (group_wait/group_interval 1s), llmcost pushing to it every second.

The story, the runbook's mitigation of a critical budget: $110 of $100 (exceeded, paged), then the
limit raised to $125 (88 %, warning). The alert falls to `LLMBudgetWarning` quietly: its Slack message
shows the new level, its PagerDuty incident (critical only) is resolved, nobody is told. Through
Alertmanager the fall reached the gateway as the end of `LLMBudgetExceeded`, which resolved the whole
alert ("resolved" on Slack, in the mail thread and in PagerDuty, with the budget still at 88 %), and the
`LLMBudgetWarning` that followed was dropped as a replay of that resolved occurrence: no alert at all.
Both paths now give the same threads: one Slack message, one mail thread, one `dedup_key`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN = "raised-admin-token-0123456789abcdef"
INGEST = "raised-ingest-token-0123456789abcdef"
WEBHOOK = "raised-webhook-token-0123456789abcdef"
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


class Stack:
    def __init__(self, llmcost: LlmcostProcess, slack: SlackAPIServer, pd: PagerDutyEventsServer, smtp: SMTPServer):
        self.llmcost, self.slack, self.pd, self.smtp = llmcost, slack, pd, smtp

    def put_budget(self, limit: float) -> None:
        body = {"scope": "project", "key": "team-r", "period": "daily", "limit": limit}
        response = httpx.put(
            f"{self.llmcost.base}/v1/budgets/team-r", json=body, headers=live_stack.bearer(ADMIN), timeout=10
        )
        assert response.status_code == 200, response.text

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=live_stack.bearer(ADMIN), timeout=10)
        return list(response.json())

    def pending(self) -> float:
        return live_stack.metric_value(self.llmcost.base, "llm_notification_outbox_pending")

    def threads(self) -> dict[str, Any]:
        """What a person received, per channel, in the shape of its threads."""
        posts = [c.payload for c in self.slack.calls("chat.postMessage")]
        mails = [m.message for m in self.smtp.messages]
        return {
            "slack roots": len([p for p in posts if not p.get("thread_ts")]),
            "slack replies": len([p for p in posts if p.get("thread_ts")]),
            "mail roots": len([m for m in mails if m["In-Reply-To"] is None]),
            "mails": len(mails),
            "pagerduty": [(e["event_action"], e["dedup_key"]) for e in self.pd.events],
        }


@pytest.fixture(params=["direct", "alertmanager"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer())
        pd = cleanup.enter_context(PagerDutyEventsServer())
        smtp = cleanup.enter_context(SMTPServer())
        llmcost_port, am_port = live_stack.free_ports(2)
        config: dict[str, Any] = {
            "auth": {"ingest_tokens": [INGEST], "admin_tokens": [ADMIN], "webhook_tokens": [WEBHOOK]},
            "budgets": {"evaluate_seconds": 1, "items": []},
            "notifications": {
                "slack": {"token": "xoxb-raised-test", "channel": "#llm-cost", "api_url": slack.api_url},
                "email": smtp.email_settings(),
                "pagerduty": {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32", "events_url": pd.events_url},
                "routes": {"info": [], "warning": ["slack", "email"], "critical": ["slack", "email", "pagerduty"]},
            },
        }
        if request.param == "alertmanager":
            config["alertmanager"] = {"url": f"http://127.0.0.1:{am_port}", "resend_interval": "1s", "retries": 1}
            live_stack.start_alertmanager(
                cleanup,
                tmp_path / "am",
                live_stack.Ports(llmcost_port, 0, am_port),
                credentials_file=live_stack.webhook_token_file(tmp_path, WEBHOOK),
                timings=TIMINGS,
            )
        yield Stack(serve_with_config(tmp_path, config, llmcost_port, cleanup), slack, pd, smtp)


def test_a_limit_raised_under_critical_keeps_the_alert_at_its_level_and_ends_the_page(stack: Stack) -> None:
    stack.put_budget(100)
    live_stack.spend(stack.llmcost.base, INGEST, "team-r", "raised-1", 110.0)  # exceeded: paged
    wait_until(lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 1, what="the page", timeout=45)
    [exceeded] = stack.alerts()
    dedup_key = stack.pd.events[0]["dedup_key"]

    stack.put_budget(125)  # 88 %: warning
    wait_until(lambda: len(stack.pd.events) == 2, what="the incident resolved", timeout=45)
    wait_until(lambda: stack.pending() == 0, what="the outbox drained", timeout=30)
    # Alertmanager routes the end of the exceeded level back (group_wait 1s): give it time to arrive.
    runs = live_stack.metric_value(stack.llmcost.base, "llm_scheduler_runs_total", task="budgets")
    wait_until(
        lambda: live_stack.metric_value(stack.llmcost.base, "llm_scheduler_runs_total", task="budgets") >= runs + 4,
        what="four more evaluations",
        timeout=30,
    )
    wait_until(lambda: stack.pending() == 0, what="the outbox drained", timeout=30)

    [alert] = stack.alerts()
    assert (alert["id"], alert["alertname"], alert["severity"], alert["state"]) == (
        exceeded["id"],
        "LLMBudgetWarning",
        "warning",
        "firing",
    )
    assert stack.threads() == {
        "slack roots": 1,
        "slack replies": 0,
        "mail roots": 1,
        "mails": 1,
        "pagerduty": [("trigger", dedup_key), ("resolve", dedup_key)],
    }
    assert "LLMBudgetWarning" in str(stack.slack.calls("chat.update")[-1].payload)

    stack.put_budget(400)  # 28 %: the alert ends, once, in its threads
    wait_until(lambda: stack.alerts()[0]["state"] == "resolved", what="the resolve", timeout=45)
    wait_until(lambda: stack.pending() == 0 and len(stack.smtp.messages) == 2, what="the resolve mail", timeout=30)
    assert [m.message["In-Reply-To"] for m in stack.smtp.messages][1] == stack.smtp.messages[0].message["Message-ID"]
    assert len(stack.slack.calls("chat.postMessage")) == 1


def test_a_limit_raised_past_every_level_resolves_with_the_figures_of_the_new_limit(stack: Stack) -> None:
    """$110 of $100 (exceeded, paged), then the limit raised to $1,000 (11 %): the alert resolves. Its
    resolve showed the last figures the alert had stored, "at 110% ($110.00 of $100.00)", in the Slack
    edit, the resolve mail and the alert's record: what no longer held, and not why it ended. The resolve
    now carries the figures read when it was decided, those of the new limit, and says why: the limit was
    raised (it said only "Resolved at …", which read like any other end)."""
    stack.put_budget(100)
    live_stack.spend(stack.llmcost.base, INGEST, "team-r", "resolved-1", 110.0)  # exceeded: paged
    wait_until(lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 1, what="the page", timeout=45)
    assert "$110.00 of $100.00" in stack.pd.events[0]["payload"]["summary"]

    stack.put_budget(1000)  # 11 %: under every level
    wait_until(lambda: stack.alerts()[0]["state"] == "resolved", what="the resolve", timeout=45)
    wait_until(lambda: stack.pending() == 0 and len(stack.smtp.messages) == 2, what="the resolve mail", timeout=30)
    wait_until(lambda: len(stack.pd.events) == 2, what="the PagerDuty resolve", timeout=30)

    now = "11% ($110.00 of $1,000.00)"
    [alert] = stack.alerts()
    assert now in alert["annotations"]["summary"] and alert["annotations"]["limit"] == "$1,000.00 (daily)"
    resolve_mail = stack.smtp.messages[1]
    assert now in resolve_mail.part("text/plain") and "$100.00" not in resolve_mail.part("text/plain")
    # A PagerDuty resolve carries no summary (Events API v2): the incident keeps the one it was opened with.
    assert stack.pd.events[1]["event_action"] == "resolve" and "payload" not in stack.pd.events[1]
    edit = str(stack.slack.calls("chat.update")[-1].payload)
    assert now in edit and "of $100.00" not in edit
    # The API names nobody: who changed it is the API, as a cap removed through it is.
    why = "by api via budgets: the limit was raised to $1,000.00 through the API"
    assert why in edit and why in resolve_mail.part("text/plain"), edit
