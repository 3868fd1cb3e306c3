"""Every input form mapped to the canonical event, checked against real provider usage objects.

`tests/data/recorded-usage/usage_records.jsonl` holds 718 usage objects recorded from real provider
responses (OpenAI, Anthropic, Bedrock, DeepSeek, OpenRouter, Groq, Mistral, Cohere, Gemini, …). They
come from the test cassettes of pydantic/pydantic-ai, MIT licence, Copyright (c) Pydantic Services
Inc.; see `tests/data/recorded-usage/LICENSE`.

`tests/data/normalize/recorded_usage.golden.jsonl` pins the canonical tokens of every one of them;
after a deliberate mapping change, regenerate it with `LLMCOST_UPDATE_GOLDEN=1 pytest tests/exporter/test_normalize.py`.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from genai_prices import data_snapshot

from exporter.events import TOKEN_FIELDS, InvalidEvent, UsageEvent, parse_event
from exporter.normalize import map_usage, merge_stream_usage, to_canonical
from exporter.readers import iter_file_records
from tests.support.paths import DATA as TEST_DATA
from tests.support.paths import RECORDED_USAGE

NOW = 2_000_000_000.0
RECORDED = RECORDED_USAGE
DATA = TEST_DATA / "normalize"
GOLDEN = DATA / "recorded_usage.golden.jsonl"


def tokens_of(event: UsageEvent | dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, cache_read, cache_write, output, reasoning) of an event or canonical dict."""
    if isinstance(event, UsageEvent):
        return tuple(getattr(event, name) for name in TOKEN_FIELDS)  # type: ignore[return-value]
    return tuple(event.get(name, 0) for name in TOKEN_FIELDS)  # type: ignore[return-value]


def canonical(raw: dict[str, Any]) -> UsageEvent:
    return parse_event(to_canonical(raw), now=NOW)


# --- the recorded usage objects -------------------------------------------------------------------


class Outcome:
    """One recorded line: its raw record and either its canonical dict + event or the rejection."""

    def __init__(self, raw: dict[str, Any], result: dict[str, Any] | InvalidEvent) -> None:
        self.raw = raw
        self.usage: dict[str, Any] = raw["usage"]
        self.error: InvalidEvent | None = None
        self.event: UsageEvent | None = None
        if isinstance(result, InvalidEvent):
            self.error = result
            return
        try:
            self.canonical = to_canonical(result)
            self.event = parse_event(self.canonical, now=NOW)
        except InvalidEvent as exc:
            self.error = exc
            return
        # The usage actually mapped: for a merged Anthropic stream, message_start + message_delta.
        self.usage = self.canonical["metadata"]["usage"]


@pytest.fixture(scope="module")
def recorded() -> dict[int, Outcome]:
    raws = [orjson.loads(line) for line in RECORDED.read_bytes().splitlines()]
    return {index: Outcome(raws[index], record) for index, record in iter_file_records(RECORDED, "openai-usage")}


def test_every_recorded_line_is_read(recorded: dict[int, Outcome]) -> None:
    raws = RECORDED.read_bytes().splitlines()
    assert len(raws) == 718
    # The seven Anthropic streams recorded as message_start + message_delta become one call each.
    deltas = {i for i, line in enumerate(raws) if orjson.loads(line)["object"] == "message_delta"}
    assert len(deltas) == 7
    assert set(recorded) | deltas == set(range(718))
    assert not set(recorded) & deltas


def test_every_recorded_usage_is_valid_or_rejected_with_a_named_field(recorded: dict[int, Outcome]) -> None:
    rejected = {index: outcome.error for index, outcome in recorded.items() if outcome.error}
    assert all(error.field and error.reason for error in rejected.values())
    # The only inconsistent record: OpenRouter reports Gemini's implicit cache hits as both read
    # and written, more cached tokens than the prompt has.
    assert list(rejected) == [698]
    assert rejected[698].field == "usage.prompt_tokens"
    assert "cached_tokens (2161)" in rejected[698].reason
    assert sum(1 for outcome in recorded.values() if outcome.event) == 710


