"""A refused token says which token list the endpoint reads, on a real `llmcost serve` with the test tokens.

configuration.md gives ingest and admin tokens to different people. A holder of an ingest token reading
`GET /v1/budgets` (or an admin posting a call) got "missing or invalid bearer token" alone, the same answer as
a mistyped token, and could not tell which one the endpoint wanted.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost

pytestmark = pytest.mark.real_process

CALL = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}


def test_a_refused_token_names_the_token_list_the_endpoint_reads(tmp_path: Path) -> None:
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as server:
        ingest = {"Authorization": f"Bearer {INGEST_TOKEN}"}
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        answers = {
            "GET /v1/budgets": httpx.get(f"{server.base}/v1/budgets", headers=ingest, timeout=30),
            "GET /v1/alerts": httpx.get(f"{server.base}/v1/alerts", headers=ingest, timeout=30),
            "POST /v1/usage": httpx.post(f"{server.base}/v1/usage", json=CALL, headers=admin, timeout=30),
            "POST /v1/budgets/check": httpx.post(f"{server.base}/v1/budgets/check", json={}, headers=admin, timeout=30),
            "POST /v1/traces": httpx.post(f"{server.base}/v1/traces", json={"resourceSpans": []}, timeout=30),
        }
        wanted = {
            "GET /v1/budgets": "auth.admin_tokens",
            "GET /v1/alerts": "auth.admin_tokens",
            "POST /v1/usage": "auth.ingest_tokens",
            "POST /v1/budgets/check": "auth.ingest_tokens",
            "POST /v1/traces": "auth.ingest_tokens",
        }
        said = {name: (answer.status_code, answer.json()["error"]) for name, answer in answers.items()}
        assert said == {
            name: (
                401,
                f"missing or invalid bearer token: this endpoint takes one of {setting} "
                "(Authorization: Bearer <token>)",
            )
            for name, setting in wanted.items()
        }
        for answer in answers.values():
            assert INGEST_TOKEN not in answer.text and ADMIN_TOKEN not in answer.text
