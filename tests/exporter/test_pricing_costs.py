"""Pricing from the bundled genai-prices data: exact nano-dollar costs, token semantics, dated and tiered
prices, provider names, equal to `calc_price`.

Expected costs are computed by hand from the published per-million-token prices: a price of $P per
million tokens is P x 1000 nano-dollars per token.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers as genai_providers

from exporter.events import usd_to_nanos
from exporter.pricing import PROVIDER_ALIASES, PriceBook, to_genai_usage
from tests.support.pricing import JULY_2025, at


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


# --- token semantics -------------------------------------------------------------------------------


def genai_nanos(usage: Usage, provider: str, model: str, timestamp: float) -> int:
    """The reference: genai_prices.calc_price, uncached, in nano-dollars."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return usd_to_nanos(calc_price(usage, model, provider_id=provider, genai_request_timestamp=when).total_price)


def test_genai_prices_counts_cached_tokens_inside_input_tokens() -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
    # 3000 uncached + 1000 cached input, 200 output; genai-prices wants input_tokens = 4000.
    expected = 3000 * 2500 + 1000 * 1250 + 200 * 10_000
    assert expected == 10_750_000
    by_hand = Usage(input_tokens=4000, cache_read_tokens=1000, output_tokens=200)
    assert genai_nanos(by_hand, "openai", "gpt-4o", JULY_2025) == expected
    converted = to_genai_usage(3000, 1000, 0, 200)
    assert (converted.input_tokens, converted.cache_read_tokens) == (4000, 1000)
    assert genai_nanos(converted, "openai", "gpt-4o", JULY_2025) == expected

    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output. Anthropic reports
    # uncached input_tokens like llmcost, but genai-prices still wants all input in input_tokens.
    expected = 100 * 3000 + 50_000 * 300 + 2000 * 3750 + 800 * 15_000
    by_hand = Usage(input_tokens=52_100, cache_read_tokens=50_000, cache_write_tokens=2000, output_tokens=800)
    assert genai_nanos(by_hand, "anthropic", "claude-sonnet-4-5", JULY_2025) == expected == 34_800_000
    converted = to_genai_usage(100, 50_000, 2000, 800)
    assert genai_nanos(converted, "anthropic", "claude-sonnet-4-5", JULY_2025) == expected


# --- hand-computed costs for real models ----------------------------------------------------------


def test_openai_with_cached_input(book: PriceBook) -> None:
    # Passing uncached input straight through as genai's input_tokens would give 8_250_000.
    assert book.cost_nanousd("openai", "gpt-4o-2024-08-06", JULY_2025, 3000, 1000, 0, 200) == 10_750_000


def test_openai_mini_with_cached_input(book: PriceBook) -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output.
    expected = 1001 * 150 + 333 * 75 + 77 * 600
    assert book.cost_nanousd("openai", "gpt-4o-mini", JULY_2025, 1001, 333, 0, 77) == expected == 221_325


def test_anthropic_with_cache_read_and_write(book: PriceBook) -> None:
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output.
    expected = 100 * 3000 + 50_000 * 300 + 2000 * 3750 + 800 * 15_000
    assert expected == 34_800_000
    cost = book.cost_nanousd("anthropic", "claude-sonnet-4-5-20250929", JULY_2025, 100, 50_000, 2000, 800)
    assert cost == expected


@pytest.mark.parametrize("provider", ["bedrock", "aws", "Bedrock", "amazon_bedrock"])
def test_bedrock_model_id(book: PriceBook, provider: str) -> None:
    # Claude 3.5 Sonnet on Bedrock: $3 input, $0.30 cache read, $3.75 cache write, $15 output.
    expected = 1200 * 3000 + 3000 * 300 + 500 * 3750 + 700 * 15_000
    model = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert book.cost_nanousd(provider, model, JULY_2025, 1200, 3000, 500, 700) == expected == 16_875_000


