"""A route naming a channel the config does not configure: `check-config` and `serve` refuse it.

`notifications.routes: {critical: [slack, pagerduty]}` with no `notifications.pagerduty` section passed
`check-config`, `serve` started, and every critical alert then paged nobody, silently. The default
routes still keep only the configured channels, so a Slack-only config (or the demo's, with none) starts.
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
