"""Batch API result files are ingested, at the batch price.

OpenAI's Batch API and Anthropic's Message Batches bill half the standard price, and their result
files (one JSON line per request) are where the usage of batch jobs is. `llmcost ingest` rejected every
line of an OpenAI output file (`provider: is required`): a month of batch jobs read as $0. The lines
below follow the documented formats (https://platform.openai.com/docs/guides/batch,
https://docs.claude.com/en/docs/build-with-claude/batch-processing); the Anthropic usage is a recorded
one (tests/data/recorded-usage, pydantic/pydantic-ai cassettes, MIT, Copyright (c) Pydantic Services
Inc.) with the `service_tier` batch results carry.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tests.support.paths import RECORDED_USAGE
from tests.support.stored import stored_events

CREATED = int(time.time()) - 3600  # genai-prices 0.2.5 has batch prices from 2026-10-14 on


def openai_line(n: int, **response: object) -> dict[str, object]:
    body = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "secret answer"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000},
        "service_tier": "default",
    }
    return {
        "id": f"batch_req_{n}",
        "custom_id": f"request-{n}",
        "response": {"status_code": 200, "request_id": f"req_{n}", "body": body, **response},
        "error": None,
    }


def test_an_openai_batch_output_file_is_ingested_at_the_batch_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcost.cli import main

    failed = {
        "id": "batch_req_9",
        "custom_id": "request-9",
        "response": {"status_code": 500, "body": {}},
        "error": None,
    }
    path = tmp_path / "batch_output.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in (openai_line(1), openai_line(2), failed)))
    db = f"sqlite:///{tmp_path / 'llmcost.db'}"
    assert main(["ingest", "--db", db, str(path)]) == 1  # 1: some records were rejected
    out = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 1 rejected" in out
    assert "a failed batch request is not billed" in out
    stored = stored_events(db)
    assert set(stored) == {"chatcmpl-1", "chatcmpl-2"}
    # gpt-4.1: $2 in, $8 out per million; batch $1 / $4.
    assert stored["chatcmpl-1"]["cost_nanousd"] == 5_000_000_000
    assert stored["chatcmpl-1"]["price_source"].endswith("; service tier batch")
    assert stored["chatcmpl-1"]["metadata"]["batch_custom_id"] == "request-1"
    assert "secret answer" not in repr(stored)
    # The same file again: duplicates, nothing doubled.
    assert main(["ingest", "--db", db, str(path)]) == 1  # 1: some records were rejected
    assert "0 accepted, 2 duplicates, 1 rejected" in capsys.readouterr().out


def test_an_anthropic_message_batches_result_is_ingested_at_the_batch_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcost.cli import main

    records = [orjson.loads(line) for line in RECORDED_USAGE.read_bytes().splitlines()]
    usage = {**next(r["usage"] for r in records if r["usage"].get("input_tokens") == 16083), "service_tier": "batch"}
    message = {"id": "msg_b1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "secret"}], "usage": usage}  # fmt: skip
    lines = [
        {"custom_id": "q1", "result": {"type": "succeeded", "message": message}},
        {"custom_id": "q2", "result": {"type": "expired"}},
    ]
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    db = f"sqlite:///{tmp_path / 'llmcost.db'}"
    assert main(["ingest", "--db", db, str(path)]) == 1  # 1: some records were rejected
    assert "1 accepted, 0 duplicates, 1 rejected" in capsys.readouterr().out
    [event] = stored_events(db).values()
    # 16,083 in x $1.50/M + 165 out x $7.50/M (batch) + 1 web search x $0.01 (no batch rate).
    assert event["cost_nanousd"] == 35_362_000
    assert event["provider"] == "anthropic"


def test_a_batch_result_sent_as_the_usage_of_an_event_is_priced_as_a_batch_call(sqlite_url: str) -> None:
    # A bare usage object cannot say whether a batch served it, so it is the standard price unless the
    # caller says `service_tier: batch`. The batch line (or its `response`) given as the usage says it;
    # it was rejected as an unrecognised usage object.
    from sqlalchemy import text

    from tests.support.pricing import ingest_client

    line = openai_line(1)
    bare = line["response"]["body"]["usage"]  # type: ignore[index]
    events = [
        {"request_id": "bare", "provider": "openai", "model": "gpt-4.1", "usage": bare},
        {"request_id": "told", "provider": "openai", "model": "gpt-4.1", "usage": bare, "service_tier": "batch"},
        {"provider": "openai", "usage": line, "project": "wrapped-line"},
        {"provider": "openai", "usage": openai_line(2)["response"], "project": "wrapped-response"},
    ]
    for client in ingest_client(sqlite_url):
        for event in events:
            assert client.post("/v1/usage", json={"timestamp": CREATED, **event}).json()["accepted"] == 1
        with client.services.store.reading() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(text("SELECT request_id, cost_nanousd, price_source FROM usage_events")).all()
    costs = {request_id: cost for request_id, cost, _ in rows}
    # gpt-4.1, 1M in and 1M out: $2 + $8 standard; batch $1 + $4.
    assert costs == {"bare": 10_000_000_000, "told": 5_000_000_000, "chatcmpl-1": 5_000_000_000,
                     "chatcmpl-2": 5_000_000_000}  # fmt: skip
    assert all(source.endswith("; service tier batch") for request_id, _, source in rows if request_id != "bare")
