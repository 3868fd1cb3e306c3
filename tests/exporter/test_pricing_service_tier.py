"""Batch, flex and priority calls are priced at their tier's price, not the standard one.

OpenAI bills Batch API and `service_tier: "flex"` calls at half the standard price and priority calls
at about twice it (https://platform.openai.com/docs/pricing); Anthropic bills Message Batches at half
(https://docs.claude.com/en/docs/about-claude/pricing#batch-processing). genai-prices carries these as
price variants (`processing: batch`, `service_tier: flex|priority|…`). Responses say which tier served
them: OpenAI's top-level `service_tier`, Anthropic's `usage.service_tier` (`standard` in every recorded
call of tests/data/recorded-usage, from pydantic/pydantic-ai's test cassettes, MIT, Copyright (c)
Pydantic Services Inc.; `batch` in Message Batches results). Before, every call was charged the
standard price: a priority workload showed half its invoice, a batch workload twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.events import InvalidEvent, parse_event
from exporter.pricing import PriceBook
from exporter.repricing import Repricer
from tests.support.helpers import total
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client

NOW = time.time()  # genai-prices 0.2.5 has the tier prices from 2026-10-12 (flex, priority) and 2026-10-14 (batch) on


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def post(client: TestClient, event: dict[str, Any]) -> None:
    body = client.post("/v1/usage", json={"timestamp": NOW - 30, **event}).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}


def stored(client: TestClient, request_id: str) -> tuple[int, str]:
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            text("SELECT cost_nanousd, price_source FROM usage_events WHERE request_id = :r"), {"r": request_id}
        ).one()
    return row[0], row[1]


def openai_response(response_id: str, tier: str) -> dict[str, Any]:
    """A Responses API object as the OpenAI SDK returns it (content left out: llmcost drops it anyway)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(NOW - 30),
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "service_tier": tier,
        "output": [],
        "usage": {
            "input_tokens": 100_000,
            "input_tokens_details": {"cached_tokens": 20_000},
            "output_tokens": 10_000,
            "output_tokens_details": {"reasoning_tokens": 6_000},
            "total_tokens": 110_000,
        },
    }


def test_openai_flex_and_priority_responses_cost_their_tier_price(client: TestClient) -> None:
    for tier in ("default", "flex", "priority"):
        post(client, {**openai_response(f"resp_{tier}", tier), "project": tier})
    metrics = client.get("/metrics").text
    # gpt-5: 80k input, 20k cached, 10k output at $1.25 / $0.125 / $10 per million = $0.2025.
    assert total(metrics, "llm_cost_usd_total", project="default") == pytest.approx(0.2025, abs=1e-9)
    # flex: $0.625 / $0.0625 / $5; priority: $2.50 / $0.25 / $20.
    assert total(metrics, "llm_cost_usd_total", project="flex") == pytest.approx(0.10125, abs=1e-9)
    assert total(metrics, "llm_cost_usd_total", project="priority") == pytest.approx(0.405, abs=1e-9)
    assert stored(client, "resp_priority")[1].endswith("; service tier priority")
    assert "service tier" not in stored(client, "resp_default")[1]


def test_the_same_priority_call_as_an_otlp_span_costs_the_same(client: TestClient) -> None:
    post(client, {**openai_response("resp_http", "priority"), "project": "http"})
    end = int((NOW - 30) * 1e9)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-5-2025-08-07",
        "gen_ai.usage.input_tokens": 100_000,
        "gen_ai.usage.cache_read.input_tokens": 20_000,
        "gen_ai.usage.output_tokens": 10_000,
        "openai.response.service_tier": "priority",
        "llmcost.project": "otlp",
    }
    value = {str: "stringValue", int: "intValue"}
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-5",
        "startTimeUnixNano": str(end - 2_000_000_000),
        "endTimeUnixNano": str(end),
        "attributes": [
            {"key": k, "value": {value[type(v)]: str(v) if type(v) is int else v}} for k, v in attributes.items()
        ],
    }
    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
    assert client.post("/v1/traces", json=doc).status_code == 200
    metrics = client.get("/metrics").text
    assert total(metrics, "llm_cost_usd_total", project="otlp") == pytest.approx(0.405, abs=1e-9)
    assert total(metrics, "llm_cost_usd_total", project="http") == pytest.approx(0.405, abs=1e-9)


def test_anthropic_batch_usage_costs_half_and_standard_is_unchanged(client: TestClient) -> None:
    records = [orjson.loads(line) for line in RECORDED_USAGE.read_bytes().splitlines()]
    usage = next(r["usage"] for r in records if r["usage"].get("input_tokens") == 16083)
    assert usage["service_tier"] == "standard"
    post(client, {"request_id": "std", "provider": "anthropic", "model": "claude-sonnet-4-5", "usage": usage})
    batch = {**usage, "service_tier": "batch"}
    post(client, {"request_id": "batch", "provider": "anthropic", "model": "claude-sonnet-4-5", "usage": batch})
    # 16,083 in x $3/M + 165 out x $15/M + 1 search x $0.01 = $0.060724; batch halves the tokens only
    # (Anthropic publishes no batch rate for web search).
    assert stored(client, "std")[0] == 60_724_000
    # Batch: 16,083 x $1.50/M + 165 x $7.50/M + $0.01 = $0.035362.
    assert stored(client, "batch")[0] == 35_362_000
    assert stored(client, "batch")[1].endswith("; service tier batch")


