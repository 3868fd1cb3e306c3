"""Image and video tokens are priced at their own rate where the price data has one.

Each case posts a provider `usage` object to `POST /v1/usage` and reads the cost back from `/metrics`,
checked against the provider's published price (per million tokens):

- OpenAI `gpt-image-1` (https://developers.openai.com/api/docs/models/gpt-image-1): text $5 in, image
  $10 in, image $40 out. The Images API usage (`input_tokens_details.text_tokens / image_tokens`).
- OpenAI `gpt-image-1.5`: text $5 in, $10 out; image $8 in, $32 out; with `output_tokens_details`.
- OpenAI `gpt-realtime` (https://developers.openai.com/api/docs/models/gpt-realtime): text $4 in, $0.40
  cached, $16 out; audio $32 in, $0.40 cached, $64 out; image $5 in, $0.50 cached. `response.done` usage.
- Google `gemini-2.5-flash-image` (https://ai.google.dev/gemini-api/docs/pricing): $0.30 in, $2.50
  text out, $30 image out (a 1024x1024 image is 1,290 tokens, $0.039).
- Google `gemini-live-2.5-flash`: text $0.50 in, $2 out; audio $3 in, $12 out; video (and image) $3 in.
- Google `gemini-2.0-flash-exp-image-generation`: genai-prices 0.2.5 prices it as `gemini-2.0-flash`,
  which has no image output price (Google lists $0.039 per generated image, $30 per million tokens):
  the image is charged the text rate and the event says so.
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
from tests.support.pricing import ingest_client

NOW = time.time()
MEDIA = (
    "input_image_tokens",
    "cache_read_image_tokens",
    "output_image_tokens",
    "input_video_tokens",
    "cache_read_video_tokens",
    "output_video_tokens",
)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    yield from ingest_client(db_url)


def post(client: TestClient, event: dict[str, Any]) -> None:
    body = client.post("/v1/usage", json={"timestamp": NOW - 30, **event}).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}


def cost_of(client: TestClient, model: str) -> float:
    return total(client.get("/metrics").text, "llm_cost_usd_total", model=model)


def stored(client: TestClient, request_id: str) -> tuple[dict[str, int], str]:
    """The token counts (image and video parts from metadata, 0s left out) and the price source."""
    services: Services = client.services  # type: ignore[attr-defined]
    with services.store.reading() as conn:
        row = conn.execute(
            text(
                "SELECT input_tokens, cache_read_tokens, output_tokens, price_source, meta_json "
                "FROM usage_events WHERE request_id = :r"
            ),
            {"r": request_id},
        ).one()
    metadata = orjson.loads(row[4] or "{}")
    counts = {"input_tokens": row[0], "cache_read_tokens": row[1], "output_tokens": row[2]}
    counts.update({name: metadata[name] for name in MEDIA if name in metadata})
    return counts, row[3]


IMAGES_EDIT_USAGE = {  # an Images API edit (gpt-image-1): several input images, one 1024x1536 high output
    "total_tokens": 10520,
    "input_tokens": 6360,
    "output_tokens": 4160,
    "input_tokens_details": {"text_tokens": 120, "image_tokens": 6240},
}


def test_gpt_image_1_input_images_cost_the_image_input_price(client: TestClient) -> None:
    post(client, {"request_id": "img", "provider": "openai", "model": "gpt-image-1", "usage": IMAGES_EDIT_USAGE})
    # text in 120 x $5 + image in 6,240 x $10 + out 4,160 x $40 = $0.2294 (was $0.1982: images at $5)
    assert cost_of(client, "gpt-image-1") == pytest.approx(0.2294, abs=1e-9)
    counts, note = stored(client, "img")
    assert counts == {"input_tokens": 6360, "cache_read_tokens": 0, "output_tokens": 4160, "input_image_tokens": 6240}
    assert "text rate" not in note


def test_gpt_image_1_5_output_images_cost_the_image_output_price(client: TestClient) -> None:
    usage = {
        "total_tokens": 5460,
        "input_tokens": 1200,
        "output_tokens": 4260,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 1160},
        "output_tokens_details": {"text_tokens": 100, "image_tokens": 4160},
    }
    post(client, {"request_id": "img15", "provider": "openai", "model": "gpt-image-1.5", "usage": usage})
    # text in 40 x $5 + image in 1,160 x $8 + text out 100 x $10 + image out 4,160 x $32 = $0.1436 (was $0.0486)
    assert cost_of(client, "gpt-image-1.5") == pytest.approx(0.1436, abs=1e-9)


def test_realtime_image_input_costs_the_image_price_cached_or_not(client: TestClient) -> None:
    usage = {  # a Realtime API `response.done` usage: a conversation with screenshots
        "total_tokens": 62000,
        "input_tokens": 60000,
        "output_tokens": 2000,
        "input_token_details": {
            "text_tokens": 2000,
            "audio_tokens": 8000,
            "image_tokens": 50000,
            "cached_tokens": 20000,
            "cached_tokens_details": {"text_tokens": 1000, "audio_tokens": 1000, "image_tokens": 18000},
        },
        "output_token_details": {"text_tokens": 500, "audio_tokens": 1500},
    }
    post(client, {"request_id": "rt", "provider": "openai", "model": "gpt-realtime", "usage": usage})
    # uncached: text 1,000 x $4 + audio 7,000 x $32 + image 32,000 x $5; cached: text 1,000 x $0.40
    # + audio 1,000 x $0.40 + image 18,000 x $0.50; out: text 500 x $16 + audio 1,500 x $64 = $0.5018 (was $0.468)
    assert cost_of(client, "gpt-realtime") == pytest.approx(0.5018, abs=1e-9)
    counts, note = stored(client, "rt")
    assert counts == {
        "input_tokens": 40000,
        "cache_read_tokens": 20000,
        "output_tokens": 2000,
        "input_image_tokens": 32000,
        "cache_read_image_tokens": 18000,
    }
    assert "text rate" not in note


def test_gemini_generated_image_costs_the_image_output_price(client: TestClient) -> None:
    usage = {  # generateContent: edit one input image, answer with a caption and one 1024x1024 image
        "promptTokenCount": 1300,
        "candidatesTokenCount": 1310,
        "totalTokenCount": 2610,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}, {"modality": "IMAGE", "tokenCount": 1290}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 20}, {"modality": "IMAGE", "tokenCount": 1290}],
    }
    post(client, {"request_id": "gem", "provider": "gemini", "model": "gemini-2.5-flash-image", "usage": usage})
    # in 1,300 x $0.30 + text out 20 x $2.50 + image out 1,290 x $30 = $0.03914 (was $0.003665)
    assert cost_of(client, "gemini-2.5-flash-image") == pytest.approx(0.03914, abs=1e-9)
    counts, note = stored(client, "gem")
    assert counts["input_image_tokens"] == 1290 and counts["output_image_tokens"] == 1290
    # Image input at the input price is this model's published price: nothing to note.
    assert "text rate" not in note


def test_gemini_live_video_input_costs_the_video_price(client: TestClient) -> None:
    usage = {
        "promptTokenCount": 30000,
        "candidatesTokenCount": 2000,
        "totalTokenCount": 32000,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 1000},
            {"modality": "AUDIO", "tokenCount": 4000},
            {"modality": "VIDEO", "tokenCount": 25000},
        ],
        "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 2000}],
    }
    post(client, {"request_id": "live", "provider": "gemini", "model": "gemini-live-2.5-flash", "usage": usage})
    # text 1,000 x $0.50 + audio 4,000 x $3 + video 25,000 x $3 + audio out 2,000 x $12 = $0.1115 (was $0.049)
    assert cost_of(client, "gemini-live-2.5-flash") == pytest.approx(0.1115, abs=1e-9)
    assert stored(client, "live")[0]["input_video_tokens"] == 25000


GEMINI_2_IMAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 1290,
    "totalTokenCount": 1302,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
}
GEMINI_2_MODEL = "gemini-2.0-flash-exp-image-generation"


def test_a_generated_image_without_an_image_price_is_flagged(client: TestClient) -> None:
    post(client, {"request_id": "g2", "provider": "gemini", "model": GEMINI_2_MODEL, "usage": GEMINI_2_IMAGE})
    # 12 x $0.10 + 1,290 x $0.40 at the text rate: what the price data can say, flagged.
    assert cost_of(client, GEMINI_2_MODEL) == pytest.approx(0.0005172, abs=1e-12)
    counts, note = stored(client, "g2")
    assert counts["output_image_tokens"] == 1290
    assert note.endswith("; output image at text rate (no image price)")


def test_image_input_at_the_input_price_is_not_flagged(client: TestClient) -> None:
    # Gemini 2.5 Flash has one input price for text, image and video (and its own for audio).
    usage = {
        "promptTokenCount": 1300,
        "candidatesTokenCount": 40,
        "totalTokenCount": 1340,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}, {"modality": "IMAGE", "tokenCount": 1290}],
    }
    post(client, {"request_id": "see", "provider": "gemini", "model": "gemini-2.5-flash", "usage": usage})
    assert cost_of(client, "gemini-2.5-flash") == pytest.approx((1300 * 0.30 + 40 * 2.50) / 1e6, abs=1e-12)
    assert "text rate" not in stored(client, "see")[1]


def test_an_override_gives_the_missing_image_price(sqlite_url: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    entry = {
        "provider": "gemini",
        "model": "gemini-2.0-flash-exp-image-generation",
        "input_per_mtok": 0.10,
        "output_per_mtok": 0.40,
        "output_image_per_mtok": 30,
    }
    prices.write_text(yaml.safe_dump({"prices": [entry]}))
    for client in ingest_client(sqlite_url, pricing={"overrides_file": str(prices)}):
        post(client, {"request_id": "g2", "provider": "gemini", "model": GEMINI_2_MODEL, "usage": GEMINI_2_IMAGE})
        # 12 x $0.10 + 1,290 x $30 = $0.0387012
        assert cost_of(client, GEMINI_2_MODEL) == pytest.approx(0.0387012, abs=1e-12)
        assert stored(client, "g2")[1] == f"{prices} prices[0]"


# --- the canonical fields, and the price book alone ------------------------------------------------------

CANONICAL = {
    "request_id": "c1",
    "timestamp": 1_900_000_000,
    "provider": "openai",
    "model": "gpt-realtime",
    "input_tokens": 1000,
    "input_image_tokens": 800,
    "cache_read_tokens": 500,
    "cache_read_image_tokens": 300,
    "output_tokens": 400,
    "output_image_tokens": 350,
    "input_video_tokens": 100,
    "cache_read_video_tokens": 100,
    "output_video_tokens": 50,
}


def test_canonical_image_and_video_fields_are_read_and_kept_in_metadata() -> None:
    from exporter.events import parse_event
    from exporter.repricing import stored_media

    event = parse_event(CANONICAL, now=2_000_000_000.0)
    assert (event.input_image_tokens, event.cache_read_image_tokens, event.output_image_tokens) == (800, 300, 350)
    assert (event.input_video_tokens, event.cache_read_video_tokens, event.output_video_tokens) == (100, 100, 50)
    assert stored_media(event.metadata_text) == ((0, 0, 0), (800, 300, 350), (100, 100, 50))


@pytest.mark.parametrize(
    ("part", "whole"),
    [
        ("input_image_tokens", "input_tokens"),
        ("cache_read_image_tokens", "cache_read_tokens"),
        ("output_video_tokens", "output_tokens"),
    ],
)
def test_an_image_or_video_part_larger_than_its_whole_is_rejected(part: str, whole: str) -> None:
    from exporter.events import InvalidEvent, parse_event

    bad = {**CANONICAL, part: CANONICAL[whole] + 1}  # type: ignore[operator]
    with pytest.raises(InvalidEvent, match=f"^{part}: .* cannot exceed {whole}"):
        parse_event(bad, now=2_000_000_000.0)


def test_the_parts_of_one_whole_cannot_exceed_it_together() -> None:
    from exporter.events import InvalidEvent, parse_event

    bad = {**CANONICAL, "input_image_tokens": 600, "input_video_tokens": 500}
    with pytest.raises(InvalidEvent, match=r"^input_video_tokens: \(500\) plus the 600 .* cannot exceed input_tokens"):
        parse_event(bad, now=2_000_000_000.0)


def test_the_price_book_describes_image_and_video_prices() -> None:
    from exporter.pricing import PriceBook

    book = PriceBook()
    realtime = book.describe("openai", "gpt-realtime-mini", NOW)
    assert realtime is not None
    assert realtime["usd_per_mtok"]["input_image"] == "0.8"
    assert realtime["usd_per_mtok"]["cache_read_image"] == "0.08"
    live = book.describe("gemini", "gemini-live-2.5-flash", NOW)
    assert live is not None and live["usd_per_mtok"]["input_video"] == "3"
    assert "output_image" not in live["usd_per_mtok"]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-realtime"),
        ("openai", "gpt-realtime-mini"),
        ("openai", "gpt-image-1"),
        ("openai", "gpt-image-1.5"),
        ("gemini", "gemini-2.5-flash-image"),
        ("gemini", "gemini-live-2.5-flash"),
        ("gemini", "gemini-omni-flash-preview"),
        ("gemini", "gemini-2.5-flash"),
        ("openai", "gpt-4o"),
    ],
)
def test_the_price_book_agrees_with_genai_prices_own_arithmetic(provider: str, model: str) -> None:
    from datetime import UTC, datetime

    from exporter.events import usd_to_nanos
    from exporter.pricing import PriceBook, to_genai_usage
    from exporter.pricing.catalog import Catalog

    counts = (22_345, 16_789, 0, 14_321, 0)
    media = {"audio": (1_001, 503, 207), "image": (10_001, 5_003, 2_007), "video": (3_001, 1_003, 4_007)}
    found = Catalog().find(provider, model)
    assert found is not None
    price = found[1].get_prices(datetime.fromtimestamp(NOW, UTC))
    expected = usd_to_nanos(price.calc_price(to_genai_usage(*counts, **media))["total_price"])
    assert PriceBook().cost_nanousd(provider, model, NOW, *counts, **media) == expected


def test_reprice_keeps_image_prices_and_applies_a_new_image_override(sqlite_url: str) -> None:
    from exporter.pricing import PriceBook, parse_overrides
    from exporter.repricing import Repricer

    for client in ingest_client(sqlite_url):
        post(client, {"request_id": "img", "provider": "openai", "model": "gpt-image-1", "usage": IMAGES_EDIT_USAGE})
        post(client, {"request_id": "g2", "provider": "gemini", "model": GEMINI_2_MODEL, "usage": GEMINI_2_IMAGE})
        store = client.services.store  # type: ignore[attr-defined]
        # The same prices again: the image-priced event keeps its cost.
        assert Repricer(store, PriceBook()).run(0.0).models[("openai", "gpt-image-1")].changed == 0
        entry = {
            "provider": "gemini",
            "model": GEMINI_2_MODEL,
            "input_per_mtok": 0.10,
            "output_per_mtok": 0.40,
            "output_image_per_mtok": 30,
        }
        Repricer(store, PriceBook(parse_overrides([entry]))).run(0.0)
        with store.reading() as conn:
            cost, note = conn.execute(
                text("SELECT cost_nanousd, price_source FROM usage_events WHERE request_id = 'g2'")
            ).one()
        assert (cost, note) == (38_701_200, "price overrides prices[0]")
