"""Gemini's Grounding with Google Search is billed apart from tokens, and llmcost charges it.

Google's Gemini API pricing (https://ai.google.dev/gemini-api/docs/pricing): Gemini 2.5 Flash bills
grounding $35 per 1,000 grounded prompts (after 1,500 free a day), Gemini 3 Pro $14 per 1,000 search
queries (after 5,000 free prompts a month, billed from 2026-01-05); genai-prices carries both as
`web_searches_kcount`. The usage object does not count grounding; the response's
`candidates[].groundingMetadata.webSearchQueries` does. A grounded call was charged its tokens only.

The responses follow the documented `GenerateContentResponse` shape
(https://ai.google.dev/api/generate-content#generatecontentresponse).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.events import usd_to_nanos
from exporter.pricing import PriceBook
from exporter.repricing import Repricer
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def response(model: str, queries: list[str]) -> dict[str, Any]:
    grounding = {
        "webSearchQueries": queries,
        "searchEntryPoint": {"renderedContent": "<div>secret</div>"},
        "groundingChunks": [{"web": {"uri": "https://example.com/secret", "title": "secret"}}],
    }
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "secret answer"}]},
                "finishReason": "STOP",
                **({"groundingMetadata": grounding} if queries else {}),
            }
        ],
        "usageMetadata": {"promptTokenCount": 10_000, "candidatesTokenCount": 1_000, "totalTokenCount": 11_000},
        "modelVersion": model,
        "responseId": "secret-id",
    }


def post(client: TestClient, request_id: str, body: dict[str, Any], **fields: Any) -> None:
    event = {"request_id": request_id, "timestamp": NOW - 30, "provider": "gemini", "usage": body, **fields}
    assert client.post("/v1/usage", json=event).json() == {"accepted": 1, "duplicates": 0, "rejected": []}


def costs(client: TestClient) -> dict[str, int]:
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        return dict(conn.execute(text("SELECT request_id, cost_nanousd FROM usage_events")).all())  # type: ignore[arg-type]


def test_grounded_gemini_calls_are_charged_per_prompt_or_per_query(client: TestClient) -> None:
    post(client, "flash", response("gemini-2.5-flash", ["secret one", "secret two"]), model="gemini-2.5-flash")
    post(client, "pro3", response("gemini-3-pro-preview", ["secret one", "secret two"]), model="gemini-3-pro-preview")
    # Without a `model`, the response's `modelVersion` names it (it was rejected: model is required).
    post(client, "ungrounded", response("gemini-2.5-flash", []))
    # 2.5 Flash: 10,000 x $0.30/M + 1,000 x $2.50/M = $0.0055, + one grounded prompt $0.035.
    flash = Decimal(10_000) * Decimal("0.3") / 10**6 + Decimal(1_000) * Decimal("2.5") / 10**6
    # 3 Pro: 10,000 x $2/M + 1,000 x $12/M = $0.032, + two search queries x $0.014.
    pro3 = Decimal(10_000) * 2 / 10**6 + Decimal(1_000) * 12 / 10**6
    assert costs(client) == {
        "flash": usd_to_nanos(flash + Decimal("0.035")),
        "pro3": usd_to_nanos(pro3 + 2 * Decimal("0.014")),
        "ungrounded": usd_to_nanos(flash),  # the tool offered but no search run: not billed
    }
    assert costs(client) == {"flash": 40_500_000, "pro3": 60_000_000, "ungrounded": 5_500_000}
    # Nothing of the response's content or queries is kept; llmcost reprice gives the same figures.
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        kept = " ".join(row[0] for row in conn.execute(text("SELECT meta_json FROM usage_events")))
    assert "secret" not in kept
    store = client.services.store  # type: ignore[attr-defined]
    report = Repricer(store, PriceBook()).run(0.0)
    assert sum(model.changed for model in report.models.values()) == 0