def test_anthropic_fast_mode_costs_the_fast_price(client: TestClient) -> None:
    # The Anthropic SDK's Usage has `speed: "standard" | "fast"`; Opus 4.8 fast mode is $10 / $50 per
    # million against $5 / $25.
    usage = {"input_tokens": 100_000, "output_tokens": 10_000, "service_tier": "standard", "speed": "fast"}
    post(client, {"request_id": "fast", "provider": "anthropic", "model": "claude-opus-4-8", "usage": usage})
    post(client, {"request_id": "std", "provider": "anthropic", "model": "claude-opus-4-8",
                  "usage": {**usage, "speed": "standard"}})  # fmt: skip
    cost, source = stored(client, "fast")
    assert (cost, source.endswith(" bundled data; service tier fast")) == (1_500_000_000, True)
    assert stored(client, "std")[0] == 750_000_000


def test_a_canonical_event_names_its_tier_and_reprice_keeps_it(client: TestClient) -> None:
    post(
        client,
        {
            "request_id": "b",
            "provider": "openai",
            "model": "gpt-4.1",
            "input_tokens": 1_000_000,
            "output_tokens": 1_000_000,
            "service_tier": "batch",
        },
    )
    post(
        client,
        {
            "request_id": "p",
            "provider": "openai",
            "model": "gpt-4.1",
            "input_tokens": 1_000_000,
            "output_tokens": 1_000_000,
            "service_tier": "priority",
        },
    )
    # gpt-4.1: $2 in, $8 out; batch $1 / $4; priority $3.50 / $14.
    assert stored(client, "b")[0] == 5_000_000_000
    assert stored(client, "p")[0] == 17_500_000_000
    store = client.services.store  # type: ignore[attr-defined]
    assert Repricer(store, PriceBook()).run(0.0).models[("openai", "gpt-4.1")].changed == 0


def test_a_tier_the_price_data_does_not_know_is_the_standard_price(client: TestClient) -> None:
    post(
        client,
        {
            "request_id": "s",
            "provider": "openai",
            "model": "gpt-4.1",
            "input_tokens": 1_000_000,
            "output_tokens": 0,
            "service_tier": "scale",
        },
    )
    cost, source = stored(client, "s")
    assert cost == 2_000_000_000
    assert "service tier" not in source


@pytest.mark.parametrize("bad", [3, "x" * 65, "bad\ntier"])
def test_a_bad_service_tier_is_rejected_by_name(bad: object) -> None:
    with pytest.raises(InvalidEvent) as error:
        parse_event({"provider": "openai", "model": "gpt-4.1", "service_tier": bad}, now=NOW)
    assert error.value.field == "service_tier"


def test_reprice_prices_a_call_as_ingest_did_whatever_its_metadata_says(client: TestClient) -> None:
    # The tier and the web searches are read back from the stored metadata by `llmcost reprice`: a
    # caller's own metadata key of the same name must neither change what ingest charged nor what a
    # reprice charges, and a tier given only in the metadata is read by both alike.
    common = {"provider": "openai", "model": "gpt-4.1", "input_tokens": 1_000_000, "output_tokens": 0}
    post(client, {**common, "request_id": "field", "service_tier": "batch", "web_search_requests": 2,
                  "metadata": {"service_tier": "gold", "web_search_requests": 7}})  # fmt: skip
    post(client, {**common, "request_id": "meta", "metadata": {"service_tier": "batch"}})
    # gpt-4.1 batch: $1 per million input; 2 searches x $0.01 for the first.
    assert stored(client, "field")[0] == 1_020_000_000
    assert stored(client, "meta")[0] == 1_000_000_000
    store = client.services.store  # type: ignore[attr-defined]
    report = Repricer(store, PriceBook()).run(0.0)
    assert report.models[("openai", "gpt-4.1")].changed == 0
    assert report.difference_nanousd == 0


@pytest.mark.parametrize("tier", [None, 5])
def test_a_response_without_a_textual_tier_is_stored_at_the_standard_price(client: TestClient, tier: object) -> None:
    post(client, {**openai_response("resp_odd", "default"), "service_tier": tier})
    assert stored(client, "resp_odd")[0] == 202_500_000


def test_reprice_corrects_anthropic_batch_calls_stored_before_tiers_were_priced(client: TestClient) -> None:
    # Stored by an earlier version: the raw usage in metadata, no service_tier or web_search_requests
    # beside it, and the standard cost. A reprice after the upgrade reads the tier and the searches
    # from the kept usage, as ingest now does; a second one changes nothing.
    records = [orjson.loads(line) for line in RECORDED_USAGE.read_bytes().splitlines()]
    usage = {**next(r["usage"] for r in records if r["usage"].get("input_tokens") == 16083), "service_tier": "batch"}
    post(client, {"request_id": "old", "provider": "anthropic", "model": "claude-sonnet-4-5", "usage": usage})
    assert stored(client, "old")[0] == 35_362_000
    store = client.services.store  # type: ignore[attr-defined]
    with store.transaction() as conn:
        conn.execute(
            text(
                "UPDATE usage_events SET cost_nanousd = 50724000, price_source = 'genai-prices 0.2.5 bundled data', "
                "meta_json = :meta WHERE request_id = 'old'"
            ),
            {"meta": orjson.dumps({"usage": usage}).decode()},
        )
    first = Repricer(store, PriceBook()).run(0.0)
    assert first.models[("anthropic", "claude-sonnet-4-5")].changed == 1
    assert stored(client, "old") == (35_362_000, stored(client, "old")[1])
    assert stored(client, "old")[1].endswith("; service tier batch")
    assert Repricer(store, PriceBook()).run(0.0).models[("anthropic", "claude-sonnet-4-5")].changed == 0
