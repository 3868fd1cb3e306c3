"""Digits that are not ASCII, in ids, limits and counts, against a real `llmcost serve` process.

`str.isdigit()` is true for `²`, `³` and other superscripts, which `int()` refuses. The checks that
guard ids and limits used it, so `GET /v1/alerts/²` (or `?limit=²`, a Slack button value `²`) passed the
check, then raised in `int()`: a 500 instead of the 404/400 for any other bad id. A token count `"²"`
in a span's attributes was rejected as `internal error while reading this record: ValueError` instead
of naming the field. Now only ASCII digits count as digits.
"""

from __future__ import annotations

import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from alerting.signatures import sign_slack
from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost
from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
SIGNING_SECRET = "slack-signing-secret-for-tests"
SQUARED = urllib.parse.quote("²")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmcostProcess]:
    tmp_path = tmp_path_factory.mktemp("odd-digits")
    slack = {"token": "xoxb-test", "channel": "#llm-cost", "api_url": "http://127.0.0.1:9/api/"}
    notifications = {"slack": {**slack, "signing_secret": SIGNING_SECRET}}
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}", notifications=notifications) as running:
        yield running


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"/v1/alerts?limit={SQUARED}", 400),
        ("GET", f"/v1/alerts/{SQUARED}", 404),
        ("POST", f"/v1/alerts/{SQUARED}/ack", 404),
        ("POST", f"/v1/alerts/{SQUARED}/unack", 404),
        ("GET", f"/v1/notifications?limit={SQUARED}", 400),
        ("POST", f"/v1/notifications/{SQUARED}/retry", 404),
        ("GET", f"/v1/usage/summary?by=project&limit={SQUARED}", 422),
    ],
)
def test_a_superscript_id_or_limit_is_refused_like_any_other_bad_one(
    server: LlmcostProcess, method: str, path: str, status: int
) -> None:
    answer = httpx.request(method, server.base + path, headers=ADMIN, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]


def test_a_signed_slack_press_with_a_superscript_alert_id_is_a_400(server: LlmcostProcess) -> None:
    payload = {
        "type": "block_actions",
        "user": {"username": "alice"},
        "actions": [{"action_id": "llmcost_ack", "value": "²"}],
    }
    body = ("payload=" + urllib.parse.quote(orjson.dumps(payload).decode())).encode()
    now = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": sign_slack(SIGNING_SECRET, now, body),
    }
    answer = httpx.post(f"{server.base}/v1/slack/interactions", content=body, headers=headers, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"] == {"field": "payload.actions[0].value"}


def test_a_superscript_token_count_in_span_attributes_names_the_field(server: LlmcostProcess) -> None:
    span = {
        "request_id": "odd-digits-1",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": "²",
        "gen_ai.usage.output_tokens": 1,
    }
    good = {"request_id": "odd-digits-2", "provider": "openai", "model": "gpt-4o", "input_tokens": 3}
    answer = httpx.post(f"{server.base}/v1/usage", json=[span, good], headers=INGEST, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [
        {"index": 0, "error": "gen_ai.usage.input_tokens: must be a non-negative integer, got '²'"}
    ]


def test_check_config_names_a_superscript_port(tmp_path: Path) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text('listen: "127.0.0.1:²"\n', encoding="utf-8")
    done = subprocess.run([*LLMCOST, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "listen: must be HOST:PORT" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