def test_deepseek_peak_and_off_peak(book: PriceBook) -> None:
    # deepseek-chat: $0.27 / $0.07 cached / $1.10 output from 00:30 to 16:30 UTC, half that off-peak.
    peak = 10_000 * 270 + 20_000 * 70 + 3000 * 1100
    assert peak == 7_400_000
    args = (10_000, 20_000, 0, 3000)
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-01T12:00:00"), *args) == peak
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-01T16:29:59"), *args) == peak
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-01T16:30:00"), *args) == peak // 2
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-01T20:00:00"), *args) == peak // 2
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-02T00:29:59"), *args) == peak // 2
    assert book.cost_nanousd("deepseek", "deepseek-chat", at("2025-07-02T00:30:00"), *args) == peak


def test_price_that_changed_over_time(book: PriceBook) -> None:
    # OpenAI cut o3 from $10/$40 to $2/$8 per million tokens on 2025-06-10.
    before, after = at("2025-06-09T23:59:59"), at("2025-06-10T00:00:00")
    assert book.cost_nanousd("openai", "o3", before, 1000, 0, 0, 1000) == 1000 * 10_000 + 1000 * 40_000
    assert book.cost_nanousd("openai", "o3", after, 1000, 0, 0, 1000) == 1000 * 2000 + 1000 * 8000
    # Interleaved timestamps (a replayed backlog) keep getting the right period.
    for _ in range(3):
        assert book.cost_nanousd("openai", "o3", before, 1, 0, 0, 0) == 10_000
        assert book.cost_nanousd("openai", "o3", after, 1, 0, 0, 0) == 2000


def test_tiered_price_uses_total_input_including_cache(book: PriceBook) -> None:
    # claude-sonnet-4-5 above 200k input tokens: $6 input, $0.60 cache read, $22.50 output, all tokens.
    model = "claude-sonnet-4-5"
    above = 150_000 * 6000 + 60_000 * 600 + 1000 * 22_500
    assert book.cost_nanousd("anthropic", model, JULY_2025, 150_000, 60_000, 0, 1000) == above == 958_500_000
    at_threshold = 140_000 * 3000 + 60_000 * 300 + 1000 * 15_000
    assert book.cost_nanousd("anthropic", model, JULY_2025, 140_000, 60_000, 0, 1000) == at_threshold
    assert book.cost_nanousd("anthropic", model, JULY_2025, 150_000, 0, 0, 1000) == 150_000 * 3000 + 15_000_000


def test_per_request_fee_and_separately_priced_reasoning(book: PriceBook) -> None:
    # Perplexity sonar: $1 input, $1 output and $12 per thousand requests.
    assert book.cost_nanousd("perplexity", "sonar", JULY_2025, 0, 0, 0, 0) == 12_000_000
    # sonar-deep-research: $2 input, $8 output, $3 reasoning; reasoning is part of output_tokens.
    cost = book.cost_nanousd("perplexity", "sonar-deep-research", JULY_2025, 100, 0, 0, 1000, reasoning_tokens=600)
    assert cost == 100 * 2000 + 400 * 8000 + 600 * 3000 == 5_200_000
    assert book.cost_nanousd("perplexity", "sonar-deep-research", JULY_2025, 100, 0, 0, 1000) == 8_200_000


# --- names ------------------------------------------------------------------------------------------


def test_unknown_model_has_no_price(book: PriceBook) -> None:
    assert book.cost_nanousd("openai", "no-such-model", JULY_2025, 10, 0, 0, 10) is None
    assert book.cost_nanousd("self-hosted", "llama-internal", JULY_2025, 10, 0, 0, 10) is None
    assert book.describe("openai", "no-such-model", JULY_2025) is None


def test_known_provider_is_not_second_guessed_by_model_name(book: PriceBook) -> None:
    assert book.cost_nanousd("openai", "claude-sonnet-4-5", JULY_2025, 10, 0, 0, 10) is None