def _family(outcome: Outcome) -> str:
    usage, host = outcome.usage, outcome.raw["host"]
    if "inputTokens" in usage:
        return "bedrock-converse"
    if "billed_units" in usage:
        return "cohere"
    if "prompt_cache_hit_tokens" in usage:
        return "deepseek-chat"
    if "prompt_tokens" in usage:
        return "gemini-openai-compat" if "googleapis" in host else "openai-chat"
    if "input_tokens_details" in usage:
        return "openai-responses"
    if "input_tokens" in usage:
        return "anthropic"
    return "embeddings"


def test_recorded_token_partition_per_family(recorded: dict[int, Outcome]) -> None:
    families: dict[str, int] = {}
    for index, outcome in recorded.items():
        if outcome.event is None:
            continue
        usage, event = outcome.usage, outcome.event
        family = _family(outcome)
        families[family] = families.get(family, 0) + 1
        inp, read, write, out, reasoning = tokens_of(event)
        assert min(inp, read, write, out, reasoning) >= 0, index
        assert reasoning <= out, index
        if family == "openai-chat":
            details = usage.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") or usage.get("num_cached_tokens") or usage.get("cached_tokens") or 0
            assert inp + read + write == usage["prompt_tokens"], index
            assert (read, write) == (cached, details.get("cache_write_tokens") or 0), index
            assert out == usage["completion_tokens"], index
            assert reasoning == ((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0), index
        elif family == "deepseek-chat":
            assert (inp, read) == (usage["prompt_cache_miss_tokens"], usage["prompt_cache_hit_tokens"]), index
            assert inp + read == usage["prompt_tokens"], index
        elif family == "openai-responses":
            details = usage["input_tokens_details"]
            assert inp + read + write == usage["input_tokens"], index
            assert read == details.get("cached_tokens", 0), index
            assert out == usage["output_tokens"], index
            assert reasoning == usage["output_tokens_details"]["reasoning_tokens"], index
        elif family == "anthropic" and "iterations" not in usage:
            assert inp == usage["input_tokens"], index  # Anthropic's input already excludes the cache
            assert read == usage.get("cache_read_input_tokens", 0), index
            assert write == usage.get("cache_creation_input_tokens", 0), index
            assert out == usage["output_tokens"], index
            assert reasoning == (usage.get("output_tokens_details") or {}).get("thinking_tokens", 0), index
        elif family == "bedrock-converse":
            assert inp == usage["inputTokens"], index
            assert inp + read + write + out == usage["totalTokens"], index
        elif family == "cohere":
            assert (inp, out) == (usage["billed_units"]["input_tokens"], usage["billed_units"]["output_tokens"])
        elif family == "gemini-openai-compat":
            assert inp + out == usage["total_tokens"], index  # hidden thinking counted as output
        elif family == "embeddings":
            assert inp == usage["total_tokens"], index
    assert families.keys() >= {
        "openai-chat",
        "openai-responses",
        "anthropic",
        "bedrock-converse",
        "deepseek-chat",
        "cohere",
        "gemini-openai-compat",
        "embeddings",
    }


# genai-prices' own extractors for the same shapes, as an independent reading of each record: its
# `input_tokens` is the whole input (cached included), ours is the uncached part.
_GENAI_PRICES_FLAVOURS = {
    ("api.openai.com", "chat.completion"): ("openai", "chat"),
    ("api.openai.com", "response"): ("openai", "responses"),
    ("api.anthropic.com", "message"): ("anthropic", "default"),
    ("api.deepseek.com", "chat.completion"): ("deepseek", "chat"),
    ("bedrock-runtime.us-east-1.amazonaws.com", None): ("aws", "default"),
    ("openrouter.ai", "chat.completion"): ("openrouter", "chat"),
}


def test_recorded_usage_agrees_with_genai_prices_extractors(recorded: dict[int, Outcome]) -> None:
    snapshot = data_snapshot.get_snapshot()
    compared = 0
    for index, outcome in recorded.items():
        flavour = _GENAI_PRICES_FLAVOURS.get((outcome.raw["host"], outcome.raw["object"]))
        if outcome.event is None or flavour is None or "iterations" in outcome.usage:
            continue
        provider = snapshot.find_provider(None, flavour[0], None)
        _, usage = provider.extract_usage({"usage": outcome.usage}, api_flavor=flavour[1])
        inp, read, write, out, _ = tokens_of(outcome.event)
        assert inp + read + write == usage.input_tokens, index
        assert read == (usage.cache_read_tokens or 0), index
        assert write == (usage.cache_write_tokens or 0), index
        assert out == usage.output_tokens, index
        compared += 1
    assert compared > 400


@pytest.mark.parametrize(
    ("line", "host", "provider", "model", "expected", "cost"),
    [
        # Anthropic: input excludes the cache; thinking is part of output.
        (0, "api.anthropic.com", "anthropic", "claude-sonnet-4-5-20250929", (48, 0, 0, 42, 0), None),
        (1, "api.anthropic.com", "anthropic", "claude-sonnet-4-5-20250929", (107, 0, 0, 31, 24), None),
        (8, "api.anthropic.com", "anthropic", "claude-sonnet-4-6", (4, 8845, 6, 193, 0), None),
        # Anthropic compaction, streamed: message_start + message_delta merged, the compaction
        # iteration (left out of the top-level counts) added.
        (181, "api.anthropic.com", "anthropic", "claude-sonnet-4-6", (281, 55096, 0, 91, 0), None),
        # Advisor tool: the advisor's iteration runs another model and is not counted here.
        (171, "api.anthropic.com", "anthropic", "claude-sonnet-5", (2417, 0, 0, 133, 55), None),
        # Bedrock InvokeModel returns Anthropic's usage.
        (
            175,
            "bedrock-runtime.eu-central-1.amazonaws.com",
            "bedrock",
            "claude-haiku-4-5-20251001",
            (3, 9511, 1956, 44, 0),
            None,
        ),
        # Bedrock Converse: inputTokens excludes the cache (totalTokens adds all four).
        (
            155,
            "bedrock-runtime.us-east-1.amazonaws.com",
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            (433, 2752, 0, 16, 0),
            None,
        ),
        (
            256,
            "bedrock-runtime.us-east-1.amazonaws.com",
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            (3, 0, 1712, 227, 0),
            None,
        ),
        (48, "bedrock-runtime.us-east-1.amazonaws.com", "bedrock", "us.amazon.nova-micro-v1:0", (25, 0, 0, 4, 0), None),
        # OpenAI Chat Completions: completion includes reasoning; prompt includes cache writes.
        (51, "api.openai.com", "openai", "o3-mini-2025-01-31", (31, 0, 0, 467, 448), None),
        (541, "api.openai.com", "openai", "gpt-5.6-sol", (8, 0, 4012, 4, 0), None),
        # OpenAI Responses: input includes cached tokens.
        (553, "api.openai.com", "openai", "gpt-4o-2024-08-06", (325, 1024, 0, 10, 0), None),
        (568, "api.openai.com", "openai", "gpt-5-2025-08-07", (1053, 1920, 0, 707, 512), None),
        (298, "bedrock-mantle.us-east-1.api.aws", "bedrock", "openai.gpt-5.6-luna", (2, 0, 86, 14, 0), None),
        # DeepSeek: hit / miss; and its Responses endpoint.
        (315, "api.deepseek.com", "deepseek", "deepseek-v4-flash", (51, 512, 0, 116, 60), None),
        (319, "api.deepseek.com", "deepseek", "deepseek-v4-flash", (110, 256, 0, 63, 18), None),
        # OpenRouter: OpenAI-shaped, prompt includes cache reads and writes, carries its cost.
        (692, "openrouter.ai", "openrouter", "anthropic/claude-4.6-sonnet-20260217", (3, 0, 2569, 63, 0), 0.01058775),
        (693, "openrouter.ai", "openrouter", "anthropic/claude-4.6-sonnet-20260217", (1, 2569, 79, 100, 0), 0.00256995),
        (542, "openrouter.ai", "openrouter", "openai/gpt-5.6-sol", (8, 0, 4012, 5, 0), 0.025265),
        # Groq, Mistral (num_cached_tokens), Hugging Face router (top-level cached_tokens).
        (334, "api.groq.com", "groq", "openai/gpt-oss-120b", (80, 256, 0, 96, 59), None),
        (364, "api.mistral.ai", "mistral", "mistral-medium-latest", (32, 32, 0, 6, 0), None),
        (336, "router.huggingface.co", "huggingface", "deepseek-ai/DeepSeek-R1", (10, 0, 0, 995, 0), None),
        # Gemini's OpenAI-compatible endpoint: thinking only in total_tokens.
        (508, "generativelanguage.googleapis.com", "gemini", "gemini-2.5-pro-preview-05-06", (35, 0, 0, 74, 62), None),
        # Cohere bills billed_units; Voyage embeddings only have total_tokens.
        (311, "api.cohere.com", "cohere", "command-r7b-12-2024", (2406, 0, 0, 2, 0), None),
        (34, "api.voyageai.com", "voyage", "voyage-4", (3, 0, 0, 0, 0), None),
    ],
)
def test_recorded_exact_values(
    recorded: dict[int, Outcome],
    line: int,
    host: str,
    provider: str,
    model: str,
    expected: tuple[int, ...],
    cost: float | None,
) -> None:
    outcome = recorded[line]
    assert outcome.raw["host"] == host
    assert outcome.event is not None, outcome.error
    assert (outcome.event.provider, outcome.event.model) == (provider, model)
    assert tokens_of(outcome.event) == expected
    assert outcome.canonical.get("cost_usd") == cost


def test_recorded_golden(recorded: dict[int, Outcome]) -> None:
    lines = []
    for index, outcome in sorted(recorded.items()):
        if outcome.event is None:
            assert outcome.error is not None
            row: dict[str, Any] = {"line": index, "error": str(outcome.error)}
        else:
            row = {"line": index, "provider": outcome.event.provider, "model": outcome.event.model}
            row["tokens"] = list(tokens_of(outcome.event))
            if outcome.event.cost_nanousd is not None:
                row["cost_nanousd"] = outcome.event.cost_nanousd
        lines.append(orjson.dumps(row).decode())
    text = "\n".join(lines) + "\n"
    if os.environ.get("LLMCOST_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


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


def usage_event(usage: Any, provider: str = "openai", **fields: Any) -> UsageEvent:
    return canonical({"provider": provider, "model": "m", "usage": usage, **fields})


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


# malformed usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "field", "reason"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 1}, "usage.prompt_tokens", "must be >= 0"),
        ({"prompt_tokens": "12", "completion_tokens": 1}, "usage.prompt_tokens", "got str"),
        ({"prompt_tokens": 12.5, "completion_tokens": 1}, "usage.prompt_tokens", "whole number"),
        ({"prompt_tokens": True, "completion_tokens": 1}, "usage.prompt_tokens", "got bool"),
        (
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
            "usage.prompt_tokens",
            "smaller than the cached tokens",
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": "lots"},
            "usage.prompt_tokens_details",
            "must be an object",
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 6}},
            "usage.completion_tokens_details.reasoning_tokens",
            "exceeds",
        ),
        (
            {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 20}, "output_tokens": 1},
            "usage.input_tokens",
            "smaller than the cached tokens",
        ),
        (
            {"input_tokens": 1, "output_tokens": 2, "output_tokens_details": {"thinking_tokens": 3}},
            "usage.output_tokens_details.thinking_tokens",
            "exceeds",
        ),
        ({"inputTokens": -1, "outputTokens": 2}, "usage.inputTokens", "must be >= 0"),
        ({"input_tokens": 1, "cache_read_input_tokens": 2, "input_tokens_details": {}}, "usage", "mixes"),
        ({"tokens_in": 1}, "usage", "unrecognised usage object"),
        ({}, "usage", "is empty"),
        ("10 tokens", "usage", "must be an object"),
        ([1, 2], "usage", "must be an object"),
        ({"prompt_tokens": 1, "cost": "0.1"}, "usage.cost", "must be a number"),
    ],
)
def test_malformed_usage_is_rejected_naming_the_field(usage: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        usage_event(usage)
    assert err.value.field == field
    assert reason in err.value.reason


def test_usage_cannot_be_combined_with_token_fields() -> None:
    with pytest.raises(InvalidEvent) as err:
        usage_event({"prompt_tokens": 1}, input_tokens=1)
    assert err.value.field == "usage"
    assert "input_tokens" in err.value.reason


def test_usage_without_provider_is_rejected_by_parse_event() -> None:
    with pytest.raises(InvalidEvent) as err:
        canonical({"model": "m", "usage": {"prompt_tokens": 1}})
    assert err.value.field == "provider"


# --- LiteLLM --------------------------------------------------------------------------------------


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


def test_litellm_failure_and_cache_hit() -> None:
    _, failure, cache_hit = litellm_rows("litellm_standard_logging.jsonl")
    event = canonical(failure)
    assert (event.status, event.user, event.project, event.cost_nanousd) == ("error", "bob", "search", 0)
    event = canonical(cache_hit)
    assert tokens_of(event) == (0, 0, 0, 0, 0)  # served from LiteLLM's cache: no provider tokens
    assert (event.project, event.user) == ("checkout", "customer-9")  # the project wins over the team
    assert event.metadata is not None and event.metadata["cache_hit"] is True


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


# --- OpenTelemetry --------------------------------------------------------------------------------


def test_otel_current_attribute_names() -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.id": "msg_01",
        # Per the conventions input_tokens includes both cache counts.
        "gen_ai.usage.input_tokens": 12_000,
        "gen_ai.usage.cache_read.input_tokens": 10_000,
        "gen_ai.usage.cache_creation.input_tokens": 1_500,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.input.messages": '[{"role": "user"}]',
        "user.id": "u-7",
    }
    mapped = to_canonical(attrs)
    event = parse_event(mapped, now=NOW)
    assert (event.provider, event.model, event.request_id, event.user) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "msg_01",
        "u-7",
    )
    assert tokens_of(event) == (500, 10_000, 1_500, 300, 0)
    assert "gen_ai.input.messages" not in orjson.dumps(event.metadata).decode()


