"""`curl -d '{…}' URL` without `-H`: the 415 says which header to add (it said "send application/json")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost

pytestmark = pytest.mark.real_process

EVENT = '{"request_id": "r1", "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10}'


def curl_post(url: str, token: str, body: str, *headers: str) -> tuple[int, dict[str, object]]:
    """`curl -X POST URL -H 'Authorization: …' [-H …] -d BODY`, as a person types it."""
    args = ["curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", url, "-H", f"Authorization: Bearer {token}"]
    args += [a for header in headers for a in ("-H", header)] + ["-d", body]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    answer, _, status = done.stdout.rpartition("\n")
    return int(status), orjson.loads(answer)


def test_a_curl_without_a_content_type_is_told_the_header_to_add(tmp_path: Path) -> None:
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as server:
        status, answer = curl_post(f"{server.base}/v1/usage", INGEST_TOKEN, EVENT)
        assert status == 415  # still refused: a form's type is what a cross-site page can post
        assert "add the header -H 'Content-Type: application/json'" in str(answer["error"])
        assert answer["detail"] == {"content_type": "application/x-www-form-urlencoded"}

        status, answer = curl_post(f"{server.base}/v1/alerts/1/ack", ADMIN_TOKEN, '{"by": "alice"}')
        assert status == 415
        assert "add the header -H 'Content-Type: application/json'" in str(answer["error"])

        # With the header it was told to add, the same command is accepted.
        status, answer = curl_post(f"{server.base}/v1/usage", INGEST_TOKEN, EVENT, "Content-Type: application/json")
        assert (status, answer["accepted"]) == (200, 1)
