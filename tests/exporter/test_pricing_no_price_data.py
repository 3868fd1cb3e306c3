"""A model genai-prices lists without any price is unpriced; a model it says is free is priced at $0.

genai-prices writes both the same way, as a price with no field set (`ModelPrice()`; it has no explicit
zero prices): `cerebras/qwen-3-coder-480b` (no longer listed by Cerebras), OpenRouter's
`google/lyria-3-pro-preview` and the like, next to OpenRouter's `:free` models, GitHub Copilot (included in
the subscription), Gemma on the Gemini API ("Free of charge") and OpenAI's moderation endpoint. The first
kind was stored at $0 as `priced` and never counted in `llm_unpriced_requests_total`: a paid call that
silently cost nothing.
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
USAGE = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000}

NO_PRICE_DATA = [
    ("cerebras", "qwen-3-coder-480b"),
    ("openrouter", "google/lyria-3-pro-preview"),
    ("openrouter", "stealth/crouton-alpha"),
    ("huggingface/together", "prism-ml/Ternary-Bonsai-27B-gguf"),
]
FREE = [
    ("openrouter", "deepseek/deepseek-chat-v3-0324:free"),
    ("openrouter", "google/gemma-4-31b-it:free"),
    ("github-copilot", "gpt-4o"),
    ("gemini", "gemma-3-27b-it"),
    ("gemini", "gemma-4-31b-it"),
    ("openai", "omni-moderation-latest"),
]


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def post(client: TestClient, calls: list[tuple[str, str]]) -> None:
    events = [
        {"request_id": f"{p} {m}", "timestamp": NOW - 30, "provider": p, "model": m, "usage": USAGE} for p, m in calls
    ]
    assert client.post("/v1/usage", json=events).json()["accepted"] == len(calls)


def cost_sources(client: TestClient) -> dict[str, tuple[str, int]]:
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT request_id, cost_source, cost_nanousd FROM usage_events")).all()
    return {request_id: (source, cost) for request_id, source, cost in rows}


def test_a_model_listed_without_prices_is_counted_unpriced_not_priced_at_zero(client: TestClient) -> None:
    post(client, NO_PRICE_DATA)
    assert cost_sources(client) == {f"{p} {m}": ("unpriced", 0) for p, m in NO_PRICE_DATA}
    metrics = client.get("/metrics").text
    for provider, model in NO_PRICE_DATA:
        assert total(metrics, "llm_unpriced_requests_total", provider=provider, model=model) == 1, model


def test_a_model_genai_prices_says_is_free_stays_priced_at_zero(client: TestClient) -> None:
    post(client, FREE)
    assert cost_sources(client) == {f"{p} {m}": ("priced", 0) for p, m in FREE}
    assert total(client.get("/metrics").text, "llm_unpriced_requests_total") == 0


def test_describe_has_no_price_for_a_model_without_price_data(client: TestClient) -> None:
    book = client.services.prices  # type: ignore[attr-defined]
    assert book.describe("cerebras", "qwen-3-coder-480b", NOW) is None
    assert book.describe("github-copilot", "gpt-4o", NOW) is not None
