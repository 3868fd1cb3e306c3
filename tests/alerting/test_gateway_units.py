"""Pure stages of the gateway, tested alone: dedup decisions, configuration, payload parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerting.gateway.alertmanager import PayloadError, parse_webhook
from alerting.gateway.config import DEFAULT_ROUTES, parse_duration, settings_from_config
from alerting.gateway.dedup import Reason, decide
from alerting.gateway.grouping import by_message
from alerting.gateway.webhooks import parse_pagerduty_webhook, parse_slack_interaction
from alerting.model import Alert, Notification, NotificationKind, fingerprint
from exporter.config import ConfigError
from llmcost.config import parse_config
from tests.support.gateway_harness import am_alert, am_payload, pd_event, slack_action_body

HOUR = 3600.0


def _decide(**kw):  # type: ignore[no-untyped-def]
    args = {
        "state": "firing",
        "severity": "warning",
        "notified_severity": "warning",
        "last_notified_at": 0.0,
        "now": 60.0,
        "repeat_interval": 4 * HOUR,
    }
    return decide(**{**args, **kw})


@pytest.mark.parametrize(
    ("changes", "reason", "kind"),
    [
        ({"notified_severity": None, "last_notified_at": None}, Reason.FIRST, NotificationKind.FIRING),
        ({}, Reason.WITHIN_REPEAT_INTERVAL, None),
        ({"now": 4 * HOUR}, Reason.REPEAT_INTERVAL_ELAPSED, NotificationKind.REPEAT),
        ({"now": 4 * HOUR, "state": "acknowledged"}, Reason.ACKNOWLEDGED, None),
        ({"severity": "critical"}, Reason.SEVERITY_ROSE, NotificationKind.ESCALATED),
        ({"severity": "critical", "state": "acknowledged"}, Reason.SEVERITY_ROSE, NotificationKind.ESCALATED),
        ({"severity": "info", "now": 60.0}, Reason.WITHIN_REPEAT_INTERVAL, None),
        # An ack covers the severity it was given at: any rise above it notifies (and re-opens the alert).
        ({"notified_severity": "info", "state": "acknowledged"}, Reason.SEVERITY_ROSE, NotificationKind.ESCALATED),
        ({"notified_severity": "info"}, Reason.SEVERITY_ROSE, NotificationKind.ESCALATED),
        # A higher level at the same severity (a budget from critical to exceeded).
        (
            {"severity": "critical", "notified_severity": "critical", "level_rose": True},
            Reason.LEVEL_ROSE,
            NotificationKind.ESCALATED,
        ),
        (
            {"severity": "critical", "notified_severity": "critical", "level_rose": True, "state": "acknowledged"},
            Reason.ACKNOWLEDGED,
            None,
        ),
        ({"state": "resolved", "notified_severity": None}, Reason.RESOLVED, None),
    ],
)
def test_dedup_answers_with_a_reason(changes, reason, kind):  # type: ignore[no-untyped-def]
    decision = _decide(**changes)
    assert decision.reason is reason
    assert decision.kind is kind
    assert decision.notify is (kind is not None)


def test_durations_accept_numbers_and_units():
    assert parse_duration(90) == 90
    assert parse_duration("4h") == 4 * HOUR
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("7d") == 7 * 86400
    for bad in ("soon", "4 hours", "", "-5s", True, None, "1h-"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_defaults_route_by_severity_to_configured_channels_only():
    config = parse_config({"notifications": {"slack": {"token": "xoxb-1", "channel": "#c"}}})
    settings = settings_from_config(config)
    assert settings.routes == DEFAULT_ROUTES
    assert settings.repeat_interval == 4 * HOUR
    assert settings.channels_for("critical") == ("slack",)
    assert settings.channels_for("info") == ()


def test_a_secret_taken_from_elsewhere_is_one_problem_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/alerting.md's config run before `export SLACK_BOT_TOKEN=…`: each such channel was two problems,
    # the second, `notifications.slack.token: required`, sending the reader to write the token in the file.
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("PD_ROUTING_KEY", raising=False)
    monkeypatch.setenv("SMTP_PASSWORD", "")
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    raw = {
        "notifications": {
            "slack": {"token_env": "SLACK_BOT_TOKEN", "channel": "#llm-cost"},
            "pagerduty": {"routing_key_file": "missing.txt"},
            "email": {"smtp_host": "mail", "from": "a@b.c", "to": "d@e.f", "password_env": "SMTP_PASSWORD"},
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base=tmp_path)
    assert caught.value.problems[:2] == [
        "notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is not set",
        f"notifications.pagerduty.routing_key_file: cannot read {tmp_path / 'missing.txt'}: No such file or directory",
    ]
    assert len(caught.value.problems) == 2, caught.value.problems
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    raw["notifications"]["pagerduty"] = {"routing_key_file": "empty.txt"}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base=tmp_path)
    assert caught.value.problems == [
        "notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is empty",
        f"notifications.pagerduty.routing_key_file: {tmp_path / 'empty.txt'} is empty",
    ]


def test_a_blank_required_value_is_a_problem_as_an_empty_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # `PD_ROUTING_KEY="  "` (or `channel: " "`) passed check-config: the channel was found unusable only when
    # its first alert could not be delivered.
    monkeypatch.setenv("PD_ROUTING_KEY", "  ")
    raw = {
        "notifications": {
            "slack": {"token": "xoxb-1", "channel": " "},
            "pagerduty": {"routing_key_env": "PD_ROUTING_KEY"},
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.problems == [
        "notifications.slack.channel: must not be empty",
        "notifications.pagerduty.routing_key_env: environment variable PD_ROUTING_KEY is empty",
    ]


def test_every_config_problem_is_listed_at_once_without_secrets(tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PD_KEY", "super-secret-routing-key")
    raw = {
        "notifications": {
            "slack": {"token": "xoxb-very-secret", "api_url": "ftp://x"},
            "email": {"smtp_host": "mail", "from": "a@b", "to": [], "smtp_port": "25", "colour": "red"},
            "pagerduty": {"routing_key_env": "PD_KEY", "webhook_secret_file": "missing.txt"},
            "routes": {"critical": ["slack", "sms"], "urgent": []},
            "teams": {},
        },
        "alerting": {
            "repeat_interval": "soon",
            "outbox": {"max_attempts": 0, "lease": "x"},
            "alertmanager": {"silence_on_ack": True},
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base=tmp_path)
    problems = "\n".join(caught.value.problems)
    for expected in (
        "notifications.slack.channel: required",
        "notifications.slack.api_url: must be an http(s) URL",
        "notifications.email.to",
        "notifications.email.smtp_port",
        "notifications.email.colour: unknown key",
        "notifications.pagerduty.webhook_secret_file: cannot read",
        "notifications.routes.critical: unknown channel(s) ['sms']",
        "notifications.routes.urgent: unknown key",
        "notifications.teams: unknown key",
        "alerting.repeat_interval",
        "alerting.outbox.max_attempts",
        "alerting.outbox.lease",
        "alerting.alertmanager.silence_on_ack: needs alerting.alertmanager.url",
    ):
        assert expected in problems
    assert "xoxb-very-secret" not in problems and "super-secret-routing-key" not in problems


def test_secrets_come_from_files_and_environment(tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    (tmp_path / "slack-token").write_text("xoxb-from-file\n")
    (tmp_path / "pd-secrets").write_text("old-secret\nnew-secret\n")
    monkeypatch.setenv("SIGNING", "signing-from-env")
    config = parse_config(
        {
            "notifications": {
                "slack": {"token_file": "slack-token", "channel": "#c", "signing_secret_env": "SIGNING"},
                "pagerduty": {"routing_key": "k" * 32, "webhook_secret_file": "pd-secrets"},
            },
            "alerting": {"repeat_interval": "30m", "outbox": {"max_attempts": 3}},
        },
        base=tmp_path,
    )
    config.source = tmp_path / "llmcost.yml"
    settings = settings_from_config(config)
    assert settings.channels["slack"]["token"] == "xoxb-from-file"
    assert settings.slack_signing_secret == "signing-from-env"
    assert settings.pagerduty_webhook_secrets == ("old-secret", "new-secret")
    assert settings.repeat_interval == 1800
    assert settings.outbox.max_attempts == 3


def test_alertmanager_payload_validation_names_the_field():
    good = am_payload([am_alert(), am_alert("Other", status="resolved")], truncated=3)
    hook = parse_webhook(good)
    assert [w.status for w in sorted(hook.alerts, key=lambda w: w.alert.alertname)] == ["firing", "resolved"]
    assert all(w.alert.truncated_alerts == 3 and w.alert.source == "alertmanager" for w in hook.alerts)
    fired = next(w.alert for w in hook.alerts if w.status == "firing")
    assert fired.fingerprint == fingerprint("LLMCostSpike", {"severity": "warning", "project": "search"})
    assert fired.stored_labels == {"severity": "warning", "project": "search"}

    cases = {
        "version": {**good, "version": "3"},
        "alerts": {**good, "alerts": {}},
        "alerts[0].labels.alertname": {**good, "alerts": [{**am_alert(), "labels": {"severity": "x"}}]},
        "alerts[0].status": {**good, "alerts": [{**am_alert(), "status": "pending"}]},
        "alerts[0].startsAt": {**good, "alerts": [{**am_alert(), "startsAt": "yesterday"}]},
        "alerts[0].labels.project": {**good, "alerts": [{**am_alert(), "labels": {"alertname": "A", "project": 5}}]},
        "truncatedAlerts": {**good, "truncatedAlerts": -1},
        "body": [good],
    }
    for field, payload in cases.items():
        with pytest.raises(PayloadError) as caught:
            parse_webhook(payload)
        assert caught.value.field == field


def test_alertmanager_copies_from_ha_peers_share_one_digest():
    one = parse_webhook(am_payload([am_alert(), am_alert("B")], external_url="http://am-0:9093"))
    two = parse_webhook(am_payload([am_alert("B"), am_alert()], external_url="http://am-1:9093"))
    assert one.digest == two.digest
    resolved = parse_webhook(am_payload([am_alert(status="resolved"), am_alert("B")]))
    assert resolved.digest != one.digest


def test_slack_and_pagerduty_bodies_parse_into_actions():
    [action] = parse_slack_interaction(slack_action_body(42, user="carol"))
    assert (action.action, action.alert_id, action.user) == ("ack", 42, "carol")
    assert parse_slack_interaction(slack_action_body(42, action_id="llmcost_runbook")) == []
    for bad in (b"", b"payload=%7Bnot-json", b"payload=%5B%5D", slack_action_body("DROP TABLE")):
        with pytest.raises(PayloadError):
            parse_slack_interaction(bad)

    event = parse_pagerduty_webhook(pd_event("incident.acknowledged", "0123abcd", created_at="2026-11-23T10:00:00Z"))
    assert (event.action, event.fingerprint, event.agent) == ("ack", "0123abcd", "Bob Oncall")
    assert parse_pagerduty_webhook(pd_event("incident.annotated", "x")).action is None
    with pytest.raises(PayloadError) as caught:
        parse_pagerduty_webhook({"event": {"event_type": "incident.resolved"}})
    assert caught.value.field == "event.id"


def test_by_message_splits_what_is_told_in_threads_by_grouped_message_and_keeps_one_mail_thread_whole() -> None:
    alert = Alert(
        fingerprint="f", alertname="LLMBudgetWarning", labels={}, severity="warning", starts_at=datetime.now(UTC)
    )
    key = "llmcost-group-0123456789abcdef"

    def note(kind: NotificationKind, digest: dict[str, str] | None) -> Notification:
        reference = None if digest is None else {"digest": {**digest, "key": key}}
        return Notification(kind=kind, alert=alert, channel="email", reference=reference)

    first, second = {"message_id": "<a@x>"}, {"message_id": "<b@x>"}
    notes = [
        note(NotificationKind.REPEAT, first),
        note(NotificationKind.REPEAT, second),
        note(NotificationKind.REPEAT, {**first, "subject": ""}),  # a reply to a mail sent before subjects were kept
        note(NotificationKind.REPEAT, None),  # notified on its own
    ]
    assert sorted(by_message(notes).values()) == [[0, 2], [1], [3]]
    escalations = [note(NotificationKind.ESCALATED, first), note(NotificationKind.ESCALATED, second)]
    assert list(by_message(escalations).values()) == [[0, 1]]  # a message of their own: not split
