"""Secrets in configured URLs and DSNs beyond their user info: query parameters, webhook paths, conninfo.

Each place a configured URL reaches text a person reads (check-config, a command's store error, a
notifier's error kept in the outbox and shown by /v1/notifications and the console) goes through
`exporter.redaction.redact`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerting.model import Alert, Notification, NotificationKind, fingerprint
from alerting.notify import SlackNotifier
from exporter.redaction import RedactingFormatter, redact, url_secrets
from tests.support.pg import free_port
from tests.support.procs import LLMCOST
from tests.support.recording_servers import SlackAPIServer

SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"


@pytest.mark.real_process
def test_check_config_names_bad_urls_without_their_query_secrets_or_webhook_path(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "alertmanager:\n  url: https://am.example:9O93/?token=am-secret-1\n"
        "notifications:\n"
        "  slack:\n    token: xoxb-1-2\n    channel: '#c'\n"
        "    api_url: https://hooks.slack.com:80x/services/T0/B0/slack-secret-2\n"
        "  pagerduty:\n    routing_key: R0123456789abcdef0123456789abcde\n"
        "    events_url: https://events.example:99999/v2/enqueue?api_key=pd-secret-3\n"
    )
    done = subprocess.run([*LLMCOST, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "alertmanager.url: must be an http(s) URL, got 'https://am.example:9O93/?token=[REDACTED]'" in done.stdout
    assert "got 'https://hooks.slack.com:80x/services/[REDACTED]'" in done.stdout
    assert "got 'https://events.example:99999/v2/enqueue?api_key=[REDACTED]'" in done.stdout
    for secret in ("am-secret-1", "slack-secret-2", "pd-secret-3"):
        assert secret not in done.stdout + done.stderr


@pytest.mark.real_process
def test_a_store_that_cannot_be_opened_is_named_without_the_dsn_secrets(tmp_path: Path) -> None:
    # Nothing listens on the port: libpq's error comes back, and the command names the store it tried.
    url = f"postgresql://llmcost:db-pass-1@127.0.0.1:{free_port()}/llmcost?sslpassword=db-secret-2&password=db-pass-3"
    done = subprocess.run([*LLMCOST, "report", "--db", url], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "cannot open the store at postgresql+psycopg://[REDACTED]@127.0.0.1:" in done.stderr
    assert "sslpassword=[REDACTED]" in done.stderr
    for secret in ("db-pass-1", "db-secret-2", "db-pass-3"):
        assert secret not in done.stdout + done.stderr


def test_a_slack_error_quoting_a_webhook_or_a_token_url_is_redacted() -> None:
    labels = {"budget": "b", "scope": "project", "key": "team-a"}
    alert = Alert(
        id=1,
        fingerprint=fingerprint("LLMBudgetWarning", labels),
        alertname="LLMBudgetWarning",
        labels=labels,
        annotations={"summary": "s"},
        severity="warning",
        starts_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    )
    with SlackAPIServer(token=SLACK_TOKEN) as slack:
        echoed = "use https://hooks.slack.com/services/T0/B0/hook-secret-1 or https://relay.example/?access_token=t-2"
        slack.enqueue(500, body={"ok": False, "error": echoed})
        notifier = SlackNotifier(token=SLACK_TOKEN, channel="#c", api_url=slack.api_url, timeout=5)
        result = notifier.send(Notification(kind=NotificationKind.FIRING, alert=alert, channel="slack"))
    assert result.retryable
    assert "hooks.slack.com/services/[REDACTED]" in result.error
    assert "access_token=[REDACTED]" in result.error
    assert "hook-secret-1" not in result.error and "t-2" not in result.error


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p/w@am:9O93", "https://[REDACTED]@am:9O93"),
        ("https://am/?a=1&token=s&b=2#f", "https://am/?a=1&token=[REDACTED]&b=2#f"),
        ("postgresql://h/db?sslpassword=s;x", "postgresql://h/db?sslpassword=[REDACTED];x"),
        ("host=db password='a b' user=u", "host=db password=[REDACTED] user=u"),
        ("got 'https://x/?api_key=k' (bad)", "got 'https://x/?api_key=[REDACTED]' (bad)"),
        ("https://am.example/api/v2/alerts", "https://am.example/api/v2/alerts"),
    ],
)
def test_redact_covers_user_info_query_and_conninfo_secrets(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_url_secrets_are_the_password_and_secret_parameters() -> None:
    url = "postgresql+psycopg://u:p%40w@h/db?sslmode=require&sslpassword=s2"
    assert url_secrets(url) == ("p@w", "s2")
    assert url_secrets("http://[::1") == ()


def test_a_log_line_and_its_traceback_are_redacted() -> None:
    """`llmcost`'s log handler writes every line through `redact`, a library's line and a traceback too."""
    try:
        raise ConnectionError("POST https://llmcost:am-pw-0123456789@am.example:9093/api/v2/alerts?token=t0k3n failed")
    except ConnectionError:
        record = logging.LogRecord(
            "httpx",
            logging.ERROR,
            __file__,
            1,
            "HTTP Request: %s",
            ("POST https://u:pw-0123456789@am/",),
            sys.exc_info(),
        )
    line = RedactingFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line.startswith("ERROR httpx: HTTP Request: POST https://[REDACTED]@am/\nTraceback")
    assert "ConnectionError: POST https://[REDACTED]@am.example:9093/api/v2/alerts?token=[REDACTED] failed" in line
    assert "pw-0123456789" not in line and "t0k3n" not in line