def test_otel_deprecated_attribute_names() -> None:
    attrs = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 100,
        "gen_ai.usage.completion_tokens": 20,
    }
    event = canonical(attrs)
    assert (event.provider, event.model) == ("openai", "gpt-4o")
    assert tokens_of(event) == (100, 0, 0, 20, 0)


def test_otel_provider_names_use_llmcost_vocabulary() -> None:
    for otel_name, name in [("aws.bedrock", "bedrock"), ("gcp.vertex_ai", "vertex_ai"), ("az.ai.openai", "azure")]:
        event = canonical({"gen_ai.provider.name": otel_name, "gen_ai.request.model": "m"})
        assert event.provider == name


def test_otel_otlp_list_form_span_record() -> None:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1735689600000000000",
        "endTimeUnixNano": "1735689601250000000",
        "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1349"}},
            {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": 1024}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
            {"key": "gen_ai.usage.reasoning.output_tokens", "value": {"intValue": "4"}},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
        ],
        "status": {"code": 2},
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
    }
    event = canonical(span)
    assert event.request_id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (event.timestamp, event.latency_ms) == (1735689601.25, 1250.0)
    assert (event.status, event.service) == ("error", "checkout")
    assert tokens_of(event) == (325, 1024, 0, 10, 4)
    assert event.metadata is not None and event.metadata["trace_id"] == "5b8efff798038103d269b633813fc60c"


