"""Perplexity's usage: a `cost` object with the billed total, and search queries billed per search.

Perplexity's Chat Completions usage (https://docs.perplexity.ai/api-reference/chat-completions-post)
carries `cost: {input_tokens_cost, output_tokens_cost, request_cost, total_cost}` beside the token
counts. llmcost read every `cost` as a number and rejected these usage objects outright
(`usage.cost: must be a number, got dict`): every Perplexity call posted as a usage object was lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from tests.support.helpers import total
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def stored(client: TestClient, request_id: str) -> tuple[int, ...]:
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            text("SELECT input_tokens, output_tokens, cost_nanousd FROM usage_events WHERE request_id = :r"),
            {"r": request_id},
        ).one()
    return tuple(row)


def test_a_perplexity_usage_with_its_cost_object_is_stored_at_the_billed_total(client: TestClient) -> None:
    usage = {
        "prompt_tokens": 14,
        "completion_tokens": 181,
        "total_tokens": 195,
        "search_context_size": "low",
        "cost": {"input_tokens_cost": 0.0, "output_tokens_cost": 0.0, "request_cost": 0.005, "total_cost": 0.005},
    }
    event = {"request_id": "pplx-1", "timestamp": NOW - 30, "provider": "perplexity", "model": "sonar",
             "usage": usage, "project": "research"}  # fmt: skip
    assert client.post("/v1/usage", json=event).json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert stored(client, "pplx-1") == (14, 181, 5_000_000)
    metrics = client.get("/metrics").text
    assert total(metrics, "llm_cost_usd_total", project="research") == pytest.approx(0.005, abs=1e-12)


def test_deep_research_search_queries_are_charged_per_search_without_a_cost(client: TestClient) -> None:
    usage = {"prompt_tokens": 1_000, "completion_tokens": 10_000, "total_tokens": 11_000, "num_search_queries": 20}
    event = {"request_id": "pplx-2", "timestamp": NOW - 30, "provider": "perplexity",
             "model": "sonar-deep-research", "usage": usage}  # fmt: skip
    assert client.post("/v1/usage", json=event).json()["accepted"] == 1
    # 1,000 in x $2/M + 10,000 out x $8/M + 20 searches x $5/1,000 = $0.182.
    assert stored(client, "pplx-2") == (1_000, 10_000, 182_000_000)


def test_a_cost_object_without_a_total_is_refused_by_name(client: TestClient) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "cost": {"request_cost": 0.005}}
    body = client.post("/v1/usage", json={"provider": "perplexity", "model": "sonar", "usage": usage}).json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["error"].startswith("usage.cost.total_cost:")


# Perplexity's Deep Research usage as its API reports it (https://docs.perplexity.ai/getting-started/pricing,
# "Sonar Deep Research": $2/M input, $8/M output, $2/M citation tokens, $3/M reasoning tokens, $5 per 1,000
# search queries): reasoning and citation tokens beside completion_tokens, outside total_tokens.
DEEP_RESEARCH = {"prompt_tokens": 19, "completion_tokens": 9163, "total_tokens": 9182, "citation_tokens": 11213,
                 "num_search_queries": 22, "reasoning_tokens": 74394, "search_context_size": "low"}  # fmt: skip


def test_deep_research_reasoning_and_citation_tokens_are_priced_as_perplexity_bills_them(client: TestClient) -> None:
    # It was rejected (reasoning_tokens exceed completion_tokens): every Deep Research call was lost.
    billed = {"input_tokens_cost": 0.00004, "output_tokens_cost": 0.0733, "citation_tokens_cost": 0.02243,
              "reasoning_tokens_cost": 0.22318, "search_queries_cost": 0.11, "total_cost": 0.42895}  # fmt: skip
    for request_id, usage in (("priced", DEEP_RESEARCH), ("billed", {**DEEP_RESEARCH, "cost": billed})):
        event = {"request_id": request_id, "timestamp": NOW - 30, "provider": "perplexity",
                 "model": "sonar-deep-research", "usage": usage}  # fmt: skip
        assert client.post("/v1/usage", json=event).json()["accepted"] == 1
    # 19 x $2/M + 9,163 x $8/M + 11,213 x $2/M + 74,394 x $3/M + 22 x $0.005 = $0.42895, the billed total.
    expected = (19 * 2 + 9163 * 8 + 11213 * 2 + 74394 * 3) * 1_000 + 22 * 5_000_000
    assert expected == 428_950_000
    output = 9163 + 11213 + 74394  # every output token counted, the reasoning and citation parts priced apart
    assert stored(client, "priced") == (19, output, expected)
    assert stored(client, "billed") == (19, output, 428_950_000)
    # llmcost reprice reads the citation count back from the event: the same figure.
    from exporter.pricing import PriceBook
    from exporter.repricing import Repricer

    store = client.services.store  # type: ignore[attr-defined]
    assert Repricer(store, PriceBook()).run(0.0).models[("perplexity", "sonar-deep-research")].changed == 0
    assert stored(client, "priced")[2] == expected


def test_citation_tokens_that_do_not_fit_in_the_output_are_refused_by_name(client: TestClient) -> None:
    event = {"provider": "perplexity", "model": "sonar-deep-research", "output_tokens": 10, "reasoning_tokens": 5,
             "citation_tokens": 6}  # fmt: skip
    body = client.post("/v1/usage", json=event).json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["error"].startswith("citation_tokens:")
