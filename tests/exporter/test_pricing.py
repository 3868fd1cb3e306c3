"""Pricing: exact nano-dollar costs, token semantics, dated and tiered prices, overrides, the cache.

Expected costs are computed by hand from the published per-million-token prices: a price of $P per
million tokens is P x 1000 nano-dollars per token.
"""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price, update_prices
from genai_prices import data_snapshot as genai_snapshot
from genai_prices.data import providers as genai_providers
from genai_prices.data_snapshot import DataSnapshot

from exporter.events import usd_to_nanos
from exporter.pricing import (
    PROVIDER_ALIASES,
    PriceBook,
    PriceOverride,
    PriceOverrideError,
    load_overrides,
    parse_overrides,
    to_genai_usage,
)
from exporter.pricing.tariff import compile_rates, divide_half_even, rates_cost
from tests.support.paths import DATA as TEST_DATA

DATA = TEST_DATA / "pricing"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


JULY_2025 = at("2025-07-01T12:00:00")


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


@pytest.fixture(scope="module")
def overridden() -> PriceBook:
    return PriceBook.from_file(DATA / "overrides.yaml")


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


# --- overrides ----------------------------------------------------------------------------------------


def test_override_exact_match(overridden: PriceBook) -> None:
    # $0.20 input, $0.02 cache read, $0.25 cache write, $0.40 output.
    cost = overridden.cost_nanousd("self-hosted", "llama-3.1-70b-internal", JULY_2025, 1000, 2000, 3000, 4000)
    assert cost == 1000 * 200 + 2000 * 20 + 3000 * 250 + 4000 * 400
    assert overridden.cost_nanousd("Self-Hosted", "LLAMA-3.1-70B-Internal", JULY_2025, 1, 0, 0, 0) == 200
    assert overridden.cost_nanousd("other", "llama-3.1-70b-internal", JULY_2025, 1, 0, 0, 0) is None


def test_override_glob_with_cache_prices_defaulting_to_input(overridden: PriceBook) -> None:
    model = "ft:gpt-4o-2024-08-06:acme::abc123"
    cost = overridden.cost_nanousd("openai", model, JULY_2025, 1000, 100, 10, 500)
    assert cost == 1110 * 3750 + 500 * 15_000
    info = overridden.describe("openai", model, JULY_2025)
    assert info["source"] == "override"
    assert info["source_detail"].endswith("overrides.yaml prices[1]")
    assert info["override_model"] == "ft:gpt-4o*"


def test_override_history_by_valid_from(overridden: PriceBook) -> None:
    def cost(when: str) -> int | None:
        return overridden.cost_nanousd("openai", "gpt-4o", at(when), 1000, 1000, 0, 1000)

    # Before the first valid_from the bundled genai-prices price applies: $2.50 / $1.25 / $10.
    assert cost("2024-06-01T00:00:00") == cost("2024-12-31T23:59:59") == 2_500_000 + 1_250_000 + 10_000_000
    assert cost("2025-01-01T00:00:00") == cost("2025-07-01T11:59:59") == 2_000_000 + 1_000_000 + 8_000_000
    assert cost("2025-07-01T12:00:00") == cost("2026-01-01T00:00:00") == 1_800_000 + 900_000 + 7_200_000
    info = overridden.describe("openai", "gpt-4o", at("2025-03-01T00:00:00"))
    assert (info["valid_from"], info["valid_until"]) == (
        "2025-01-01T00:00:00+00:00",
        "2025-07-01T12:00:00+00:00",
    )


def test_fractional_nano_dollar_prices_round_half_even(overridden: PriceBook) -> None:
    # $0.0375/M input = 37.5 nano-dollars a token; $0.0001/M output = 0.1 nano-dollars a token.
    cost = overridden.cost_nanousd
    assert [cost("anyone", "tiny-1", JULY_2025, n, 0, 0, 0) for n in (1, 2, 3, 5)] == [38, 75, 112, 188]
    assert [cost("anyone", "tiny-1", JULY_2025, 0, 0, 0, n) for n in (4, 5, 6, 15, 25)] == [0, 0, 1, 2, 2]
    # Rounded once, at the end: 37.5 + 1.5 = 39 (rounding each part would give 38 + 2).
    assert cost("anyone", "tiny-1", JULY_2025, 1, 0, 0, 15) == 39
    assert cost("anyone", "tiny-1", JULY_2025, 3, 0, 0, 5) == 113


def test_first_matching_pattern_wins_and_overrides_beat_genai() -> None:
    overrides = parse_overrides(
        [
            {"provider": "openai", "model": "gpt-4o*", "input_per_mtok": 1, "output_per_mtok": 1},
            {"provider": "*", "model": "*", "input_per_mtok": 9, "output_per_mtok": 9},
        ]
    )
    book = PriceBook(overrides)
    assert book.cost_nanousd("openai", "gpt-4o-mini", JULY_2025, 1, 0, 0, 1) == 2000
    assert book.cost_nanousd("anthropic", "claude-sonnet-4-5", JULY_2025, 1, 0, 0, 1) == 18_000


