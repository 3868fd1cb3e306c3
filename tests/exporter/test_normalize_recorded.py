"""Real provider usage objects mapped to the canonical event, each checked against its provider's meaning.

`tests/data/recorded-usage/usage_records.jsonl` holds 718 usage objects recorded from real provider
responses (OpenAI, Anthropic, Bedrock, DeepSeek, OpenRouter, Groq, Mistral, Cohere, Gemini, …). They
come from the test cassettes of pydantic/pydantic-ai, MIT licence, Copyright (c) Pydantic Services
Inc.; see `tests/data/recorded-usage/LICENSE`.

`tests/data/normalize/recorded_usage.golden.jsonl` pins the canonical tokens of every one of them;
after a deliberate mapping change, regenerate it with
`LLMCOST_UPDATE_GOLDEN=1 pytest tests/exporter/test_normalize_recorded.py`.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from genai_prices import data_snapshot

from exporter.events import InvalidEvent, UsageEvent, parse_event
from exporter.normalize import to_canonical
from exporter.readers import iter_file_records
from tests.support.normalizing import NOW, tokens_of
from tests.support.paths import DATA as TEST_DATA
from tests.support.paths import RECORDED_USAGE

RECORDED = RECORDED_USAGE
DATA = TEST_DATA / "normalize"
GOLDEN = DATA / "recorded_usage.golden.jsonl"


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
    # Line 698, where OpenRouter reports Gemini's implicit cache writes as both read and written
    # (more cached tokens than the prompt has), is read by its billed cost: see
    # test_normalize_openrouter_overlap.py. No real record is rejected.
    assert rejected == {}
    assert sum(1 for outcome in recorded.values() if outcome.event) == 711


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
            written = details.get("cache_write_tokens") or 0
            if cached + written > usage["prompt_tokens"]:  # line 698: the writes counted as cached too
                cached -= written
            assert (read, write) == (cached, written), index
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
        if index == 698:  # genai-prices reads the overlapping cache counts literally (see above)
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
        (336, "router.huggingface.co", "huggingface", "deepseek-ai/DeepSeek-R1:together", (10, 0, 0, 995, 0), None),
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
            # What else prices the call: web searches (billed per search) and the service tier.
            if outcome.event.web_search_requests:
                row["web_search_requests"] = outcome.event.web_search_requests
            if outcome.event.service_tier:
                row["service_tier"] = outcome.event.service_tier
        lines.append(orjson.dumps(row).decode())
    text = "\n".join(lines) + "\n"
    if os.environ.get("LLMCOST_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
