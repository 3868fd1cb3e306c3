"""LiteLLM records (the StandardLoggingPayload and spend-log rows) mapped to the canonical event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.events import InvalidEvent, SkippedRecord
from exporter.normalize import to_canonical
from exporter.readers import iter_file_records
from tests.support.normalizing import canonical, tokens_of
from tests.support.paths import DATA as TEST_DATA

DATA = TEST_DATA / "normalize"


def litellm_rows(name: str) -> list[dict[str, Any]]:
    return [record for _, record in iter_file_records(DATA / name, "litellm")]  # type: ignore[misc]


def test_litellm_standard_logging_payload() -> None:
    payload = litellm_rows("litellm_standard_logging.jsonl")[0]
    event = canonical(payload)
    assert (event.request_id, event.provider, event.model) == ("chatcmpl-7f3c1e", "anthropic", "claude-sonnet-4-5")
    # usage_object: prompt 2100 includes 1800 cache reads and 200 cache writes.
    assert tokens_of(event) == (100, 1800, 200, 210, 50)
    assert event.cost_nanousd == 12_345_600
    assert (event.timestamp, event.latency_ms, event.status) == (1735689601.25, 1250.0, "success")
    assert (event.project, event.user, event.service) == ("search", "customer-17", "")
    assert event.metadata is not None
    assert event.metadata["key_alias"] == "search-backend"
    stored = orjson.dumps(event.metadata).decode()
    for secret in ("secret prompt", "secret answer", "10.0.0.7", "88dc28d0"):
        assert secret not in stored  # prompts, answers, client IPs and key hashes stay out


@pytest.mark.parametrize(
    ("api_base", "kept"),
    [
        # Google AI Studio takes its API key in the URL: LiteLLM's Gemini calls go to `…:generateContent?key=…`.
        (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSyD-0123",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?key=[REDACTED]",
        ),
        ("https://proxy-user:proxy-pw-0123@llm-proxy.internal/v1", "https://[REDACTED]@llm-proxy.internal/v1"),
        ("https://api.anthropic.com/v1/messages", "https://api.anthropic.com/v1/messages"),
    ],
)
def test_litellm_api_base_is_kept_without_its_credentials(api_base: str, kept: str) -> None:
    # `api_base` is kept in the metadata to tell deployments apart; the store held the key in it as sent.
    payload = {**litellm_rows("litellm_standard_logging.jsonl")[0], "api_base": api_base}
    event = canonical(payload)
    assert event.metadata is not None and event.metadata["api_base"] == kept
    stored = orjson.dumps(event.metadata).decode()
    assert "AIzaSyD-0123" not in stored and "proxy-pw-0123" not in stored


def test_litellm_failure_and_cache_hit() -> None:
    _, failure, cache_hit = litellm_rows("litellm_standard_logging.jsonl")
    event = canonical(failure)
    assert (event.status, event.user, event.project, event.cost_nanousd) == ("error", "bob", "search", 0)
    event = canonical(cache_hit)
    assert tokens_of(event) == (0, 0, 0, 0, 0)  # served from LiteLLM's cache: no provider tokens
    assert (event.project, event.user) == ("checkout", "customer-9")  # the project wins over the team
    assert event.metadata is not None and event.metadata["cache_hit"] is True


def proxy_logged(name: str) -> dict[str, Any]:
    """The StandardLoggingPayload the real proxy logged for one request (tests/data/litellm-proxy/)."""
    logged = orjson.loads((TEST_DATA / "litellm-proxy" / "logged_calls.json").read_bytes())
    payload: dict[str, Any] = logged[name]["standard_logging_object"]
    return payload


@pytest.mark.parametrize("name", ["wrong_key", "unknown_model"])
def test_a_request_the_proxy_refused_before_any_provider_is_skipped(name: str) -> None:
    with pytest.raises(SkippedRecord) as skipped:
        to_canonical(proxy_logged(name))
    assert skipped.value.reason == "reached_no_provider"


def test_a_failure_that_names_a_provider_or_spent_something_is_a_call() -> None:
    """A provider's 429 names it; a payload of no provider that carries tokens or a cost is not thrown away."""
    assert to_canonical(proxy_logged("provider_rate_limited"))["provider"] == "openai"
    refused = proxy_logged("wrong_key")
    assert to_canonical({**refused, "prompt_tokens": 12, "total_tokens": 12})["status"] == "error"
    assert to_canonical({**refused, "response_cost": 0.002})["cost_usd"] == 0.002
    assert to_canonical({**refused, "status": "success"})["status"] == "success"


