"""Canonical events pass through unchanged; provider usage objects (OpenAI, Anthropic, Bedrock, Gemini, DeepSeek,
Cohere, OpenRouter, …) map to canonical token counts and costs, Anthropic streams merged."""

from __future__ import annotations

import pytest

from exporter.events import InvalidEvent, parse_event
from exporter.normalize import map_usage, merge_stream_usage, to_canonical
from tests.support.normalizing import NOW, canonical, tokens_of, usage_event

# --- canonical events: the fast path --------------------------------------------------------------


def test_canonical_event_is_returned_unchanged() -> None:
    event = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "team": "x"}
    assert to_canonical(event) is event
    assert event == {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "team": "x"}


def test_mapping_is_idempotent() -> None:
    raw = {"provider": "openai", "model": "gpt-4o", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    once = to_canonical(raw)
    assert to_canonical(once) is once
    assert "usage" in raw  # the input is not modified


def test_not_an_object_is_left_for_parse_event() -> None:
    for value in ("usage", ["usage"], 3):
        assert to_canonical(value) is value  # type: ignore[arg-type]
        with pytest.raises(InvalidEvent, match="must be a JSON object"):
            parse_event(to_canonical(value), now=NOW)  # type: ignore[arg-type]


# --- provider usage objects -----------------------------------------------------------------------


def test_openai_chat_cached_tokens_are_subtracted_from_prompt() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256},
    }
    assert tokens_of(usage_event(usage)) == (86, 1920, 0, 300, 256)


def test_other_fields_pass_through_and_raw_usage_is_kept() -> None:
    raw = {
        "provider": "openai",
        "model": "gpt-4o",
        "request_id": "r1",
        "project": "search",
        "timestamp": "2025-01-01T00:00:00Z",
        "team": "core",
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        "metadata": {"ticket": "T-1"},
    }
    event = canonical(raw)
    assert (event.request_id, event.project, event.timestamp) == ("r1", "search", 1735689600.0)
    assert event.metadata == {"team": "core", "ticket": "T-1", "usage": raw["usage"]}


def test_xai_reports_reasoning_beside_the_completion() -> None:
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 10,
        "total_tokens": 240,
        "completion_tokens_details": {"reasoning_tokens": 200},
    }
    assert tokens_of(usage_event(usage, "xai")) == (30, 0, 0, 210, 200)
    # The totals give it away even without the provider name, and overrule the name when they
    # show the reasoning already inside the completion.
    assert tokens_of(usage_event(usage, "some-proxy")) == (30, 0, 0, 210, 200)
    included = {**usage, "completion_tokens": 210}
    assert tokens_of(usage_event(included, "xai")) == (30, 0, 0, 210, 200)
    assert tokens_of(usage_event({**usage, "total_tokens": None}, "xai")) == (30, 0, 0, 210, 200)


def test_hidden_thinking_surplus_counts_only_for_google() -> None:
    usage = {"prompt_tokens": 35, "completion_tokens": 12, "total_tokens": 109}
    assert tokens_of(usage_event(usage, "gemini")) == (35, 0, 0, 74, 62)
    assert tokens_of(usage_event(usage, "openai")) == (35, 0, 0, 12, 0)


def test_deepseek_hit_and_miss_must_add_up() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 40,
    }
    with pytest.raises(InvalidEvent) as err:
        usage_event(usage, "deepseek")
    assert err.value.field == "usage.prompt_cache_miss_tokens"


def test_older_litellm_cache_creation_beside_prompt_is_not_subtracted() -> None:
    # Older LiteLLM: prompt_tokens = input + cache reads; cache writes reported apart, Anthropic-style.
    usage = {
        "prompt_tokens": 1803,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 1800},
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 1800,
    }
    assert tokens_of(usage_event(usage, "anthropic")) == (3, 1800, 2000, 7, 0)


def test_responses_api_input_includes_cache_reads_and_writes() -> None:
    usage = {
        "input_tokens": 5000,
        "input_tokens_details": {"cached_tokens": 3000, "cache_write_tokens": 1500},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 600},
        "total_tokens": 5900,
    }
    assert tokens_of(usage_event(usage)) == (500, 3000, 1500, 900, 600)


def test_plain_input_output_usage() -> None:
    assert tokens_of(usage_event({"input_tokens": 12, "output_tokens": 3}, "anthropic")) == (12, 0, 0, 3, 0)


def test_bedrock_converse_input_including_the_cache_is_detected_from_the_total() -> None:
    excluded = {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 100, "totalTokens": 115}
    included = {"inputTokens": 110, "outputTokens": 5, "cacheReadInputTokens": 100, "totalTokens": 115}
    assert tokens_of(usage_event(excluded, "bedrock")) == (10, 100, 0, 5, 0)
    assert tokens_of(usage_event(included, "bedrock")) == (10, 100, 0, 5, 0)


def test_gemini_usage_metadata() -> None:
    usage = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 80,
        "thoughtsTokenCount": 300,
        "toolUsePromptTokenCount": 20,
        "totalTokenCount": 1600,
    }
    assert tokens_of(usage_event(usage, "gemini")) == (220, 1000, 0, 380, 300)
    # A whole generateContent response works too.
    assert tokens_of(usage_event({"usageMetadata": usage, "candidates": []}, "gemini")) == (220, 1000, 0, 380, 300)


