"""What the person on call reads at 3 am, from a real `llmcost serve` with Slack, email and PagerDuty.

Defects this pins, each seen in the messages a real process sent:

- a budget alert listed its figures as the scheduler computed them: `limit 100.000000`, `spent
  85.123456`, `ratio 0.8512`, with no unit and no limit beside them, and its description ended
  `period ends 2026-12-08T00:00:00Z`; now every figure has its unit (`$85.12`, `85%`, `$100.00
  (daily)`) and times name UTC (`2026-12-08 00:00 UTC`);
- an escalation's Slack thread reply said only `Escalated to LLMBudgetExceeded`: the push notification
  named neither the budget nor how far over it is; it now carries the summary;
- an acknowledgement said who but not when (an edited Slack message shows no time), and a resolve by a
  person (a budget reset) read like the period ending: `Resolved at 06:36 UTC`, on every channel; both
  now say who, when and why.

Slack and PagerDuty are local recording servers, mail a real aiosmtpd server; the Slack click and the
PagerDuty webhook are signed as Slack and PagerDuty sign them.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerting.signatures import sign_pagerduty, sign_slack
from tests.support.helpers import total
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN = "admin-token-0123456789abcdef"
INGEST = "ingest-token-0123456789abcdef"
SLACK_SECRET = "slack-signing-secret-0123456789"
PD_SECRET = "pagerduty-webhook-secret-0123456789"
RAW_FIGURE = re.compile(r"\b\d+\.\d{4,}\b")  # 100.000000, 0.8512: a figure nobody formatted for a person
RAW_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")  # an ISO timestamp where a person reads the time


class Stack:
    """`llmcost serve` with three $100 daily project budgets, every channel on a recording server."""

    def __init__(self, proc: LlmcostProcess, slack: SlackAPIServer, pd: PagerDutyEventsServer, smtp: SMTPServer):
        self.proc, self.slack, self.pd, self.smtp = proc, slack, pd, smtp

    def spend(self, usd: float, project: str) -> None:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": usd, "project": project}
        response = httpx.post(
            f"{self.proc.base}/v1/usage",
            json={**event, "request_id": uuid.uuid4().hex},
            headers={"Authorization": f"Bearer {INGEST}"},
            timeout=10,
        )
        assert response.status_code == 200 and response.json()["accepted"] == 1, response.text

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.proc.base}{path}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10, **kwargs
        )

    def alert(self, budget: str) -> dict[str, Any]:
        return next(a for a in self.admin("GET", "/v1/alerts").json() if a["labels"].get("budget") == budget)

    def click_acknowledge(self, alert_id: int, user: str) -> None:
        """Press the Acknowledge button of the alert's Slack message, as Slack posts the click."""
        payload = {
            "type": "block_actions",
            "user": {"id": "U1", "username": user, "name": user},
            "channel": {"id": "C123"},
            "actions": [{"action_id": "llmcost_ack", "value": str(alert_id), "type": "button"}],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        ts = str(int(time.time()))
        response = httpx.post(
            f"{self.proc.base}/v1/slack/interactions",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign_slack(SLACK_SECRET, ts, body),
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def acknowledge_in_pagerduty(self, dedup_key: str, by: str) -> None:
        """A responder acknowledges the incident in PagerDuty, which sends its signed webhook."""
        body = json.dumps(self.pd.acknowledge_in_pagerduty(dedup_key, by=by)).encode()
        response = httpx.post(
            f"{self.proc.base}/v1/pagerduty/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(PD_SECRET, body)},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def drained(self) -> None:
        def empty() -> bool:
            text = httpx.get(f"{self.proc.base}/metrics", timeout=10).text
            pending = re.search(r"^llm_notification_outbox_pending(?:\{[^}]*\})? (\S+)$", text, re.M)
            return pending is not None and float(pending.group(1)) == 0

        wait_until(empty, what="the outbox to drain", timeout=30)

    def slack_texts(self, fingerprint: str) -> list[str]:
        """Everything Slack shows about one alert: its message as posted and edited, and its replies, in order."""
        [root] = [m["ts"] for m in self.slack.posted if m["metadata"]["event_payload"]["fingerprint"] == fingerprint]
        shown = []
        for request in self.slack.requests:
            if request.path.rsplit("/", 1)[-1] not in ("chat.postMessage", "chat.update"):
                continue
            payload = request.payload
            is_root = payload.get("metadata", {}).get("event_payload", {}).get("fingerprint") == fingerprint
            if is_root or root in (payload.get("ts"), payload.get("thread_ts")):
                blocks = " ".join(json.dumps(b, ensure_ascii=False) for b in payload.get("blocks", []))
                shown.append(f"{payload.get('text', '')} {blocks}")
        return shown

    def mails(self, fingerprint: str) -> list[str]:
        return [
            m.part("text/plain").replace("\r\n", "\n")
            for m in self.smtp.messages
            if m.message["X-LLMCost-Fingerprint"] == fingerprint
        ]

    def pagerduty(self, fingerprint: str) -> list[dict[str, Any]]:
        return [e for e in self.pd.events if e["dedup_key"] == f"llmcost-{fingerprint}"]


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pd, SMTPServer() as smtp:
        budget = {"scope": "project", "period": "daily", "limit": 100}
        config = {
            "auth": {"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]},
            "external_url": "https://llmcost.example.com/",
            "grafana_url": "https://grafana.example.com/d/llmcost-overview",
            "budgets": {
                "evaluate_seconds": 1,
                "items": [{**budget, "name": name, "key": name} for name in ("search", "chat", "ui")],
            },
            "notifications": {
                "slack": {
                    "token": "xoxb-test-token",
                    "channel": "#llm-cost",
                    "api_url": slack.api_url,
                    "signing_secret": SLACK_SECRET,
                },
                "email": smtp.email_settings(),
                "pagerduty": {
                    "routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32",
                    "events_url": pd.events_url,
                    "webhook_secret": PD_SECRET,
                },
            },
        }
        path = tmp_path / "llmcost.yml"
        path.write_text(yaml.safe_dump(config))
        proc = LlmcostProcess(sqlite_url, config=path).start(tmp_path)
        try:
            yield Stack(proc, slack, pd, smtp)
        finally:
            proc.stop()


def test_a_budget_escalation_reads_with_units_limits_and_utc_times_on_every_channel(stack: Stack) -> None:
    stack.spend(85.123456, "search")  # warning: Slack and mail
    wait_until(lambda: len(stack.smtp.messages) == 1, what="the warning mail", timeout=30)
    stack.spend(12, "search")  # 97 %: critical, pages
    wait_until(lambda: len(stack.pd.events) == 1, what="the page", timeout=30)
    stack.spend(13, "search")  # 110 %: exceeded
    wait_until(lambda: len(stack.pd.events) == 2 and len(stack.smtp.messages) == 3, what="the update", timeout=30)
    stack.drained()
    fingerprint = stack.alert("search")["fingerprint"]

    slack, mails, events = stack.slack_texts(fingerprint), stack.mails(fingerprint), stack.pagerduty(fingerprint)
    pd_text = [json.dumps({k: e["payload"][k] for k in ("summary", "custom_details")}) for e in events]
    for text in [*slack, *mails, *pd_text]:
        assert not RAW_FIGURE.search(text), text
        assert not RAW_TIME.search(text.replace(str(events[0]["payload"]["timestamp"]), "")), text

    # The warning mail: how much, of what limit, since when, until when, and the projection.
    first = mails[0]
    assert "spent: $85.12\n" in first and "limit: $100.00 (daily)\n" in first and "ratio: 85%\n" in first
    day = stack.alert("search")["starts_at"][:10]  # the period the spend fell in, even across a midnight
    assert f"Daily budget for project 'search': $85.12 spent of $100.00 since {day} 00:00 UTC;" in first
    tomorrow = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    # A fresh store has no history to project from: it says so, rather than a guess or a bare number.
    assert f"not projected yet (too little history); the period ends {tomorrow} 00:00 UTC." in first
    assert "projected: not yet (too little history)\n" in first

    # The exceeded page's custom details read the same.
    last = events[-1]["payload"]["custom_details"]["annotations"]
    assert (last["spent"], last["limit"], last["ratio"]) == ("$110.12", "$100.00 (daily)", "110%")

    # Each rise is a thread reply that says which budget and how far, not only the alert's new name.
    replies = [r.payload["text"] for r in stack.slack.requests if r.payload.get("thread_ts")]
    assert len(replies) == 2, replies
    assert (
        "Escalated from warning to critical" in replies[0]
        and "Budget search is at 97% ($97.12 of $100.00)" in replies[0]
    )
    assert (
        "Escalated to LLMBudgetExceeded" in replies[1] and "Budget search is at 110% ($110.12 of $100.00)" in replies[1]
    )


def test_acknowledgements_say_who_and_when_and_a_reset_says_who_resolved_and_why(stack: Stack) -> None:
    for project in ("search", "chat", "ui"):
        stack.spend(97, project)  # critical: every channel
    wait_until(lambda: len(stack.pd.events) == 3 and len(stack.smtp.messages) == 3, what="three pages", timeout=30)
    stack.drained()
    search, chat, ui = (stack.alert(name) for name in ("search", "chat", "ui"))

    stack.click_acknowledge(search["id"], "alice")  # from the Slack button
    stack.acknowledge_in_pagerduty(stack.pagerduty(chat["fingerprint"])[0]["dedup_key"], "Bob Oncall")
    console = stack.admin("POST", f"/v1/alerts/{ui['id']}/ack", json={"by": "carol", "comment": "from the console"})
    assert console.status_code == 200, console.text  # what the console's Acknowledge button posts
    wait_until(lambda: len(stack.smtp.messages) == 6, what="the acknowledgement mails", timeout=30)
    stack.drained()

    for alert, who in ((search, "alice via slack"), (chat, "Bob Oncall via pagerduty"), (ui, "carol via api")):
        acked = stack.alert(alert["labels"]["budget"])
        assert acked["state"] == "acknowledged"
        at = acked["acknowledged_at"][:16].replace("T", " ") + " UTC"
        said = f"Acknowledged by {who} at {at}"
        assert said in stack.slack_texts(alert["fingerprint"])[-1], stack.slack_texts(alert["fingerprint"])[-1]
        assert said in stack.mails(alert["fingerprint"])[-1]

    reset = stack.admin("POST", "/v1/budgets/search/reset", json={"by": "dave", "reason": "refund from OpenAI"})
    assert reset.status_code == 200, reset.text
    wait_until(lambda: len(stack.pagerduty(search["fingerprint"])) == 3, what="the resolve in PagerDuty", timeout=30)
    stack.drained()
    resolved = stack.alert("search")
    at = resolved["resolved_at"][:16].replace("T", " ") + " UTC"
    said = f"Resolved at {at} by dave via budgets: budget reset by dave: refund from OpenAI"
    assert said in stack.slack_texts(search["fingerprint"])[-1]
    assert said in stack.mails(search["fingerprint"])[-1]
    assert [e["event_action"] for e in stack.pagerduty(search["fingerprint"])] == ["trigger", "acknowledge", "resolve"]


def test_resolving_the_incident_in_pagerduty_while_the_budget_is_still_over_does_not_page_again(stack: Stack) -> None:
    # It resolved the alert everywhere ("[RESOLVED]" in Slack and mail while the budget was still at 97%);
    # the next evaluation raised it anew: a second page within seconds, a second Slack message and mail thread.
    stack.spend(97, "search")
    wait_until(lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 1, what="the page", timeout=30)
    stack.drained()
    alert = stack.alert("search")
    key = stack.pd.events[0]["dedup_key"]
    with stack.pd._state:  # the responder resolves the incident in PagerDuty, which sends its webhook
        incident = stack.pd.open_incident(key)
        assert incident is not None
        webhook = stack.pd._change(incident, "resolved", "Bob Oncall", "resolved by Bob Oncall")
    body = json.dumps(webhook).encode()
    response = httpx.post(
        f"{stack.proc.base}/v1/pagerduty/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(PD_SECRET, body)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: len(stack.smtp.messages) == 2, what="the mail saying so", timeout=30)

    def budget_runs() -> float:
        text = httpx.get(f"{stack.proc.base}/metrics", timeout=10).text
        return total(text, "llm_scheduler_runs_total", task="budgets", outcome="success")

    seen = budget_runs()
    wait_until(lambda: budget_runs() >= seen + 2, what="two budget evaluations", timeout=30)
    stack.drained()

    [still] = stack.admin("GET", "/v1/alerts").json()  # one alert, the same, open and quiet
    assert (still["id"], still["state"], still["acknowledged_by"]) == (alert["id"], "acknowledged", "Bob Oncall")
    assert len(stack.pd.pages) == 1, [i.log for i in stack.pd.incidents]
    assert len(stack.slack.posted) == 1 and len(stack.smtp.messages) == 2
    said = stack.slack_texts(alert["fingerprint"])[-1]
    assert "Acknowledged by Bob Oncall via pagerduty" in said and "resolved the incident in PagerDuty" in said
    assert "RESOLVED" not in said
    assert stack.smtp.messages[1].message["In-Reply-To"] == stack.smtp.messages[0].message["Message-ID"]


def dashboard_variables(uid: str) -> set[str]:
    """The template variables of the shipped dashboard with this uid (its file fails the test if none)."""
    for path in Path(__file__).parents[2].joinpath("grafana", "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        if board["uid"] == uid:
            return {v["name"] for v in board["templating"]["list"]}
    raise AssertionError(f"no dashboard with uid {uid}")


def test_every_link_of_a_page_opens_what_it_names(stack: Stack) -> None:
    # The messages had no Grafana link at all: the on-call looked for the budget's graph by hand.
    stack.spend(97, "search")
    wait_until(lambda: len(stack.pd.events) == 1 and len(stack.smtp.messages) == 1, what="the page", timeout=30)
    stack.drained()
    alert = stack.alert("search")
    [message] = stack.slack.posted
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    slack = {e["text"]["text"]: e["url"] for e in actions["elements"] if "url" in e}
    pagerduty = {link["text"]: link["href"] for link in stack.pd.events[0]["links"]}
    mail = dict(re.findall(r"^(Runbook|Source|Dashboard): (\S+)$", stack.mails(alert["fingerprint"])[0], re.M))
    assert slack == pagerduty == mail and set(slack) == {"Runbook", "Source", "Dashboard"}, (slack, pagerduty, mail)

    for name in ("Runbook", "Source"):  # served by llmcost itself: followed, as a browser would (no token)
        url = urllib.parse.urlsplit(slack[name])
        page = httpx.get(f"{stack.proc.base}{url.path}?{url.query}", timeout=10)
        assert page.status_code == 200 and f'id="{url.fragment}"' in page.text, (name, slack[name])
    assert slack["Runbook"].endswith("#llmbudgetcritical") and slack["Source"].endswith("#budget-search")

    dashboard = urllib.parse.urlsplit(slack["Dashboard"])
    assert (dashboard.scheme, dashboard.netloc) == ("https", "grafana.example.com")
    uid = dashboard.path.removeprefix("/d/")
    query = dict(urllib.parse.parse_qsl(dashboard.query))
    assert uid == "llmcost-budgets" and query["var-budget"] == "search"
    assert {k.removeprefix("var-") for k in query if k.startswith("var-")} <= dashboard_variables(uid)
    started = datetime.fromisoformat(alert["starts_at"].replace("Z", "+00:00")).timestamp()
    assert int(query["from"]) <= started * 1000 - 30 * 60 * 1000 and query["to"] == "now"


def test_a_mail_says_to_acknowledge_only_where_the_alert_went_and_an_ack_reaches_llmcost(stack: Stack) -> None:
    # Every mail said "Acknowledge in Slack or PagerDuty": a warning's too, which opened no incident there.
    stack.spend(85, "search")  # warning: Slack and mail
    wait_until(lambda: len(stack.smtp.messages) == 1, what="the warning mail", timeout=30)
    stack.spend(12, "search")  # 97 %: critical, pages
    wait_until(lambda: len(stack.smtp.messages) == 2 and len(stack.pd.events) == 1, what="the page", timeout=30)
    alert = stack.alert("search")
    warning, critical = stack.mails(alert["fingerprint"])
    assert f"Acknowledge in Slack, or run: llmcost alerts ack {alert['id']}\n" in warning, warning
    assert f"Acknowledge in Slack or PagerDuty, or run: llmcost alerts ack {alert['id']}\n" in critical, critical
    html = stack.smtp.messages[0].part("text/html")
    assert "Acknowledge in Slack, or run <code>" in html and "PagerDuty" not in html, html


def test_the_console_says_not_projected_yet_where_the_alerts_do(stack: Stack) -> None:
    # Without history the status' `projected` is the spend so far: the console showed it as the Projected
    # amount with a ▲ "projected at period end: 85% of the limit", beside a page saying "not yet".
    stack.spend(85, "search")
    wait_until(lambda: len(stack.smtp.messages) == 1, what="the warning mail", timeout=30)
    assert "projected: not yet (too little history)\n" in stack.mails(stack.alert("search")["fingerprint"])[0]
    page = httpx.get(f"{stack.proc.base}/", timeout=10).text
    row = re.search(r'<tr class="budget" data-budget="search".*?</tr>', page, re.S)
    assert row is not None, page
    assert '<td class="num">not yet (too little history)</td>' in row.group(0), row.group(0)
    assert "projected at period end" not in row.group(0) and "85% spent, not projected yet" in row.group(0)