def test_unknown_provider_is_priced_by_model_name(book: PriceBook) -> None:
    expected = book.cost_nanousd("openai", "gpt-4o", JULY_2025, 3000, 1000, 0, 200)
    assert expected == 10_750_000
    assert book.cost_nanousd("my-gateway", "gpt-4o", JULY_2025, 3000, 1000, 0, 200) == expected
    assert book.cost_nanousd("litellm", "openai/gpt-4o", JULY_2025, 3000, 1000, 0, 200) == expected
    assert book.cost_nanousd("openai", "openai/gpt-4o", JULY_2025, 3000, 1000, 0, 200) == expected


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider"),
    [
        ("vertex_ai", "gemini-2.5-flash", "google"),
        ("gemini", "gemini-2.5-flash", "google"),
        ("xai", "grok-4", "x-ai"),
        ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together"),
        ("azure_openai", "gpt-4o", "azure"),
        ("MistralAI", "mistral-large-latest", "mistral"),
        ("cohere_chat", "command-r-plus", "cohere"),
        ("vertex", "claude-sonnet-4@20250514", "google"),
    ],
)
def test_provider_aliases(book: PriceBook, provider: str, model: str, genai_provider: str) -> None:
    mine = book.cost_nanousd(provider, model, JULY_2025, 1234, 0, 0, 567)
    assert mine == genai_nanos(to_genai_usage(1234, 0, 0, 567), genai_provider, model, JULY_2025)
    assert book.describe(provider, model, JULY_2025)["price_provider"] == genai_provider


def test_every_alias_names_a_genai_prices_provider() -> None:
    ids = {provider.id for provider in genai_providers}
    assert set(PROVIDER_ALIASES.values()) <= ids
    assert all(alias == alias.lower() for alias in PROVIDER_ALIASES)


# --- cached results equal calc_price -----------------------------------------------------------------

MODELS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("aws", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("deepseek", "deepseek-chat"),
    ("deepseek", "deepseek-v4-flash"),
    ("google", "gemini-2.5-pro"),
    ("openrouter", "anthropic/claude-3.5-sonnet"),
    ("perplexity", "sonar-deep-research"),
    ("x-ai", "grok-4"),
]


@pytest.mark.parametrize(("provider", "model"), MODELS)
def test_cached_costs_equal_calc_price(book: PriceBook, provider: str, model: str) -> None:
    rng = random.Random(f"{provider}/{model}")
    sizes = [0, 1, 3, 999, 4096, 100_000, 199_999, 200_000, 200_001, 1_000_003]
    for _ in range(300):
        timestamp = rng.uniform(at("2024-01-01T00:00:00"), at("2027-06-01T00:00:00"))
        tokens = [rng.choice(sizes) if rng.random() < 0.5 else rng.randrange(0, 300_000) for _ in range(4)]
        reasoning = rng.randint(0, tokens[3])
        expected = genai_nanos(to_genai_usage(*tokens, reasoning), provider, model, timestamp)
        cost = book.cost_nanousd(provider, model, timestamp, *tokens, reasoning_tokens=reasoning)
        assert cost == expected, (timestamp, tokens, reasoning)


# --- describe -----------------------------------------------------------------------------------------


def test_describe_names_price_source_and_period(book: PriceBook) -> None:
    info = book.describe("openai", "o3", at("2025-07-01T00:00:00"))
    assert info is not None
    assert info["source"] == "genai-prices"
    assert info["price_provider"] == "openai"
    assert info["price_model"] == "o3"
    assert info["usd_per_mtok"] == {
        "input": "2",
        "cache_read": "0.5",
        "cache_write": "2",
        "output": "8",
        "reasoning": "8",
    }
    assert info["valid_from"] == "2025-06-10T00:00:00+00:00"
    assert info["valid_until"] is None
    tiers = book.describe("anthropic", "claude-sonnet-4-5", JULY_2025)["tiers"]
    assert tiers == [
        {
            "when_input_tokens_above": 200_000,
            "usd_per_mtok": {
                "input": "6",
                "cache_read": "0.6",
                "cache_write": "7.5",
                "output": "22.5",
                "reasoning": "22.5",
            },
            "usd_per_request": "0",
        }
    ]


# --- bad input ---------------------------------------------------------------------------------------


def test_non_finite_timestamp_is_an_error(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="finite"):
        book.cost_nanousd("openai", "gpt-4o-mini", float("nan"), 1, 0, 0, 0)
