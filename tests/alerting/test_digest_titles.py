"""A grouped message listing one alert says "1 instance", not "1 instances".

A grouped PagerDuty incident's part can hold one alert (the one instance of a group's escalation that
goes to the incident still paging, the last acknowledgement that acknowledges the incident), and its
title then read "1 instances of budget per-project escalated"; a rate-limit summary of one row read
"1 notifications summarised". "series" is its own singular and stays as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alerting.model import Alert, Notification, NotificationKind
from alerting.notify.digest import Digest
from alerting.notify.pagerduty import build_digest_event
from alerting.notify.slack import build_digest_message


def notification(i: int, alertname: str = "LLMBudgetExceeded") -> Notification:
    labels = {"budget": "per-project", "scope": "project", "key": f"p{i}"}
    alert = Alert(
        id=i,
        fingerprint=f"{i:016x}",
        alertname=alertname,
        labels=labels,
        annotations={"summary": f"Budget per-project is at 500% for p{i}"},
        severity="critical",
        starts_at=datetime(2026, 12, 4, tzinfo=UTC),
    )
    return Notification(kind=NotificationKind.FIRING, alert=alert, channel="pagerduty")


def digest(n: int, group: str = "LLMBudget|per-project") -> Digest:
    return Digest(
        key="llmcost-group-0123456789abcdef", notifications=tuple(notification(i) for i in range(n)), group=group
    )


def test_one_instance_is_singular_in_the_title_slack_and_pagerduty() -> None:
    one = digest(1)
    assert one.title() == "1 instance of budget per-project firing (LLMBudget, critical)"
    assert build_digest_message(one)["text"].startswith("1 instance of budget per-project firing")
    summary = build_digest_event(one, routing_key="R" * 32)["payload"]["summary"]
    assert summary.startswith("1 instance of budget per-project firing"), summary
    assert digest(2).title().startswith("2 instances of budget per-project firing")


def test_a_one_row_summary_is_singular() -> None:
    assert digest(1, group="").title() == "1 notification summarised: notification rate limit reached"
    assert digest(3, group="").title() == "3 notifications summarised: notification rate limit reached"
