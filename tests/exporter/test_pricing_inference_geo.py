"""Anthropic's US-only inference costs 1.1x every token price, and llmcost charges it.

Anthropic's data residency pricing (https://docs.claude.com/en/docs/about-claude/pricing, "Data residency
pricing"): for Claude Opus 4.6 and newer models, US-only inference (`inference_geo: "us"`) is billed at
1.1x the input, output, cache write and cache read prices; global routing at the standard price. The
usage object says where a call ran (`usage.inference_geo`: `global`, `us`, or `not_available` for models
without the choice). It was ignored, so a US-only workload showed 10 % less than the invoice.

The usage below is a real recorded one (tests/data/recorded-usage, from pydantic/pydantic-ai's test
cassettes, MIT, Copyright (c) Pydantic Services Inc.), a `claude-opus-4-6` call that ran `global`; the
`us` one is the same call as Anthropic reports it when run in the US only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.events import usd_to_nanos
from exporter.pricing import PriceBook
from exporter.repricing import Repricer
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def recorded_opus_46() -> dict[str, Any]:
    records = [orjson.loads(line) for line in RECORDED_USAGE.read_bytes().splitlines()]
    return next(
        r["usage"]
        for r in records
        if r["response_model"] == "claude-opus-4-6" and r["usage"].get("input_tokens") == 671
    )


def stored(client: TestClient) -> dict[str, tuple[int, str]]:
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT request_id, cost_nanousd, price_source FROM usage_events")).all()
    return {request_id: (cost, source) for request_id, cost, source in rows}


def test_us_only_inference_costs_one_point_one_times_the_token_price(client: TestClient) -> None:
    usage = recorded_opus_46()
    assert (usage["inference_geo"], usage["input_tokens"], usage["output_tokens"]) == ("global", 671, 55)
    for request_id, geo, provider in (("global", "global", "anthropic"), ("us", "us", "anthropic")):
        body = {"request_id": request_id, "timestamp": NOW - 30, "provider": provider, "model": "claude-opus-4-6",
                "usage": {**usage, "inference_geo": geo}}  # fmt: skip
        assert client.post("/v1/usage", json=body).json()["accepted"] == 1
    # Opus 4.6: $5 in, $25 out per million. 671 x $5/M + 55 x $25/M = $0.00473; US-only 1.1x = $0.005203.
    standard = Decimal(671) * 5 / 10**6 + Decimal(55) * 25 / 10**6
    costs = stored(client)
    assert costs["global"][0] == usd_to_nanos(standard) == 4_730_000
    assert costs["us"] == (
        usd_to_nanos(standard * Decimal("1.1")),
        "genai-prices 0.2.5 bundled data; US-only inference 1.1x",
    )
    assert costs["us"][0] == 5_203_000
    # llmcost reprice reads the geo back from the stored usage: the same figure, nothing changed.
    store = client.services.store  # type: ignore[attr-defined]
    assert Repricer(store, PriceBook()).run(0.0).models[("anthropic", "claude-opus-4-6")].changed == 0
    assert stored(client) == costs


def test_the_premium_is_on_tokens_only_and_on_the_batch_price_too(client: TestClient) -> None:
    usage = {**recorded_opus_46(), "inference_geo": "us", "service_tier": "batch",
             "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}  # fmt: skip
    body = {"request_id": "batch-us", "timestamp": NOW - 30, "provider": "anthropic", "model": "claude-opus-4-6",
            "usage": usage}  # fmt: skip
    assert client.post("/v1/usage", json=body).json()["accepted"] == 1
    # Batch halves the token prices ($0.002365), US-only multiplies them by 1.1 ($0.0026015); the web
    # search keeps its $0.01 (a per-search fee, not a token price).
    cost, source = stored(client)["batch-us"]
    assert cost == usd_to_nanos(Decimal("0.002365") * Decimal("1.1") + Decimal("0.01")) == 12_601_500
    assert source.endswith("; service tier batch; US-only inference 1.1x")


def test_where_the_premium_does_not_apply_the_price_is_unchanged(client: TestClient) -> None:
    usage = recorded_opus_46()
    for request_id, provider, geo in (
        ("not-available", "anthropic", "not_available"),  # older models: no choice, standard price
        ("bedrock-us", "bedrock", "us"),  # Bedrock prices its regional endpoints itself
    ):
        body = {"request_id": request_id, "timestamp": NOW - 30, "provider": provider, "model": "claude-opus-4-6",
                "usage": {**usage, "inference_geo": geo}}  # fmt: skip
        assert client.post("/v1/usage", json=body).json()["accepted"] == 1
    costs = stored(client)
    assert costs["not-available"] == (4_730_000, "genai-prices 0.2.5 bundled data")
    assert "US-only" not in costs["bedrock-us"][1]