def test_litellm_spend_logs_rows() -> None:
    first, second = litellm_rows("litellm_spend_logs.json")
    event = canonical(first)
    assert (event.request_id, event.provider, event.model) == ("chatcmpl-1a2b3c", "openai", "gpt-4o-mini")
    assert tokens_of(event) == (176, 1024, 0, 100, 0)  # additional_usage_values carries the cache hits
    assert (event.cost_nanousd, event.latency_ms, event.timestamp) == (420_000, 1500.0, 1735689601.5)
    assert (event.project, event.user, event.status) == ("data-platform", "alice", "success")
    # metadata exported as a JSON string; naive datetimes; provider only in the model prefix.
    event = canonical(second)
    assert (event.provider, event.project, event.user, event.status) == ("bedrock", "support", "customer-3", "error")
    assert (event.timestamp, event.latency_ms) == (1735689662.25, 2250.0)
    assert tokens_of(event) == (5000, 0, 0, 12, 0)


def test_litellm_bad_values_name_the_field() -> None:
    row = litellm_rows("litellm_spend_logs.json")[0]
    with pytest.raises(InvalidEvent) as err:
        to_canonical({**row, "metadata": "{not json"})
    assert err.value.field == "metadata"
    with pytest.raises(InvalidEvent) as err:
        to_canonical({**row, "prompt_tokens": -3, "metadata": {}})
    assert err.value.field == "record.prompt_tokens"
    payload = litellm_rows("litellm_standard_logging.jsonl")[0]
    usage = {**payload["hidden_params"]["usage_object"], "prompt_tokens": 100}
    with pytest.raises(InvalidEvent) as err:
        to_canonical({**payload, "hidden_params": {"usage_object": usage}})
    assert err.value.field == "hidden_params.usage_object.prompt_tokens"


def test_litellm_cost_it_could_not_compute_is_not_a_price() -> None:
    payload = litellm_rows("litellm_standard_logging.jsonl")[0]
    unpriced = {**payload, "response_cost": 0.0, "response_cost_failure_debug_info": {"error_str": "not mapped"}}
    assert "cost_usd" not in to_canonical(unpriced)  # llmcost prices it, or counts it as unpriced
    assert to_canonical({**payload, "response_cost": 0.0})["cost_usd"] == 0.0  # a real 0 (a free model) stays


def test_litellm_routing_prefix_of_the_provider_is_not_part_of_the_model() -> None:
    payload = litellm_rows("litellm_standard_logging.jsonl")[0]
    event = to_canonical({**payload, "model": "anthropic/claude-sonnet-4-5", "custom_llm_provider": "anthropic"})
    assert (event["provider"], event["model"]) == ("anthropic", "claude-sonnet-4-5")
    event = to_canonical({**payload, "model": "anthropic/claude-sonnet-4.5", "custom_llm_provider": "openrouter"})
    assert (event["provider"], event["model"]) == ("openrouter", "anthropic/claude-sonnet-4.5")


def test_litellm_bedrock_api_route_is_not_part_of_the_model() -> None:
    payload = {**litellm_rows("litellm_standard_logging.jsonl")[0], "custom_llm_provider": "bedrock"}
    sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    for logged in (f"converse/{sonnet}", f"bedrock/converse/{sonnet}", f"invoke/{sonnet}", f"converse_like/{sonnet}"):
        assert to_canonical({**payload, "model": logged})["model"] == sonnet, logged
    imported = "llama/arn:aws:bedrock:us-east-1:123456789012:imported-model/r4c4kewx2s0n"  # names how it is called
    assert to_canonical({**payload, "model": f"invoke/{imported}"})["model"] == imported
    assert to_canonical({**payload, "model": "converse/x", "custom_llm_provider": "openai"})["model"] == "converse/x"


def test_litellm_one_hour_cache_writes_more_than_the_writes_are_rejected_naming_the_field() -> None:
    """The 1-hour part of LiteLLM's cache write split is read (tests/e2e: through the callback); a part
    larger than the writes it belongs to is not a usage llmcost can price, and says where it is wrong."""
    payload = litellm_rows("litellm_standard_logging.jsonl")[0]
    usage = payload["hidden_params"]["usage_object"]
    details = {**usage["prompt_tokens_details"], "cache_creation_token_details": {"ephemeral_1h_input_tokens": 150}}
    split = {**payload, "hidden_params": {"usage_object": {**usage, "prompt_tokens_details": details}}}
    assert to_canonical(split)["cache_write_1h_tokens"] == 150
    details["cache_creation_token_details"] = {"ephemeral_1h_input_tokens": 201}  # of 200 writes
    with pytest.raises(InvalidEvent) as err:
        to_canonical(split)
    assert err.value.field == (
        "hidden_params.usage_object.prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens"
    )