def test_override_objects_can_be_built_directly() -> None:
    from decimal import Decimal

    book = PriceBook([PriceOverride("acme", "m", Decimal("1.5"), Decimal("3"))])
    assert book.cost_nanousd("acme", "m", JULY_2025, 2, 0, 0, 1) == 6000


def test_invalid_override_file_lists_every_problem() -> None:
    with pytest.raises(PriceOverrideError) as caught:
        load_overrides(DATA / "invalid.yaml")
    problems = caught.value.problems
    assert problems == [
        "pricez: unknown top-level key (expected `prices`)",
        "prices[0].input_per_mtok: is required",
        "prices[0].output_per_mtok: must be a finite number >= 0, got -1",
        "prices[1].input_per_m: unknown field (expected one of cache_read_per_mtok, cache_write_per_mtok, "
        "input_per_mtok, model, output_per_mtok, provider, valid_from)",
        "prices[1].model: must be a non-empty string, got ''",
        "prices[2]: must be a mapping, got str",
        "prices[3].cache_read_per_mtok: is not a number: 'abc'",
        "prices[3].valid_from: must be a date (2025-01-01) or an RFC 3339 time, got 'yesterday'",
        "prices[5]: same provider, model and valid_from as prices[4]",
        "prices[6].provider: must be a non-empty string, got 42",
        "prices[6].input_per_mtok: must be a number (USD per million tokens), got bool",
    ]
    message = str(caught.value)
    assert "invalid.yaml: 11 problems in price overrides" in message
    assert all(problem in message for problem in problems)
    with pytest.raises(PriceOverrideError):
        PriceBook.from_file(DATA / "invalid.yaml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("prices: {a: 1}\n", "prices: must be a list of entries, got dict"),
        ("- 1\n", "the file must be a mapping with a `prices` list, got list"),
        ("prices: [\n", "not valid YAML"),
    ],
)
def test_malformed_override_files(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceOverrideError, match="problem") as caught:
        load_overrides(path)
    assert caught.value.problems[0].startswith(problem)


def test_missing_or_empty_override_file(tmp_path: Path) -> None:
    with pytest.raises(PriceOverrideError, match="cannot read the file"):
        load_overrides(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_overrides(tmp_path / "empty.yaml") == []
    assert PriceBook.from_file(None).cost_nanousd("openai", "gpt-4o", JULY_2025, 1, 0, 0, 0) == 2500


# --- cache ----------------------------------------------------------------------------------------------


def test_cache_is_bounded_and_keeps_recent_names() -> None:
    book = PriceBook(cache_size=50)
    for i in range(1000):
        assert book.cost_nanousd("self-hosted", f"model-{i}", JULY_2025, 1, 0, 0, 1) is None
        assert book.cost_nanousd("openai", "gpt-4o", JULY_2025, 1, 0, 0, 0) == 2500
    assert book.cache_info() == {"entries": 50, "max_entries": 50}
    assert ("openai", "gpt-4o") in book._entries  # the hot name was never evicted
    assert ("self-hosted", "model-0") not in book._entries


def test_non_finite_timestamp_is_an_error(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="finite"):
        book.cost_nanousd("openai", "gpt-4o-mini", float("nan"), 1, 0, 0, 0)


# --- offline ----------------------------------------------------------------------------------------------


def test_prices_never_come_from_the_network_or_the_process_wide_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(update_prices.UpdatePrices, "fetch", no_network)
    # As if something else in the process had installed downloaded prices: llmcost must ignore them.
    monkeypatch.setattr(genai_snapshot, "_custom_snapshot", DataSnapshot(providers=[], from_auto_update=True))
    book = PriceBook()
    assert book.cost_nanousd("openai", "gpt-4o", JULY_2025, 3000, 1000, 0, 200) == 10_750_000
    assert "bundled" in book.describe("openai", "gpt-4o", JULY_2025)["source_detail"]
    assert update_prices._shared_updater.thread is None


def test_explicit_snapshot_is_used() -> None:
    openai_only = [provider for provider in genai_providers if provider.id == "openai"]
    book = PriceBook(snapshot=DataSnapshot(providers=openai_only, from_auto_update=False))
    assert book.cost_nanousd("openai", "gpt-4o", JULY_2025, 1, 0, 0, 0) == 2500
    assert book.cost_nanousd("anthropic", "claude-sonnet-4-5", JULY_2025, 1, 0, 0, 0) is None


# --- exact arithmetic -------------------------------------------------------------------------------------


def test_rates_are_exact_integers_and_round_once() -> None:
    from decimal import Decimal

    # $0.0028 per million tokens = 2.8 nano-dollars a token: stored as 28 with scale 10.
    rates = compile_rates(Decimal(0), [Decimal("0.0000000028"), *[Decimal(0)] * 4])
    assert rates == (0, 28, 0, 0, 0, 0, 10)
    assert rates_cost(rates, 5, 0, 0, 0, 0) == 14
    assert rates_cost(rates, 1_000_000_000_000, 0, 0, 0, 0) == 2_800_000_000_000
    assert [divide_half_even(n, 10) for n in (5, 15, 25, -5, 14, 16)] == [0, 2, 2, 0, 1, 2]
