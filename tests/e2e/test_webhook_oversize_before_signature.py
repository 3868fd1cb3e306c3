"""Slack and PagerDuty webhooks with a well-formed but wrong signature over a body past the limit: 413.

The signature is an HMAC of the whole body, so checking it means reading the whole body; the limit
(`alerting.max_body_bytes`) exists so that no sender makes llmcost read or hold more than that. So a
request whose headers could be valid (`v0=`/`v1=` signature, a fresh timestamp) is answered 413 as soon as
its body is known to be too large (at once from `Content-Length`, or once a chunked body passes the
limit), without reading the rest: the answer says nothing of the secret or of the signature (it was never
compared). A request without such headers is refused 401 before its body is read
(tests/alerting/test_gateway_webhooks.py). Kept as it is; docs/http-api.md says so.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

SIGNING_SECRET = "slack-signing-secret-0123456789"
PD_SECRET = "pagerduty-webhook-secret-0123456789"
LIMIT = 64 * 1024
WRONG = {
    "/v1/slack/interactions": {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Signature": "v0=" + "0" * 64,
    },
    "/v1/pagerduty/webhook": {"Content-Type": "application/json", "X-PagerDuty-Signature": "v1=" + "0" * 64},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlmcostProcess]:
    config = tmp_path / "llmcost.yml"
    notifications = {
        "slack": {"token": "xoxb-oversize", "channel": "#llm-cost", "signing_secret": SIGNING_SECRET},
        "pagerduty": {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32", "webhook_secret": PD_SECRET},
    }
    config.write_text(yaml.safe_dump({"alerting": {"max_body_bytes": LIMIT}, "notifications": notifications}))
    process = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config).start(tmp_path)
    yield process
    process.stop()


def headers(path: str) -> dict[str, str]:
    return {**WRONG[path], "X-Slack-Request-Timestamp": str(int(time.time()))}


@pytest.mark.parametrize("path", list(WRONG))
def test_a_wrong_signature_over_a_body_past_the_limit_is_413_and_within_it_401(
    server: LlmcostProcess, path: str
) -> None:
    over = httpx.post(f"{server.base}{path}", content=b"x" * (LIMIT + 1), headers=headers(path), timeout=20)
    assert over.status_code == 413 and over.json()["detail"] == {"limit_bytes": LIMIT}
    within = httpx.post(f"{server.base}{path}", content=b"x" * LIMIT, headers=headers(path), timeout=20)
    assert within.status_code == 401


@pytest.mark.parametrize("path", list(WRONG))
def test_a_chunked_body_past_the_limit_is_answered_without_reading_the_rest(server: LlmcostProcess, path: str) -> None:
    """Only what passes the limit is read: the answer comes before the sender sends anything more."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers(path).items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode())
        chunk = b"x" * (LIMIT // 4)
        for _ in range(5):  # just past the limit: the answer is read before anything more is sent
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert httpx.get(f"{server.base}/readyz", timeout=10).status_code == 200
