"""SlackNotifier against a recording stand-in of the Slack Web API on loopback."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.gateway.config import parse_settings
from alerting.model import Actor, Alert, DeliveryResult, Notification, NotificationKind, fingerprint
from alerting.notify import Notifier, SlackNotifier, build_notifiers, redact
from tests.support.recording_servers import SlackAPIServer, unused_port

TOKEN = "xoxb-1234567890-abcdefghijklmnop"


def make_alert(**changes: Any) -> Alert:
    labels = changes.pop("labels", {"budget": "team-a-monthly", "scope": "project", "key": "team-a"})
    fields: dict[str, Any] = {
        "id": 42,
        "fingerprint": fingerprint("LLMBudgetCritical", labels),
        "alertname": "LLMBudgetCritical",
        "labels": labels,
        "annotations": {
            "summary": "Budget team-a-monthly has used 96% of its $500.00 limit",
            "runbook_url": "https://runbooks.example.com/llm-budget",
        },
        "severity": "critical",
        "starts_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    return Alert(**{**fields, **changes})


def notify(kind: str, reference: dict[str, Any] | None = None, **changes: Any) -> Notification:
    actor = changes.pop("actor", None)
    return Notification(
        kind=NotificationKind(kind), alert=make_alert(**changes), channel="slack", reference=reference, actor=actor
    )


@pytest.fixture
def slack():
    with SlackAPIServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def notifier(slack):
    return SlackNotifier(token=TOKEN, channel="#llm-cost", api_url=slack.api_url, timeout=5)


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_the_notifier_fulfils_the_protocol(notifier):
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "slack"


def test_a_firing_alert_is_posted_with_an_acknowledge_button(slack, notifier):
    result = notifier.send(notify("firing"))

    assert result == DeliveryResult(ok=True, reference={"channel": "C123", "ts": "1700000000.000100"})
    [request] = slack.requests
    assert request.method == "POST"
    assert request.path == "/api/chat.postMessage"
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    body = request.json
    assert body["channel"] == "#llm-cost"
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert "LLMBudgetCritical" in body["text"]
    [ack] = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"] if "value" in e]
    assert ack["action_id"] == "llmcost_ack"
    assert ack["value"] == "42"
    runbook = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"] if "url" in e]
    assert runbook[0]["url"] == "https://runbooks.example.com/llm-budget"


def test_acknowledging_updates_the_same_message(slack, notifier):
    first = notifier.send(notify("firing"))
    result = notifier.send(notify("acknowledged", first.reference, actor=Actor(by="alice", via="slack")))

    assert result.ok and result.reference == first.reference
    [update] = slack.calls("chat.update")
    assert update.json["channel"] == "C123"
    assert update.json["ts"] == "1700000000.000100"
    blocks = update.json["blocks"]
    assert "Acknowledged by alice via slack" in all_text(blocks)
    assert "llmcost_ack" not in action_ids(blocks)
    assert "llmcost_unack" in action_ids(blocks)
    assert len(slack.calls("chat.postMessage")) == 1, "the channel keeps one message per alert"


def test_resolving_updates_the_same_message_and_drops_the_buttons(slack, notifier):
    first = notifier.send(notify("firing"))
    result = notifier.send(
        notify("resolved", first.reference, state="resolved", resolved_at=datetime(2024, 5, 1, 13, 30, tzinfo=UTC))
    )

    assert result.ok
    [update] = slack.calls("chat.update")
    assert (update.json["channel"], update.json["ts"]) == ("C123", "1700000000.000100")
    blocks = update.json["blocks"]
    assert "[RESOLVED]" in blocks[0]["text"]["text"]
    assert "Resolved at 2024-05-01 13:30 UTC" in all_text(blocks)
    assert not {"llmcost_ack", "llmcost_unack"} & set(action_ids(blocks))


def test_a_reminder_updates_the_message_and_replies_in_its_thread(slack, notifier):
    first = notifier.send(notify("firing"))
    result = notifier.send(notify("repeat", first.reference))

    assert result.ok and result.reference == first.reference
    assert len(slack.calls("chat.update")) == 1
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 2
    reply = posts[1].json
    assert reply["thread_ts"] == "1700000000.000100"
    assert reply["channel"] == "C123"
    assert "Still firing" in reply["text"]
    assert "blocks" not in reply


def test_an_acknowledgement_without_a_living_message_posts_one(slack, notifier):
    result = notifier.send(notify("acknowledged", None, actor=Actor(by="bob", via="api")))

    assert result.ok and result.reference == {"channel": "C123", "ts": "1700000000.000100"}
    [post] = slack.requests
    assert post.path.endswith("chat.postMessage")
    assert "Acknowledged by bob via api" in all_text(post.json["blocks"])


def test_a_deleted_message_is_replaced_by_a_new_one(slack, notifier):
    slack.enqueue(200, body={"ok": False, "error": "message_not_found"})
    result = notifier.send(notify("repeat", {"channel": "C123", "ts": "1600000000.000100"}))

    assert result.ok
    assert result.reference == {"channel": "C123", "ts": "1700000000.000100"}
    assert [r.path.rsplit("/", 1)[-1] for r in slack.requests] == ["chat.update", "chat.postMessage"]


def test_rate_limiting_is_retryable_after_the_time_slack_asks_for(slack, notifier):
    slack.enqueue(429, {"Retry-After": "7"}, {"ok": False, "error": "ratelimited"})
    result = notifier.send(notify("firing"))

    assert not result.ok
    assert result.retryable
    assert result.retry_after == 7.0
    assert not result.maybe_delivered, "a 429 is never carried out: the retry posts without looking first"
    assert "ratelimited" in result.error
    assert len(slack.requests) == 1, "slack_sdk must not retry on its own"


def retried(**changes: Any) -> Notification:
    """A first message whose earlier attempt at outbox row 7 may have posted it (its answer was lost)."""
    return replace(notify("firing"), outbox_id=7, maybe_delivered=True, **changes)


def test_a_new_message_names_its_outbox_row_and_a_first_attempt_looks_nothing_up(slack, notifier):
    assert notifier.send(replace(notify("firing"), outbox_id=7)).ok

    assert [r.path.rsplit("/", 1)[-1] for r in slack.requests] == ["chat.postMessage"]
    mark = {"outbox_id": 7, "fingerprint": make_alert().fingerprint}
    assert slack.posted[0]["metadata"] == {"event_type": "llmcost_notification", "event_payload": mark}


def test_a_retry_adopts_the_message_its_lost_attempt_posted(slack, notifier):
    assert notifier.send(replace(notify("firing"), outbox_id=6)).ok
    assert notifier.send(replace(notify("firing"), outbox_id=7)).ok
    other = make_alert(fingerprint="0123456789abcdef")  # another llmcost's row 7 in the same channel
    assert notifier.send(replace(notify("firing"), alert=other, outbox_id=7)).ok
    slack.requests.clear()

    result = notifier.send(retried())
    assert result.ok and result.reference == {"channel": "C123", "ts": "1700000000.000200"}
    assert [r.path.rsplit("/", 1)[-1] for r in slack.requests] == ["conversations.history"]
    assert len(slack.posted) == 3


def test_without_history_scopes_a_retry_posts_again_and_says_why(slack, caplog):
    notifier = SlackNotifier(token=TOKEN, channel="C123", api_url=slack.api_url, timeout=5)  # an id: no listing
    slack.enqueue(200, body={"ok": False, "error": "missing_scope", "needed": "channels:history"})
    result = notifier.send(retried())

    assert result.ok and len(slack.posted) == 1
    assert "missing_scope" in caplog.text and "channels:history" in caplog.text
    assert TOKEN not in caplog.text


def test_without_private_channel_scopes_the_lookup_lists_public_channels(slack, notifier):
    assert notifier.send(replace(notify("firing"), outbox_id=7)).ok
    fresh = SlackNotifier(token=TOKEN, channel="#llm-cost", api_url=slack.api_url, timeout=5)  # a restart
    slack.enqueue(200, body={"ok": False, "error": "missing_scope", "needed": "groups:read"})
    slack.requests.clear()

    assert fresh.send(retried()).reference == {"channel": "C123", "ts": "1700000000.000100"}
    listed = [{**r.payload, **{k: v[-1] for k, v in r.query.items()}} for r in slack.calls("conversations.list")]
    assert [args.get("types") for args in listed] == ["public_channel,private_channel", "public_channel"]
    assert len(slack.posted) == 1


def test_a_rate_limited_lookup_is_retried_later_rather_than_posting_twice(slack, notifier):
    slack.enqueue(429, {"Retry-After": "3"}, {"ok": False, "error": "ratelimited"})
    result = notifier.send(retried())

    assert not result.ok and result.retryable and result.retry_after == 3.0
    assert slack.posted == []


def test_a_server_error_is_retryable(slack, notifier):
    slack.enqueue(500, body="<html>Internal Server Error</html>")
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable and result.retry_after is None
    assert result.error == "slack chat.postMessage: a text/plain answer, not the API's JSON (HTTP 500)"
    assert len(slack.requests) == 1


def test_a_transient_slack_error_code_is_retryable(slack, notifier):
    slack.enqueue(200, body={"ok": False, "error": "service_unavailable"})
    assert notifier.send(notify("firing")).retryable


def test_an_unknown_channel_is_final(slack, notifier):
    slack.enqueue(200, body={"ok": False, "error": "channel_not_found"})
    result = notifier.send(notify("firing"))

    assert not result.ok and not result.retryable
    assert "channel_not_found" in result.error


@pytest.mark.parametrize("signing_secret", [None, "slack-signing-secret-0123456789"])
def test_acknowledge_buttons_are_shown_only_when_their_clicks_can_be_verified(slack, signing_secret):
    section = {"token": TOKEN, "channel": "#llm-cost", "api_url": slack.api_url}
    if signing_secret:
        section["signing_secret"] = signing_secret
    problems: list[str] = []
    settings = parse_settings({"notifications": {"slack": section}}, Path("."), problems)
    assert problems == []
    notifier = build_notifiers(settings.channels)["slack"]

    assert notifier.send(notify("firing")).ok
    assert notifier.send(notify("acknowledged", {"channel": "C123", "ts": "1700000000.000100"})).ok
    post, update = slack.requests
    # Without the signing secret every click is refused (401): a button that never works is worse than none.
    expected = ["llmcost_ack", "llmcost_runbook"] if signing_secret else ["llmcost_runbook"]
    assert action_ids(post.json["blocks"]) == expected
    expected = ["llmcost_unack", "llmcost_runbook"] if signing_secret else ["llmcost_runbook"]
    assert action_ids(update.json["blocks"]) == expected


def test_a_wrong_token_is_final_and_never_shown(slack):
    wrong = "xoxb-9999999999-wrongwrongwrong"
    result = SlackNotifier(token=wrong, channel="#llm-cost", api_url=slack.api_url).send(notify("firing"))

    assert not result.ok and not result.retryable
    assert "invalid_auth" in result.error
    assert wrong not in result.error


def test_a_token_echoed_by_the_server_is_redacted(slack, notifier):
    slack.enqueue(400, body={"ok": False, "error": f"invalid_auth for {TOKEN}"})
    result = notifier.send(notify("firing"))

    assert not result.retryable
    assert TOKEN not in result.error
    assert "[REDACTED]" in result.error


def test_an_unreachable_api_is_retryable():
    notifier = SlackNotifier(token=TOKEN, channel="#c", api_url=f"http://127.0.0.1:{unused_port()}/api/", timeout=2)
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable and not result.maybe_delivered
    assert TOKEN not in result.error


def test_a_slow_api_times_out_and_is_retryable(slack):
    slack.enqueue(200, body={"ok": True, "channel": "C123", "ts": "1.0"}, delay=5)
    notifier = SlackNotifier(token=TOKEN, channel="#llm-cost", api_url=slack.api_url, timeout=1)
    started = time.monotonic()
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert result.maybe_delivered, "Slack may have posted it: the retry looks for it first"
    assert time.monotonic() - started < 4


def test_labels_cannot_ping_the_channel_or_inject_links(slack, notifier):
    labels = {"project": "<!channel> <@U123> <http://evil.example|click>", "user": "a&b"}
    notifier.send(notify("firing", labels=labels))

    body = slack.requests[0].body.decode()
    assert "<!channel>" not in body
    assert "<@U123>" not in body
    assert "<http://evil.example|click>" not in body
    assert "&lt;!channel&gt;" in body
    assert "a&amp;b" in body


def test_an_alert_without_an_id_gets_no_acknowledge_button(slack, notifier):
    notifier.send(notify("firing", id=None))
    assert "llmcost_ack" not in action_ids(slack.requests[0].json["blocks"])


def test_notifiers_are_built_from_the_notifications_config(slack):
    config = {
        "slack": {"token": TOKEN, "channel": "#llm-cost", "api_url": slack.api_url, "signing_secret": "s"},
        "routes": {"critical": ["slack"]},
    }
    notifiers = build_notifiers(config)

    assert set(notifiers) == {"slack"}
    assert notifiers["slack"].send(notify("firing")).ok


def test_a_config_without_token_names_what_is_missing():
    with pytest.raises(ValueError, match="token"):
        SlackNotifier.from_config({"channel": "#c"})


def test_redact_hides_given_secrets_and_credential_shapes():
    text = (
        "token xoxb-111-222-abc, hook https://hooks.slack.com/services/T0/B0/xyz, "
        "header Bearer abcdefghijklmnop1234, url https://user:pa55@smtp.example.com, key s3cret"
    )
    redacted = redact(text, ["s3cret", None, ""])

    for secret in ("xoxb-111-222-abc", "T0/B0/xyz", "abcdefghijklmnop1234", "pa55", "s3cret"):
        assert secret not in redacted
    assert redact("basic auth is not configured") == "basic auth is not configured"
    assert "hooks.slack.com/services/[REDACTED], header" in redacted  # the host says which hook; the path is the secret
