"""The one-shot commands run from an operator's shell, which lacks the server's secrets.

The docs put channel secrets in the server's environment (`token_env: SLACK_BOT_TOKEN`). A refused budget
change tells the operator to run `llmcost budgets apply --config FILE`; in a shell without
`SLACK_BOT_TOKEN` that stopped at `notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is
not set` (exit 2), as did `report`, `reprice`, `prune` and `alerts` with that `--config`, although none of
them listens or delivers. They now read the config without those secrets; `serve` still requires them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.recording_servers import SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

SLACK_TOKEN = "xoxb-operator-shell-0123456789"


@pytest.fixture
def slack() -> Iterator[SlackAPIServer]:
    server = SlackAPIServer(token=SLACK_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def write_config(path: Path, slack: SlackAPIServer, limit: float) -> None:
    config = {
        "notifications": {
            "slack": {"token_env": "SLACK_BOT_TOKEN", "channel": "#llm-cost", "api_url": slack.api_url},
            "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
        },
        "budgets": [{"name": "daily", "period": "daily", "limit": limit}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def operator(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`llmcost ARGV` in a shell without the server's secrets."""
    env = {k: v for k, v in os.environ.items() if k != "SLACK_BOT_TOKEN"}
    return subprocess.run([*LLMCOST, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_budgets_apply_from_a_shell_without_the_slack_token(
    tmp_path: Path, sqlite_url: str, slack: SlackAPIServer
) -> None:
    config = tmp_path / "llmcost.yml"
    write_config(config, slack, limit=1.0)
    server = LlmcostProcess(sqlite_url, config=config, env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
    server.start(tmp_path)
    try:
        event = {"provider": "openai", "model": "gpt-4o", "cost_usd": 0.9, "project": "search"}
        assert httpx.post(f"{server.base}/v1/usage", json=event, timeout=10).json()["accepted"] == 1
        wait_until(lambda: slack.calls("chat.postMessage"), timeout=30, what="the warning posted to Slack")

        # The budget's owner raises the limit in the file, as the API's refusal says, from their own shell.
        write_config(config, slack, limit=10.0)
        applied = operator("budgets", "apply", "--config", str(config), "--db", sqlite_url, cwd=tmp_path)
        assert applied.returncode == 0, applied.stderr
        assert "~ update daily: limit 1.0 -> 10.0" in applied.stdout
        # The warning no longer holds: its Slack message is updated by the server, with the server's token.
        wait_until(lambda: slack.calls("chat.update"), timeout=30, what="the resolve edited into the Slack message")
        assert {call.header("authorization") for call in slack.requests} == {f"Bearer {SLACK_TOKEN}"}

        for argv in (["report"], ["alerts", "list"], ["budgets", "list"], ["prune", "--dry-run"]):
            done = operator(*argv, "--config", str(config), "--db", sqlite_url, cwd=tmp_path)
            assert done.returncode == 0, (argv, done.stderr)
            assert "SLACK_BOT_TOKEN" not in done.stderr
    finally:
        server.stop()


def test_serve_still_requires_the_secrets(tmp_path: Path, sqlite_url: str, slack: SlackAPIServer) -> None:
    config = tmp_path / "llmcost.yml"
    write_config(config, slack, limit=1.0)
    served = operator("serve", "--config", str(config), "--db", sqlite_url, "--listen", "127.0.0.1:1", cwd=tmp_path)
    assert served.returncode == 2
    assert "notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is not set" in served.stderr
    checked = operator("check-config", str(config), cwd=tmp_path)
    assert checked.returncode == 1 and "SLACK_BOT_TOKEN is not set" in checked.stdout


def test_a_blank_secret_variable_in_the_shell_is_as_absent_as_an_unset_one(tmp_path: Path, sqlite_url: str) -> None:
    # An env file with `SLACK_BOT_TOKEN=` sourced in the operator's shell: `report` and `budgets list` stopped at
    # `notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is empty` (exit 2), as an unset
    # variable did before these commands stopped needing it; serve and check-config still name it.
    config = tmp_path / "llmcost.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "notifications": {
                    "slack": {"token_env": "SLACK_BOT_TOKEN", "channel": "#llm-cost"},
                    "pagerduty": {"routing_key_env": "LLMCOST_TEST_PD_KEY"},
                }
            }
        ),
        encoding="utf-8",
    )
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}\n')
    shell = {**os.environ, "SLACK_BOT_TOKEN": "", "LLMCOST_TEST_PD_KEY": "  "}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LLMCOST, *argv], cwd=tmp_path, env=shell, capture_output=True, text=True, timeout=60)

    assert run("ingest", "--db", sqlite_url, str(calls)).returncode == 0
    for argv in (["report"], ["budgets", "list"]):
        done = run(*argv, "--config", str(config), "--db", sqlite_url)
        assert done.returncode == 0, (argv, done.stderr)
    checked = run("check-config", str(config))
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[1:] == [
        "  - notifications.slack.token_env: environment variable SLACK_BOT_TOKEN is empty",
        "  - notifications.pagerduty.routing_key_env: environment variable LLMCOST_TEST_PD_KEY is empty",
    ]