# `GenerateContentResponseUsageMetadata` as google-genai's `model_dump(mode="json")` gives it: snake_case, every
# field present (None when unset). The Vertex AI SDK's `to_dict()` spells it the same way.
SDK_USAGE = {
    "cache_tokens_details": [{"modality": "AUDIO", "token_count": 200}],
    "cached_content_token_count": 1000,
    "candidates_token_count": 80,
    "candidates_tokens_details": None,
    "prompt_token_count": 1200,
    "prompt_tokens_details": [{"modality": "TEXT", "token_count": 900}, {"modality": "AUDIO", "token_count": 300}],
    "thoughts_token_count": 300,
    "tool_use_prompt_token_count": 20,
    "tool_use_prompt_tokens_details": None,
    "total_token_count": 1600,
    "traffic_type": None,
}


def test_gemini_usage_metadata_as_googles_python_sdks_dump_it() -> None:
    # Before, it was rejected: "unrecognised usage object (cache_tokens_details, …)".
    event = usage_event(SDK_USAGE, "gemini")
    assert tokens_of(event) == (220, 1000, 0, 380, 300)
    assert (event.input_audio_tokens, event.cache_read_audio_tokens) == (100, 200)
    # A whole response dumped the same way: its model and grounding searches are read too.
    response = {
        "candidates": [{"grounding_metadata": {"web_search_queries": ["a", "b"]}}],
        "model_version": "gemini-3-pro-preview",
        "usage_metadata": SDK_USAGE,
    }
    whole = canonical({"provider": "gemini", "usage": response})
    assert (whole.model, whole.web_search_requests, whole.input_tokens) == ("gemini-3-pro-preview", 2, 220)
    # A problem is named with the key that was sent.
    with pytest.raises(InvalidEvent, match=r"usage\.prompt_token_count"):
        canonical({"provider": "gemini", "model": "m", "usage": {**SDK_USAGE, "prompt_token_count": 10}})


def test_cohere_without_billed_units_uses_processed_tokens() -> None:
    usage = {"tokens": {"input_tokens": 1500, "output_tokens": 40}, "cached_tokens": 1024}
    assert tokens_of(usage_event(usage, "cohere")) == (476, 1024, 0, 40, 0)


# OpenRouter ----------------------------------------------------------------------------------------


def test_openrouter_cost_becomes_cost_usd() -> None:
    usage = {"prompt_tokens": 43, "completion_tokens": 36, "cost": 0.000669, "is_byok": False}
    assert usage_event(usage, "openrouter").cost_nanousd == 669_000


def test_openrouter_byok_cost_adds_the_upstream_bill_exactly() -> None:
    usage = {
        "prompt_tokens": 43,
        "completion_tokens": 36,
        "cost": 0.0000335,
        "is_byok": True,
        "cost_details": {"upstream_inference_cost": 0.00067},
    }
    mapped = to_canonical({"provider": "openrouter", "model": "m", "usage": usage})
    assert mapped["cost_usd"] == "0.0007035"
    assert parse_event(mapped, now=NOW).cost_nanousd == 703_500


def test_a_cost_sent_by_the_caller_wins_over_the_usage_cost() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.5}
    assert usage_event(usage, "openrouter", cost_usd=0.25).cost_nanousd == 250_000_000


# Anthropic streaming and iterations ---------------------------------------------------------------

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "model": "claude-sonnet-4-5-20250929",
        "usage": {
            "input_tokens": 2694,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    },
}
MESSAGE_DELTA = {
    "type": "message_delta",
    "delta": {"stop_reason": "end_turn"},
    "usage": {"input_tokens": 11665, "cache_read_input_tokens": 0, "output_tokens": 186},
}


def test_message_start_event_as_usage_gives_usage_and_model() -> None:
    mapped = to_canonical({"provider": "anthropic", "usage": MESSAGE_START})
    assert mapped["model"] == "claude-sonnet-4-5-20250929"
    assert tokens_of(mapped) == (2694, 0, 0, 1, 0)


def test_message_delta_event_usage_is_complete_on_its_own() -> None:
    assert tokens_of(usage_event(MESSAGE_DELTA, "anthropic")) == (11665, 0, 0, 186, 0)


def test_stream_usage_is_merged_not_summed() -> None:
    old_style_delta = {"output_tokens": 186}
    merged = merge_stream_usage(MESSAGE_START["message"]["usage"], old_style_delta)  # type: ignore[index]
    assert tokens_of(usage_event(merged, "anthropic")) == (2694, 0, 0, 186, 0)
    with pytest.raises(InvalidEvent, match="merge_stream_usage") as err:
        usage_event(old_style_delta, "anthropic")
    assert err.value.field == "usage.input_tokens"


def test_anthropic_iterations_sum_the_requests_own_model() -> None:
    usage = {
        "input_tokens": 181,
        "cache_read_input_tokens": 0,
        "output_tokens": 8,
        "iterations": [
            {"type": "compaction", "input_tokens": 100, "output_tokens": 83, "cache_read_input_tokens": 55096},
            {"type": "advisor_message", "model": "claude-opus-4-8", "input_tokens": 2543, "output_tokens": 18},
            {"type": "message", "input_tokens": 181, "output_tokens": 8, "cache_creation_input_tokens": 10},
        ],
    }
    assert tokens_of(usage_event(usage, "anthropic")) == (281, 55096, 10, 91, 0)
    with pytest.raises(InvalidEvent) as err:
        usage_event({**usage, "iterations": [1]}, "anthropic")
    assert err.value.field == "usage.iterations[0]"


def test_anthropic_cache_writes_from_the_ttl_breakdown() -> None:
    usage = {
        "input_tokens": 3,
        "output_tokens": 5,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 20},
    }
    assert tokens_of(usage_event(usage, "anthropic")) == (3, 0, 120, 5, 0)


def test_map_usage_directly() -> None:
    fields, cost, model = map_usage({"prompt_tokens": 9, "completion_tokens": 1, "cost": 0.01}, "openrouter")
    assert (fields["input_tokens"], fields["output_tokens"], cost, model) == (9, 1, 0.01, None)
