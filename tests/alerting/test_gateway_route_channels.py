"""A route naming a channel the config does not configure: `check-config` and `serve` refuse it.

`notifications.routes: {critical: [slack, pagerduty]}` with no `notifications.pagerduty` section passed
`check-config`, `serve` started, and every critical alert then paged nobody, silently. The default
routes still keep only the configured channels, so a Slack-only config (or the demo's, with none) starts.

Defect: that kept channel was the only word of it. A Slack-only config (no `routes:` written) sent critical
alerts, which the default route pages and mails, to Slack alone, and `check-config` said "OK". Now it
prints the effective route of each severity and a notice per channel a default route names but the config
lacks (`serve` logs them once at start: tests/e2e/test_serve_default_routes.py); the exit status stays 0,
and writing the route ends the notice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcost.cli import main

SLACK_ONLY = "notifications:\n  slack: {token: xoxb-test, channel: '#llm-cost', api_url: 'http://127.0.0.1:9/api/'}\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out + err


def test_a_route_to_an_unconfigured_channel_is_refused_naming_route_index_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY + "  routes: {warning: [slack, email], critical: [slack, pagerduty]}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 1, out
    for expected in (
        "notifications.routes.warning[1]: channel 'email' is not configured",
        "add a notifications.email section or remove 'email' from the route",
        "notifications.routes.critical[1]: channel 'pagerduty' is not configured",
        "critical alerts would not reach it",
    ):
        assert expected in out, (expected, out)
    assert "routes.critical[0]" not in out and "routes.warning[0]" not in out, out
    code, out = run(capsys, "serve", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and "notifications.routes.critical[1]" in out, out
    assert not (tmp_path / "x.db").exists()


def test_default_routes_keep_the_configured_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY)
    code, out = run(capsys, "check-config", str(config))
    assert code == 0, out
    empty = tmp_path / "empty.yml"
    empty.write_text(SLACK_ONLY + "  routes: {info: [], critical: [slack]}\n")
    code, out = run(capsys, "check-config", str(empty))
    assert code == 0, out


def test_check_config_prints_the_routing_and_what_the_default_routes_leave_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY)
    code, out = run(capsys, "check-config", str(config))
    assert code == 0, out
    assert out.splitlines()[1:5] == [
        "routing (notifications.routes, or the default route of a severity it does not write):",
        "  info: nobody (default route)",
        "  warning: slack (default route: slack, email)",
        "  critical: slack (default route: slack, email, pagerduty)",
    ], out
    notices = [line for line in out.splitlines() if line.startswith("notice: ")]
    assert [n.partition(" (")[0] for n in notices] == [
        "notice: critical alerts page nobody: notifications.pagerduty is not configured; they go to slack only",
        "notice: critical alerts are mailed to nobody: notifications.email is not configured; they go to slack only",
        "notice: warning alerts are mailed to nobody: notifications.email is not configured; they go to slack only",
    ], out
    assert "configure notifications.pagerduty, or write notifications.routes.critical: [slack]" in notices[0]


def test_a_written_route_is_on_purpose_and_a_full_config_has_no_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY + "  routes: {warning: [slack], critical: [slack]}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 0 and "notice:" not in out, out
    assert "  critical: slack (notifications.routes.critical)" in out, out
    config.write_text(
        SLACK_ONLY + "  email: {smtp_host: smtp.example.com, from: a@example.com, to: [b@example.com]}\n"
        "  pagerduty: {routing_key: R0123456789abcdef0123456789abcde, webhook_secret: whsec-test}\n"
    )
    code, out = run(capsys, "check-config", str(config))
    assert code == 0 and "notice:" not in out, out
    assert "  critical: slack, email, pagerduty (default route)" in out, out


def test_no_channel_at_all_is_one_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("alerting: {repeat_interval: 4h}\n")
    code, out = run(capsys, "check-config", str(config))
    assert code == 0, out
    [notice] = [line for line in out.splitlines() if line.startswith("notice: ")]
    assert notice == (
        "notice: no notification channel is configured (notifications.slack, notifications.email, "
        "notifications.pagerduty): warning and critical alerts reach nobody: they are recorded only "
        "(GET /v1/alerts, the console)"
    )


PAGERDUTY_ONLY = "notifications:\n  pagerduty: {routing_key: R0123456789abcdef0123456789abcde%s}\n"


def test_pagerduty_without_webhook_secret_notices_that_its_acks_are_not_seen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: an ack in PagerDuty never reached llmcost (its webhooks refused unsigned) and nothing said so."""
    config = tmp_path / "llmcost.yml"
    config.write_text(PAGERDUTY_ONLY % "" + "  routes: {warning: [], critical: [pagerduty]}\n")
    code, out = run(capsys, "check-config", str(config))
    [notice] = [line for line in out.splitlines() if line.startswith("notice: ")]
    assert code == 0, out
    assert notice.startswith(
        "notice: acknowledgements given in PagerDuty are not seen by llmcost: "
        "notifications.pagerduty.webhook_secret is not configured"
    ), notice
    assert "set notifications.pagerduty.webhook_secret" in notice, notice
    monkeypatch.setenv("PD_WEBHOOK_SECRET", "whsec-from-env")
    for given in (", webhook_secret: whsec-test", ", webhook_secret_env: PD_WEBHOOK_SECRET"):
        config.write_text(PAGERDUTY_ONLY % given + "  routes: {warning: [], critical: [pagerduty]}\n")
        code, out = run(capsys, "check-config", str(config))
        assert code == 0 and "notice:" not in out, out


def test_pagerduty_no_route_pages_through_needs_no_webhook_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(
        SLACK_ONLY + "  pagerduty: {routing_key: R0123456789abcdef0123456789abcde}\n"
        "  routes: {warning: [slack], critical: [slack]}\n"
    )
    code, out = run(capsys, "check-config", str(config))
    assert code == 0 and "notice:" not in out, out
