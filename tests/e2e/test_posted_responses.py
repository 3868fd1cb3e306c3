"""Whole provider responses and OTel span attributes posted as they are to a running llmcost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.normalize import map_usage
from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess
from tests.support.provider_responses import SECRET, anthropic_messages, chat_completions, responses
from tests.support.stored import stored_events

pytestmark = pytest.mark.real_process

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, sqlite_url) as running:
        yield running


def test_whole_responses_are_accepted_without_provider_and_keep_no_content(
    server: LlmcostProcess, sqlite_url: str
) -> None:
    chats, resps, messages = list(chat_completions()), list(responses()), list(anthropic_messages())
    body = [*chats, *resps, *messages]
    answer = httpx.post(f"{server.base}/v1/usage", json=body, headers=AUTH, timeout=30).json()
    assert answer == {"accepted": len(body), "duplicates": 0, "rejected": []}
    # A retried post is a duplicate: the response id is the request id.
    again = httpx.post(f"{server.base}/v1/usage", json=chats[:3], headers=AUTH).json()
    assert again == {"accepted": 0, "duplicates": 3, "rejected": []}

    stored = stored_events(sqlite_url)
    assert SECRET not in repr(stored)
    chat = stored[chats[0]["id"]]
    assert chat["provider"] == "openai" and chat["model"] == chats[0]["model"]
    assert chat["ts"] == chats[0]["created"]
    assert stored[resps[0]["id"]]["ts"] == resps[0]["created_at"]
    assert stored[messages[0]["id"]]["provider"] == "anthropic"
    for raw in body:
        provider = "anthropic" if raw.get("type") == "message" else "openai"
        tokens = map_usage(raw["usage"], provider)[0]
        assert {k: stored[raw["id"]][k] for k in tokens} == tokens


def test_a_response_wrapped_as_the_usage_keeps_no_content(server: LlmcostProcess, sqlite_url: str) -> None:
    chat = next(chat_completions())
    event = {"provider": "openai", "model": "gpt-4o", "project": "p", "usage": chat}
    assert httpx.post(f"{server.base}/v1/usage", json=event, headers=AUTH).json()["accepted"] == 1
    stored = stored_events(sqlite_url)
    assert set(stored) == {chat["id"]}
    assert SECRET not in repr(stored)
    assert stored[chat["id"]]["metadata"]["usage"] == chat["usage"]


def test_caller_fields_beside_a_response_win(server: LlmcostProcess, sqlite_url: str) -> None:
    message = next(anthropic_messages())
    posted = {**message, "project": "search", "service": "api", "user": "u-1", "provider": "bedrock"}
    assert httpx.post(f"{server.base}/v1/usage", json=posted, headers=AUTH).json()["accepted"] == 1
    event = stored_events(sqlite_url)[message["id"]]
    assert (event["project"], event["service"], event["user"], event["provider"]) == ("search", "api", "u-1", "bedrock")


def test_otel_span_attributes_keep_top_level_fields(server: LlmcostProcess, sqlite_url: str) -> None:
    flat = {
        "request_id": "req-otel-1",
        "project": "search",
        "service": "api",
        "user": "u-42",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    wrapped = {
        "request_id": "req-otel-2",
        "project": "search",
        "service": "worker",
        "user": "u-43",
        "attributes": {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 5,
        },
    }
    answer = httpx.post(f"{server.base}/v1/usage", json=[flat, wrapped], headers=AUTH).json()
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
    stored = stored_events(sqlite_url)
    assert set(stored) == {"req-otel-1", "req-otel-2"}
    assert [stored["req-otel-1"][k] for k in ("project", "service", "user")] == ["search", "api", "u-42"]
    assert [stored["req-otel-2"][k] for k in ("project", "service", "user")] == ["search", "worker", "u-43"]
