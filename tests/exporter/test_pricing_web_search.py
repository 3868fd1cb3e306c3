"""Server-side web searches are billed per search, on top of tokens, and llmcost charges them.

Anthropic charges $10 per 1,000 web searches (https://docs.claude.com/en/docs/agents-and-tools/tool-use/
web-search-tool) and reports them in the usage object as `server_tool_use.web_search_requests`;
genai-prices carries that price (`web_searches_kcount`). The usage objects below are real recorded
responses (tests/data/recorded-usage, from pydantic/pydantic-ai's test cassettes, MIT, Copyright (c)
Pydantic Services Inc.): before this was priced, a call with 5 searches showed $0.05 less than the
invoice, one with a single search on 8,606 input tokens 26 % less.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from genai_prices import calc_price
from genai_prices.types import Usage
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.events import InvalidEvent, parse_event, usd_to_nanos
from exporter.pricing import PriceBook, parse_overrides
from exporter.repricing import Repricer
from tests.support.helpers import total
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def recorded_searches() -> list[dict[str, Any]]:
    """The recorded Anthropic messages that ran web searches (complete usage, not stream deltas)."""
    records = [orjson.loads(line) for line in RECORDED_USAGE.read_bytes().splitlines()]
    return [
        r
        for r in records
        if r["object"] == "message"
        and (r["usage"].get("server_tool_use") or {}).get("web_search_requests")
        and "iterations" not in r["usage"]
    ]


def post(client: TestClient, event: dict[str, Any]) -> None:
    body = client.post("/v1/usage", json={"timestamp": NOW - 30, **event}).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_anthropic_web_searches_cost_ten_dollars_a_thousand_on_top_of_tokens(client: TestClient) -> None:
    small = next(r for r in recorded_searches() if r["usage"]["input_tokens"] == 8606)
    assert small["usage"]["server_tool_use"]["web_search_requests"] == 1
    post(
        client,
        {
            "request_id": "one-search",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5-20250929",
            "usage": small["usage"],
            "project": "small",
        },
    )
    # 8,606 input x $3/M + 132 output x $15/M = $0.027798, + 1 search x $0.01.
    metrics = client.get("/metrics").text
    assert total(metrics, "llm_cost_usd_total", project="small") == pytest.approx(0.037798, abs=1e-9)
    summary = client.get("/v1/usage/summary", params={"by": "project"}).json()
    assert summary["total_cost_usd"] == pytest.approx(0.037798, abs=1e-9)


def test_long_context_call_with_searches_matches_genai_prices_to_the_nano_dollar(client: TestClient) -> None:
    big = next(r for r in recorded_searches() if r["usage"]["input_tokens"] == 494549)
    post(client, {"request_id": "long", "provider": "anthropic", "model": big["response_model"], "usage": big["usage"]})
    # Over 200k input: $6/M in, $22.50/M out; and 5 searches.
    expected = Decimal(494549) * 6 / 10**6 + Decimal(1245) * Decimal("22.5") / 10**6 + 5 * Decimal("0.01")
    oracle = calc_price(
        Usage(input_tokens=494549, output_tokens=1245, web_searches=5),
        model_ref=big["response_model"],
        provider_id="anthropic",
    ).total_price
    assert oracle == expected
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        cost = conn.execute(text("SELECT cost_nanousd FROM usage_events WHERE request_id = 'long'")).scalar_one()
    assert cost == usd_to_nanos(expected) == 3_045_306_500


def test_canonical_events_carry_web_search_requests_and_reprice_keeps_them(client: TestClient) -> None:
    post(
        client,
        {
            "request_id": "canon",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "input_tokens": 1000,
            "output_tokens": 100,
            "web_search_requests": 3,
        },
    )
    store = client.services.store  # type: ignore[attr-defined]
    with store.reading() as conn:
        cost = conn.execute(text("SELECT cost_nanousd FROM usage_events WHERE request_id = 'canon'")).scalar_one()
    assert cost == 34_500_000  # 1,000 x $3/M + 100 x $15/M + 3 searches x $0.01 = $0.0345
    # The same prices again change nothing; the search count is read back from the stored event.
    assert Repricer(store, PriceBook()).run(0.0).models[("anthropic", "claude-sonnet-4-5")].changed == 0
    # An override prices tokens only, unless it gives a search price.
    override = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "input_per_mtok": 3,
        "output_per_mtok": 15,
        "web_search_per_thousand": 5,
    }
    Repricer(store, PriceBook(parse_overrides([override]))).run(0.0)
    with store.reading() as conn:
        cost = conn.execute(text("SELECT cost_nanousd FROM usage_events WHERE request_id = 'canon'")).scalar_one()
    assert cost == 19_500_000


def test_openai_responses_web_search_calls_are_charged_per_call(client: TestClient) -> None:
    # OpenAI's usage object does not count web searches; the output has one `web_search_call` per search,
    # billed $10 per 1,000 (genai-prices `web_searches_kcount` for gpt-5).
    response = {
        "id": "resp_ws",
        "object": "response",
        "created_at": int(NOW - 30),
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"query": "secret one"}},
            {"type": "web_search_call", "id": "ws_2", "status": "completed", "action": {"query": "secret two"}},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "secret"}]},
        ],
        "usage": {"input_tokens": 10_000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1_000,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11_000},
    }  # fmt: skip
    post(client, {**response, "project": "ws"})
    # The same response given as the `usage` of an event (docs/sending-data.md: "the same holds") is
    # charged the same: its searches were dropped with its output, so it cost $0.02 less.
    post(client, {"provider": "openai", "project": "wrapped", "usage": {**response, "id": "resp_ws_wrapped"}})
    # 10,000 x $1.25/M + 1,000 x $10/M = $0.0225, + 2 searches x $0.01.
    metrics = client.get("/metrics").text
    assert total(metrics, "llm_cost_usd_total", project="ws") == pytest.approx(0.0425, abs=1e-9)
    assert total(metrics, "llm_cost_usd_total", project="wrapped") == pytest.approx(0.0425, abs=1e-9)
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        meta = conn.execute(text("SELECT meta_json FROM usage_events WHERE request_id = 'resp_ws'")).scalar_one()
    assert "secret" not in meta


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_a_bad_search_count_is_rejected_by_name(bad: object) -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_event({"provider": "anthropic", "model": "claude-sonnet-4-5", "web_search_requests": bad}, now=NOW)
    assert error.value.field == "web_search_requests"


def test_openai_responses_file_search_calls_are_charged_per_call_and_kept_through_reprice(client: TestClient) -> None:
    # OpenAI bills the file search tool $2.50 per 1,000 calls (https://openai.com/api/pricing, "Built-in
    # tools"; genai-prices `storage_searches_kcount`), one `file_search_call` output item per call whatever
    # its queries; the usage object does not count them, so they were not charged.
    response = {
        "id": "resp_fs",
        "object": "response",
        "created_at": int(NOW - 30),
        "model": "gpt-4.1-2025-04-14",
        "status": "completed",
        "output": [
            {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["secret a", "secret b"],
             "results": None},
            {"type": "file_search_call", "id": "fs_2", "status": "completed", "queries": ["secret c"]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"query": "secret d"}},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "secret"}]},
        ],
        "usage": {"input_tokens": 10_000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1_000,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11_000},
    }  # fmt: skip
    post(client, {**response, "project": "fs"})
    post(client, {"provider": "openai", "project": "fs-wrapped", "usage": {**response, "id": "resp_fs_wrapped"}})
    # gpt-4.1: 10,000 x $2/M + 1,000 x $8/M = $0.028, + 1 web search x $0.01 + 2 file searches x $0.0025.
    expected = Decimal(10_000) * 2 / 10**6 + Decimal(1_000) * 8 / 10**6 + Decimal("0.01") + 2 * Decimal("0.0025")
    store = client.services.store  # type: ignore[attr-defined]
    with store.reading() as conn:
        rows = dict(conn.execute(text("SELECT request_id, cost_nanousd FROM usage_events")).all())
        meta = conn.execute(text("SELECT meta_json FROM usage_events WHERE request_id = 'resp_fs'")).scalar_one()
    assert (
        rows
        == {"resp_fs": usd_to_nanos(expected), "resp_fs_wrapped": usd_to_nanos(expected)}
        == {
            "resp_fs": 43_000_000,
            "resp_fs_wrapped": 43_000_000,
        }
    )
    assert "secret" not in meta
    # llmcost reprice reads the count back: the same prices give the same figure.
    assert Repricer(store, PriceBook()).run(0.0).models[("openai", "gpt-4.1-2025-04-14")].changed == 0
    # An override charges file searches at its own rate, or not at all without one.
    override = {"provider": "openai", "model": "gpt-4.1*", "input_per_mtok": 2, "output_per_mtok": 8,
                "web_search_per_thousand": 10, "file_search_per_thousand": 5}  # fmt: skip
    Repricer(store, PriceBook(parse_overrides([override]))).run(0.0)
    with store.reading() as conn:
        cost = conn.execute(text("SELECT cost_nanousd FROM usage_events WHERE request_id = 'resp_fs'")).scalar_one()
    assert cost == 48_000_000
