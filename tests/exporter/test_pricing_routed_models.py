"""Model ids as routers and resellers send them are priced at the price of the provider that served them.

The Hugging Face router bills the price of the inference provider that served the call (it passes
provider prices through); genai-prices carries those as providers of their own (`huggingface_together`,
`huggingface_novita`, …). The router is told which one by the model id's suffix (`model:novita`) or by
the URL path (`router.huggingface.co/together/v1/chat/completions`); both came out unpriced. The
recorded usage objects below are real responses (tests/data/recorded-usage, from pydantic/pydantic-ai's
test cassettes, MIT, Copyright (c) Pydantic Services Inc.).

Vertex AI's versioned ids (`gemini-2.0-flash-001`) are matched by genai-prices itself: pinned here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from exporter.events import usd_to_nanos
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client
from tests.support.stored import stored_events

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def cost_of(client: TestClient, request_id: str) -> int:
    from sqlalchemy import text

    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        return int(
            conn.execute(
                text("SELECT cost_nanousd FROM usage_events WHERE request_id = :r AND cost_source = 'priced'"),
                {"r": request_id},
            ).scalar_one()
        )


def test_recorded_hugging_face_router_calls_are_priced_at_the_serving_providers_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcost.cli import main

    lines = [line for line in RECORDED_USAGE.read_bytes().splitlines() if b'"router.huggingface.co"' in line]
    recorded = [orjson.loads(line) for line in lines]
    path = tmp_path / "hf.jsonl"
    path.write_bytes(b"\n".join(lines))
    db = f"sqlite:///{tmp_path / 'llmcost.db'}"
    assert main(["ingest", "--db", db, str(path)]) == 0
    capsys.readouterr()
    stored = list(stored_events(db).values())
    assert len(stored) == len(recorded) == 6
    unpriced = [event["model"] for event in stored if event["cost_source"] != "priced"]
    # genai-prices 0.2.5 has no Hugging Face price for Llama 4 Scout through Together: left unpriced, not guessed.
    assert unpriced == ["meta-llama/Llama-4-Scout-17B-16E-Instruct:together"]
    # router.huggingface.co/together/v1/…: DeepSeek-R1 at Together's $3 in / $7 out per million
    # (https://www.together.ai/pricing); 10 in, 995 out.
    r1 = next(e for e in stored if e["input_tokens"] == 10 and e["output_tokens"] == 995)
    assert r1["model"] == "deepseek-ai/DeepSeek-R1:together"
    assert r1["cost_nanousd"] == usd_to_nanos(Decimal(10) * 3 / 10**6 + Decimal(995) * 7 / 10**6) == 6_995_000


def test_a_hugging_face_model_suffix_names_the_provider_whose_price_applies(client: TestClient) -> None:
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000}
    for request_id, provider, model in (
        ("suffix", "huggingface", "meta-llama/Llama-3.1-8B-Instruct:novita"),
        ("prefix", "huggingface", "novita/meta-llama/Llama-3.1-8B-Instruct"),
        ("both", "huggingface/novita", "meta-llama/Llama-3.1-8B-Instruct"),
        ("auto", "huggingface", "meta-llama/Llama-3.1-8B-Instruct"),
    ):
        body = {"request_id": request_id, "timestamp": NOW - 30, "provider": provider, "model": model, "usage": usage}
        assert client.post("/v1/usage", json=body).json()["accepted"] == 1
    # Novita through the router: $0.02 in / $0.05 out per million (https://novita.ai/pricing).
    for request_id in ("suffix", "prefix", "both"):
        assert cost_of(client, request_id) == 70_000_000
    # Without a provider the router picks one itself: which price applies is unknown, so it stays unpriced.
    with pytest.raises(Exception, match="No row"):
        cost_of(client, "auto")


@pytest.mark.parametrize(
    ("model", "expected_nanousd"),
    [
        # Google's published Gemini prices per million: 2.0 Flash $0.10 in / $0.40 out; 1.5 Pro $1.25 / $5
        # up to 128k input (https://cloud.google.com/vertex-ai/generative-ai/pricing).
        ("gemini-2.0-flash-001", 10_000 * 100 + 1_000 * 400),
        ("gemini-1.5-pro-002", 10_000 * 1_250 + 1_000 * 5_000),
    ],
)
def test_vertex_versioned_model_ids_are_priced_as_their_model(
    client: TestClient, model: str, expected_nanousd: int
) -> None:
    usage = {"promptTokenCount": 10_000, "candidatesTokenCount": 1_000, "totalTokenCount": 11_000}
    body = {"request_id": model, "timestamp": NOW - 30, "provider": "vertex_ai", "model": model, "usage": usage}
    assert client.post("/v1/usage", json=body).json()["accepted"] == 1
    assert cost_of(client, model) == expected_nanousd
