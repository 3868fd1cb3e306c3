"""OpenRouter's usage for Gemini with implicit caching counts the tokens it wrote to the cache as cached too.

Recorded (tests/data/recorded-usage line 699, from pydantic/pydantic-ai's test cassettes, MIT, Copyright
(c) Pydantic Services Inc.): `prompt_tokens` 2168, `cached_tokens` 2161 and `cache_write_tokens` 2161,
`cost` $0.000497. Read literally the cache parts exceed the prompt, and the call was rejected: it
vanished from every total though OpenRouter billed it. Its cost says the 2161 tokens were written
(7 x $0.30/M + 2161 x $0.1133/M = the reported prompt cost), and the reported cost is the call's cost
whatever the split, so it is stored: 7 uncached, 2161 written, at OpenRouter's cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from exporter.events import InvalidEvent
from exporter.normalize import map_usage
from tests.support.helpers import total
from tests.support.paths import RECORDED_USAGE
from tests.support.pricing import ingest_client

NOW = time.time()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    yield from ingest_client(sqlite_url)


def recorded_line(number: int) -> dict:
    return orjson.loads(RECORDED_USAGE.read_bytes().splitlines()[number - 1])


def test_openrouter_gemini_cache_write_is_stored_at_its_billed_cost(client: TestClient) -> None:
    record = recorded_line(699)
    assert record["usage"]["prompt_tokens_details"] == {
        "audio_tokens": 0,
        "cache_write_tokens": 2161,
        "cached_tokens": 2161,
        "video_tokens": 0,
    }
    event = {"request_id": "or-1", "timestamp": NOW - 30, "provider": "openrouter", "model": record["response_model"],
             "usage": record["usage"], "project": "or"}  # fmt: skip
    assert client.post("/v1/usage", json=event).json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    with client.services.store.reading() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            text(
                "SELECT input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, cost_nanousd, cost_source "
                "FROM usage_events WHERE request_id = 'or-1'"
            )
        ).one()
    assert tuple(row) == (7, 0, 2161, 100, 497_013, "supplied")
    metrics = client.get("/metrics").text
    assert total(metrics, "llm_cost_usd_total", project="or") == pytest.approx(0.000497013, abs=1e-12)


def test_the_next_call_reads_the_cache_it_wrote() -> None:
    tokens, cost, _ = map_usage(recorded_line(700)["usage"], "openrouter")
    assert (tokens["input_tokens"], tokens["cache_read_tokens"], tokens["cache_write_tokens"]) == (6, 2161, 0)
    assert cost == 0.00031413


def test_without_a_billed_cost_the_contradiction_is_still_refused() -> None:
    usage = dict(recorded_line(699)["usage"])
    del usage["cost"]
    with pytest.raises(InvalidEvent) as error:
        map_usage(usage, "openrouter")
    assert error.value.field == "usage.prompt_tokens"
