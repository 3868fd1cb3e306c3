"""What people receive: golden files for every channel, escaping of hostile text and Slack's limits.

Golden files in tests/alerting/golden/ pin the Slack message, the mail parts and the PagerDuty event for a
representative budget alert and a spike alert, as the stand-in servers received them. After an intended
change, regenerate them with `UPDATE_GOLDEN=1 pytest tests/alerting/test_templates.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from alerting.model import Actor, Alert, Notification, NotificationKind, fingerprint
from alerting.notify import EmailNotifier, PagerDutyNotifier, SlackNotifier
from alerting.notify.slack import build_message
from alerting.notify.templating import TEMPLATES, render
from alerting.notify.text_limits import (
    SLACK_BLOCKS_MAX,
    SLACK_FIELD_TEXT_MAX,
    SLACK_FIELDS_PER_SECTION,
    SLACK_HEADER_TEXT_MAX,
    SLACK_MESSAGE_TEXT_MAX,
    SLACK_SECTION_TEXT_MAX,
    escape_mrkdwn,
    sanitize_header,
    split_overflow,
    truncate,
    truncate_mrkdwn,
    web_url,
)
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer, SMTPServer

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"

BUDGET_LABELS = {"budget": "team-search-monthly", "scope": "project", "key": "search"}
BUDGET = Alert(
    id=42,
    fingerprint=fingerprint("LLMBudgetCritical", BUDGET_LABELS),
    alertname="LLMBudgetCritical",
    labels=BUDGET_LABELS,
    annotations={
        "summary": "Budget team-search-monthly has used 96% of its $500.00 monthly limit",
        "description": "Spent $480.12 of $500.00 since 2024-05-01 00:00 UTC; at this pace the month ends at $1,034.50.",
        "runbook_url": "https://llmcost.example.com/runbooks#LLMBudgetCritical",
    },
    severity="critical",
    source="scheduler",
    starts_at=datetime(2024, 5, 14, 9, 30, tzinfo=UTC),
)

SPIKE_LABELS = {
    "alertname": "LLMCostSpike",
    "project": "search",
    "provider": "openai",
    "model": "gpt-4o",
    "severity": "warning",
}
SPIKE = Alert(
    id=7,
    fingerprint=fingerprint("LLMCostSpike", SPIKE_LABELS),
    alertname="LLMCostSpike",
    labels=SPIKE_LABELS,
    annotations={
        "summary": "Spend on openai/gpt-4o in search is 6.2x its baseline",
        "description": "$42.10 in the last 30 minutes against $6.79 usual for this hour of the week.",
        "runbook_url": "https://llmcost.example.com/runbooks#LLMCostSpike",
        "dashboard": "https://grafana.example.com/d/llmcost-overview",
    },
    severity="warning",
    source="alertmanager",
    starts_at=datetime(2024, 5, 14, 14, 5, tzinfo=UTC),
    generator_url="http://prometheus.example.com:9090/graph?g0.expr=project%3Allm_cost_usd%3Aincrease30m",
    group_key='{}:{alertname="LLMCostSpike"}',
)

ACKED = {"actor": Actor(by="alice", via="slack", comment="looking into it")}
CASES: dict[str, tuple[Alert, NotificationKind, dict[str, Any]]] = {
    "budget_firing": (BUDGET, NotificationKind.FIRING, {}),
    "budget_acknowledged": (BUDGET, NotificationKind.ACKNOWLEDGED, ACKED),
    "spike_firing": (SPIKE, NotificationKind.FIRING, {}),
    "spike_resolved": (SPIKE, NotificationKind.RESOLVED, {}),
}


def notification(name: str, channel: str) -> Notification:
    alert, kind, extra = CASES[name]
    if kind is NotificationKind.RESOLVED:
        alert = replace(alert, state="resolved", resolved_at=datetime(2024, 5, 14, 15, 0, tzinfo=UTC))
    if kind is NotificationKind.ACKNOWLEDGED:  # as the gateway hands it over: who, and when (shown: no edit has a time)
        alert = replace(
            alert,
            state="acknowledged",
            acknowledged_by="alice",
            acknowledged_at=datetime(2024, 5, 14, 9, 41, tzinfo=UTC),
        )
    return Notification(kind=kind, alert=alert, channel=channel, **extra)


def check_golden(filename: str, actual: str) -> None:
    actual = actual.replace("\r\n", "\n")  # mail arrives with CRLF line ends
    path = GOLDEN / filename
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_text(encoding="utf-8"), f"{filename} changed; UPDATE_GOLDEN=1 after review"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


# -- golden files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_slack_messages_match_their_golden_files(name):
    with SlackAPIServer() as slack:
        assert (
            SlackNotifier(token="xoxb-golden", channel="#llm-cost", api_url=slack.api_url)
            .send(notification(name, "slack"))
            .ok
        )
        sent = slack.requests[0].json
    check_golden(f"slack_{name}.json", as_json({"text": sent["text"], "blocks": sent["blocks"]}))


@pytest.mark.parametrize("name", list(CASES))
def test_mails_match_their_golden_files(name):
    with SMTPServer() as smtp:
        notifier = EmailNotifier(
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            starttls=False,
            from_addr="llmcost@example.com",
            to=["oncall@example.com"],
            now=lambda: datetime(2024, 5, 14, 15, 0, tzinfo=UTC),
        )
        try:
            assert notifier.send(notification(name, "email")).ok
        finally:
            notifier.close()
        [mail] = smtp.messages
    check_golden(f"email_{name}.txt", f"Subject: {mail.message['Subject']}\n\n{mail.part('text/plain')}")
    check_golden(f"email_{name}.html", mail.part("text/html"))


@pytest.mark.parametrize("name", list(CASES))
def test_pagerduty_events_match_their_golden_files(name):
    with PagerDutyEventsServer() as pagerduty:
        notifier = PagerDutyNotifier(routing_key=ROUTING_KEY, events_url=pagerduty.events_url)
        assert notifier.send(notification(name, "pagerduty")).ok
        [event] = pagerduty.events
    check_golden(f"pagerduty_{name}.json", as_json(event))


# -- templates -------------------------------------------------------------------------------------------


def test_every_template_file_is_registered_and_every_registered_template_exists():
    files = {p.name for p in resources.files("alerting").joinpath("templates").iterdir() if p.name.endswith(".j2")}
    registered = {f"{name}.j2" for name in TEMPLATES}
    partials = {name for name in files if name.startswith("_")}
    assert files - partials == registered


def test_an_unknown_template_name_is_an_error():
    with pytest.raises(ValueError, match="unknown template"):
        render("slack.nope", notification("budget_firing", "slack"))


@pytest.mark.parametrize("kind", list(NotificationKind))
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_renders_for_every_kind_of_a_bare_alert(name, kind):
    # No id, annotations, actor or URLs: StrictUndefined turns any unguarded use into an error here.
    bare = Alert(fingerprint="0" * 16, alertname="X", labels={}, severity="info", starts_at=BUDGET.starts_at)
    assert render(name, Notification(kind=kind, alert=bare, channel="test")).strip()


# -- escaping and limits ---------------------------------------------------------------------------------


def slack_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def hostile(**changes: Any) -> Notification:
    return Notification(kind=NotificationKind.FIRING, alert=replace(BUDGET, **changes), channel="slack")


def test_a_channel_ping_in_a_label_is_shown_not_sent():
    message = build_message(hostile(labels={"project": "<!channel> <!here> <@U123> <http://evil.example|click>"}))

    text = slack_text(message)
    for control in ("<!channel>", "<!here>", "<@U123>", "<http://evil.example|click>"):
        assert control not in text
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;http://evil.example|click&gt;" in text


def test_pings_in_annotations_and_actor_names_are_escaped_exactly_once():
    alert = replace(BUDGET, annotations={"summary": "a <!channel> & b", "note": "<!here>"})
    message = build_message(
        Notification(kind=NotificationKind.ACKNOWLEDGED, alert=alert, channel="slack", actor=Actor(by="<@U1>", via="x"))
    )

    text = slack_text(message)
    assert "<!channel>" not in text and "<!here>" not in text and "<@U1>" not in text
    assert "a &lt;!channel&gt; &amp; b" in text
    assert "Acknowledged by &lt;@U1&gt; via x" in text
    assert "&amp;lt;" not in text, "no double escaping"


def test_mrkdwn_templates_keep_their_own_markup():
    status = render("slack.status", notification("budget_firing", "slack"))
    assert "<!date^1715679000^" in status, "the date token is ours, not escaped"


def test_a_10_kb_annotation_is_cut_to_slacks_limits():
    big = "cost " * 2048
    message = build_message(hostile(annotations={"summary": "s", "description": big, "details": big}))

    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    assert sections and all(len(s) <= SLACK_SECTION_TEXT_MAX for s in sections)
    assert any(s.endswith("…") for s in sections)
    assert len(message["text"]) <= SLACK_MESSAGE_TEXT_MAX


def test_60_labels_fold_into_a_readable_more_note():
    labels = {f"label_{i:02d}": f"value-{i}" for i in range(60)}
    message = build_message(hostile(labels=labels))

    field_sections = [b for b in message["blocks"] if "fields" in b]
    assert all(len(b["fields"]) <= SLACK_FIELDS_PER_SECTION for b in field_sections)
    fields = [f["text"] for b in field_sections for f in b["fields"]]
    assert len(fields) == 20
    assert fields[-1] == "_+41 more labels_"
    assert "*label_00*\nvalue-0" in fields
    assert len(message["blocks"]) <= SLACK_BLOCKS_MAX


def test_many_annotations_fold_into_a_more_note():
    annotations = {f"note_{i:02d}": "x" for i in range(60)}
    message = build_message(hostile(annotations=annotations))

    assert "+56 more annotations" in slack_text(message)
    assert len(message["blocks"]) <= SLACK_BLOCKS_MAX


def test_huge_label_values_stay_within_field_limits():
    message = build_message(hostile(labels={"project": "&" * 5000}))

    fields = [f["text"] for b in message["blocks"] if "fields" in b for f in b["fields"]]
    assert all(len(f) <= SLACK_FIELD_TEXT_MAX for f in fields)
    assert fields[0].endswith("&amp;…"), "never half an entity"


def test_a_long_alertname_keeps_the_header_within_150_characters():
    message = build_message(hostile(alertname="LLM" * 100))

    header = message["blocks"][0]["text"]["text"]
    assert len(header) <= SLACK_HEADER_TEXT_MAX
    assert header.endswith("…")


def test_only_web_links_become_buttons():
    message = build_message(hostile(annotations={"runbook_url": "javascript:alert(1)"}, generator_url="file:///etc"))

    urls = [e.get("url") for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert urls == [None], "only the Acknowledge button remains"


def test_escape_mrkdwn_escapes_only_slacks_control_characters():
    assert escape_mrkdwn("<a> & *b* _c_ ~d~") == "&lt;a&gt; &amp; *b* _c_ ~d~"


@pytest.mark.parametrize("limit", range(1, 12))
def test_truncate_mrkdwn_never_leaves_half_an_entity(limit):
    cut = truncate_mrkdwn(escape_mrkdwn("a<b>&c<d>"), limit)
    assert len(cut) <= limit
    assert not any(cut.rstrip("…").endswith(p) for p in ("&", "&l", "&lt", "&g", "&gt", "&a", "&am", "&amp"))


def test_truncate_marks_what_it_cut():
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abcde…"


def test_split_overflow_keeps_a_slot_for_the_note():
    assert split_overflow([1, 2, 3], 3) == ([1, 2, 3], 0)
    assert split_overflow([1, 2, 3, 4], 3) == ([1, 2], 2)


def test_sanitize_header_flattens_line_breaks_and_controls():
    assert sanitize_header("a\r\nBcc: x@y\x00\tz\u2028w") == "a Bcc: x@y z w"
    assert len(sanitize_header("x" * 1000, limit=100)) == 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.com/a?b=c", "https://example.com/a?b=c"),
        (" http://example.com ", "http://example.com"),
        ("javascript:alert(1)", ""),
        ("file:///etc/passwd", ""),
        ("https://example.com/<script>", ""),
        ("https://a.example|text", ""),
        ("", ""),
    ],
)
def test_web_url_accepts_only_plain_http_links(value, expected):
    assert web_url(value) == expected
