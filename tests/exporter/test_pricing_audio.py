"""Audio tokens are priced at the audio rate, or the event says plainly that they were not.

Each case posts a provider `usage` object with audio tokens to `POST /v1/usage` and reads the cost back
from `/metrics`, checked against the provider's published price (per million tokens):

- OpenAI `gpt-4o-realtime-preview` (https://platform.openai.com/docs/pricing): text $5 in, $2.50 cached,
  $20 out; audio $40 in, $2.50 cached, $80 out. The Realtime API's `response.done` usage shape.
- OpenAI `gpt-audio` (Chat Completions): text $2.50 in, $10 out; audio $32 in, $64 out.
- Google `gemini-2.5-flash` (https://ai.google.dev/gemini-api/docs/pricing): text $0.30 in, $0.03 cached,
  $2.50 out; audio $1.00 in, $0.10 cached. `usageMetadata` with per-modality token counts.
- OpenAI `gpt-4o-audio-preview`: a real recorded usage object (tests/data/recorded-usage, from
  pydantic/pydantic-ai's test cassettes, MIT, Copyright (c) Pydantic Services Inc.). The price data has
  no audio price for this model: the cost is the text-rate cost and the event says so, until an
  override gives the published audio price ($40 in, $80 out for the 2024-12-17 snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.services import Services
from tests.support.helpers import total
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from ingest_client(db_url)


def post(client: TestClient, event: dict[str, Any]) -> None:
    body = client.post("/v1/usage", json={"timestamp": NOW - 30, **event}).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}


def cost_of(client: TestClient, model: str) -> float:
    return total(client.get("/metrics").text, "llm_cost_usd_total", model=model)


def stored(client: TestClient, request_id: str) -> tuple[Any, ...]:
    """Input, input audio, cache read, cached audio, output, output audio, cost source, price source."""
    services: Services = client.services  # type: ignore[attr-defined]
    with services.store.reading() as conn:
        row = conn.execute(
            text(
                "SELECT input_tokens, cache_read_tokens, output_tokens, cost_source, price_source, meta_json "
                "FROM usage_events WHERE request_id = :r"
            ),
            {"r": request_id},
        ).one()
    audio = orjson.loads(row[5] or "{}")  # the audio parts are kept in metadata
    return (
        row[0],
        audio.get("input_audio_tokens", 0),
        row[1],
        audio.get("cache_read_audio_tokens", 0),
        row[2],
        audio.get("output_audio_tokens", 0),
        row[3],
        row[4],
    )


REALTIME_USAGE = {  # a Realtime API `response.done` usage object
    "total_tokens": 17000,
    "input_tokens": 12000,
    "output_tokens": 5000,
    "input_token_details": {
        "text_tokens": 2000,
        "audio_tokens": 10000,
        "image_tokens": 0,
        "cached_tokens": 4000,
        "cached_tokens_details": {"text_tokens": 1000, "audio_tokens": 3000, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 1000, "audio_tokens": 4000},
}


def test_realtime_audio_tokens_cost_the_published_audio_price(client: TestClient) -> None:
    post(
        client,
        {
            "request_id": "rt",
            "provider": "openai",
            "model": "gpt-4o-realtime-preview-2024-12-17",
            "usage": REALTIME_USAGE,
        },
    )
    # text in 1,000 x $5 + audio in 7,000 x $40 + cached 4,000 x $2.50 + text out 1,000 x $20 + audio out 4,000 x $80
    assert cost_of(client, "gpt-4o-realtime-preview-2024-12-17") == pytest.approx(0.635, abs=1e-9)
    input_tokens, input_audio, cache_read, cache_audio, output, output_audio, source, note = stored(client, "rt")
    assert (input_tokens, input_audio, cache_read, cache_audio, output, output_audio) == (
        8000,
        7000,
        4000,
        3000,
        5000,
        4000,
    )
    assert source == "priced" and "text rate" not in note


def test_chat_completions_audio_in_and_out_cost_the_audio_price(client: TestClient) -> None:
    usage = {
        "prompt_tokens": 30000,
        "completion_tokens": 12000,
        "total_tokens": 42000,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 25000, "text_tokens": 5000, "image_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 10000,
            "text_tokens": 2000,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    post(client, {"request_id": "chat", "provider": "openai", "model": "gpt-audio-2025-08-28", "usage": usage})
    # text in 5,000 x $2.50 + audio in 25,000 x $32 + text out 2,000 x $10 + audio out 10,000 x $64 = $1.4725
    assert cost_of(client, "gpt-audio-2025-08-28") == pytest.approx(1.4725, abs=1e-9)


def test_gemini_audio_modality_counts_cost_the_audio_price(client: TestClient) -> None:
    usage = {
        "promptTokenCount": 100000,
        "candidatesTokenCount": 2000,
        "cachedContentTokenCount": 50000,
        "totalTokenCount": 102000,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 20000}, {"modality": "AUDIO", "tokenCount": 80000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 10000}, {"modality": "AUDIO", "tokenCount": 40000}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 2000}],
    }
    post(client, {"request_id": "gem", "provider": "gemini", "model": "gemini-2.5-flash", "usage": usage})
    # text in 10,000 x $0.30 + audio in 40,000 x $1 + cached text 10,000 x $0.03 + cached audio 40,000 x $0.10
    # + out 2,000 x $2.50 = $0.0523
    assert cost_of(client, "gemini-2.5-flash") == pytest.approx(0.0523, abs=1e-9)
    assert stored(client, "gem")[:6] == (50000, 40000, 50000, 40000, 2000, 0)


def recorded_audio_preview() -> dict[str, Any]:
    for line in RECORDED_USAGE.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["source"].endswith("test_openai/test_audio_as_binary_content_input.yaml#0"):
            return record
    raise AssertionError("recorded gpt-4o-audio-preview usage not found")


def test_audio_without_an_audio_price_is_flagged_not_silently_text_priced(client: TestClient) -> None:
    record = recorded_audio_preview()  # prompt 64 = 44 audio + 20 text, completion 9 text
    post(
        client, {"request_id": "rec", "provider": "openai", "model": record["response_model"], "usage": record["usage"]}
    )
    input_tokens, input_audio, *_rest, source, note = stored(client, "rec")
    assert (input_tokens, input_audio) == (64, 44)
    assert source == "priced"
    assert note.endswith("; input audio at text rate (no audio price)")
    # 64 x $2.50 + 9 x $10 at the text rate: what the price data can say, flagged above.
    assert cost_of(client, record["response_model"]) == pytest.approx(0.00025, abs=1e-12)


def test_an_override_gives_the_missing_audio_price(sqlite_url: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    entry = {
        "provider": "openai",
        "model": "gpt-4o-audio-preview*",
        "input_per_mtok": 2.5,
        "output_per_mtok": 10,
        "input_audio_per_mtok": 40,
        "output_audio_per_mtok": 80,
    }
    prices.write_text(yaml.safe_dump({"prices": [entry]}))
    record = recorded_audio_preview()
    for client in ingest_client(sqlite_url, pricing={"overrides_file": str(prices)}):
        post(
            client,
            {"request_id": "rec", "provider": "openai", "model": record["response_model"], "usage": record["usage"]},
        )
        # 20 text x $2.50 + 44 audio x $40 + 9 text out x $10 = $0.0019
        assert cost_of(client, record["response_model"]) == pytest.approx(0.0019, abs=1e-12)
        assert "text rate" not in stored(client, "rec")[-1]


# --- the canonical fields, and the price book alone ------------------------------------------------------

CANONICAL = {
    "request_id": "c1",
    "timestamp": 1_900_000_000,
    "provider": "openai",
    "model": "gpt-realtime",
    "input_tokens": 1000,
    "input_audio_tokens": 800,
    "cache_read_tokens": 500,
    "cache_read_audio_tokens": 300,
    "output_tokens": 400,
    "output_audio_tokens": 350,
}


def test_canonical_audio_fields_are_read_and_kept_in_metadata() -> None:
    from exporter.canonical_lines import canonical_event
    from exporter.events import parse_event
    from exporter.repricing import stored_media

    # Outside the canonical table: the general path takes them, and keeps them in metadata for reprice.
    assert canonical_event(orjson.dumps(CANONICAL), now=2_000_000_000.0, max_future_skew=300) is None
    event = parse_event(CANONICAL, now=2_000_000_000.0)
    assert (event.input_audio_tokens, event.cache_read_audio_tokens, event.output_audio_tokens) == (800, 300, 350)
    assert stored_media(event.metadata_text)[0] == (800, 300, 350)  # the audio parts


@pytest.mark.parametrize(
    ("part", "whole"),
    [
        ("input_audio_tokens", "input_tokens"),
        ("cache_read_audio_tokens", "cache_read_tokens"),
        ("output_audio_tokens", "output_tokens"),
    ],
)
def test_an_audio_part_larger_than_its_whole_is_rejected(part: str, whole: str) -> None:
    from exporter.events import InvalidEvent, parse_event

    bad = {**CANONICAL, part: CANONICAL[whole] + 1}  # type: ignore[operator]
    with pytest.raises(InvalidEvent, match=f"^{part}: .* cannot exceed {whole}"):
        parse_event(bad, now=2_000_000_000.0)


def test_the_price_book_charges_cached_audio_its_own_rate_and_describes_audio_prices() -> None:
    from exporter.pricing import PriceBook

    book = PriceBook()
    # gpt-realtime-mini: text $0.60 / cached $0.06 / out $2.40; audio $10 / cached $0.30 / out $20.
    cost, source, _ = book.quote("openai", "gpt-realtime-mini", NOW, 1000, 500, 0, 400, 0, 0, (800, 300, 350))
    text_part = 200 * 600 + 200 * 60 + 50 * 2400  # nano-dollars
    audio_part = 800 * 10_000 + 300 * 300 + 350 * 20_000
    assert cost == text_part + audio_part
    assert "text rate" not in source
    prices = book.describe("openai", "gpt-realtime-mini", NOW)
    assert prices is not None
    assert prices["usd_per_mtok"]["input_audio"] == "10"
    assert prices["usd_per_mtok"]["cache_read_audio"] == "0.3"
    assert prices["usd_per_mtok"]["output_audio"] == "20"
    # Without audio the cost is the text cost, and nothing is noted.
    assert book.quote("openai", "gpt-realtime-mini", NOW, 1000, 500, 0, 400)[:2] == (
        1000 * 600 + 500 * 60 + 400 * 2400,
        source,
    )


def test_each_kind_of_audio_charged_the_text_rate_is_named() -> None:
    from exporter.pricing import PriceBook

    book = PriceBook()
    cost, source, _ = book.quote("openai", "gpt-4o-mini-audio-preview", NOW, 100, 0, 0, 50, 0, 0, (60, 0, 40))
    assert cost == 100 * 150 + 50 * 600
    assert source.endswith("; input audio, output audio at text rate (no audio price)")
    assert "input_audio" not in (book.describe("openai", "gpt-4o-mini-audio-preview", NOW) or {})["usd_per_mtok"]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-realtime"),
        ("openai", "gpt-4o-realtime-preview"),
        ("openai", "gpt-audio-mini"),
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-live-2.5-flash"),
        ("openai", "gpt-4o-audio-preview"),
    ],
)
def test_the_price_book_agrees_with_genai_prices_own_arithmetic(provider: str, model: str) -> None:
    from datetime import UTC, datetime

    from exporter.events import usd_to_nanos
    from exporter.pricing import PriceBook, to_genai_usage
    from exporter.pricing.catalog import Catalog

    counts, audio = (12_345, 6_789, 0, 4_321, 0), (10_001, 5_003, 2_007)
    found = Catalog().find(provider, model)
    assert found is not None
    price = found[1].get_prices(datetime.fromtimestamp(NOW, UTC))
    expected = usd_to_nanos(price.calc_price(to_genai_usage(*counts, audio=audio))["total_price"])
    assert PriceBook().cost_nanousd(provider, model, NOW, *counts, audio=audio) == expected


def test_reprice_keeps_audio_prices_and_applies_a_new_audio_override(sqlite_url: str, tmp_path: Path) -> None:
    from exporter.pricing import PriceBook, parse_overrides
    from exporter.repricing import Repricer

    record = recorded_audio_preview()
    for client in ingest_client(sqlite_url):
        post(
            client,
            {"request_id": "rec", "provider": "openai", "model": record["response_model"], "usage": record["usage"]},
        )
        post(
            client,
            {
                "request_id": "rt",
                "provider": "openai",
                "model": "gpt-4o-realtime-preview-2024-12-17",
                "usage": REALTIME_USAGE,
            },
        )
        store = client.services.store  # type: ignore[attr-defined]
        # The same prices again: the audio-priced event keeps its cost.
        assert (
            Repricer(store, PriceBook()).run(0.0).models[("openai", "gpt-4o-realtime-preview-2024-12-17")].changed == 0
        )
        entry = {
            "provider": "openai",
            "model": "gpt-4o-audio-preview*",
            "input_per_mtok": 2.5,
            "output_per_mtok": 10,
            "input_audio_per_mtok": 40,
            "output_audio_per_mtok": 80,
        }
        Repricer(store, PriceBook(parse_overrides([entry]))).run(0.0)
        with store.reading() as conn:
            cost, note = conn.execute(
                text("SELECT cost_nanousd, price_source FROM usage_events WHERE request_id = 'rec'")
            ).one()
        assert (cost, note) == (1_900_000, "price overrides prices[0]")