def test_otel_sdk_json_span() -> None:
    span = {
        "name": "chat",
        "context": {"trace_id": "0xabc", "span_id": "0xdef"},
        "end_time": "2025-01-01T00:00:02.000000Z",
        "status": {"status_code": "ERROR"},
        "attributes": {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3},
    }
    event = canonical(span)
    assert (event.request_id, event.timestamp, event.status) == ("0xabc-0xdef", 1735689602.0, "error")


def test_otel_trace_id_alone_is_not_a_request_id() -> None:
    mapped = to_canonical({"traceId": "t1", "attributes": {"gen_ai.system": "openai", "gen_ai.request.model": "m"}})
    assert "request_id" not in mapped


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 20}, "gen_ai.usage.input_tokens"),
        ({"gen_ai.usage.input_tokens": -1}, "gen_ai.usage.input_tokens"),
        ({"gen_ai.usage.output_tokens": "many"}, "gen_ai.usage.output_tokens"),
        (
            {"gen_ai.usage.output_tokens": 5, "gen_ai.usage.reasoning.output_tokens": 6},
            "gen_ai.usage.reasoning.output_tokens",
        ),
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10}, "gen_ai.operation.name"),
    ],
)
def test_otel_bad_spans_are_rejected_naming_the_attribute(attrs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        to_canonical({"gen_ai.provider.name": "openai", "gen_ai.request.model": "m", **attrs})
    assert err.value.field == field


def test_otel_bad_attribute_list() -> None:
    with pytest.raises(InvalidEvent) as err:
        to_canonical({"attributes": [{"value": {"intValue": "1"}}]})
    assert err.value.field == "attributes[0]"
