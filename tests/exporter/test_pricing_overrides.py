"""Price overrides: exact and glob matches, history by valid_from, rounding, every problem of a bad file listed.

Expected costs are computed by hand from the published per-million-token prices: a price of $P per
million tokens is P x 1000 nano-dollars per token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.pricing import PriceBook, PriceOverride, PriceOverrideError, load_overrides, parse_overrides
from tests.support.paths import DATA as TEST_DATA
from tests.support.pricing import JULY_2025, at

DATA = TEST_DATA / "pricing"


@pytest.fixture(scope="module")
def overridden() -> PriceBook:
    return PriceBook.from_file(DATA / "overrides.yaml")


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
        "prices[1].input_per_m: unknown field (expected one of cache_read_audio_per_mtok, "
        "cache_read_image_per_mtok, cache_read_per_mtok, cache_read_video_per_mtok, cache_write_per_mtok, "
        "file_search_per_thousand, input_audio_per_mtok, input_image_per_mtok, input_per_mtok, input_video_per_mtok, "
        "model, output_audio_per_mtok, output_image_per_mtok, output_per_mtok, output_video_per_mtok, provider, "
        "valid_from, web_search_per_thousand)",
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
        # A price so large (a typo) that a call's cost overflowed the 64-bit column and failed its whole batch.
        (
            "prices:\n  - {provider: a, model: b, input_per_mtok: 100000000000000000000, output_per_mtok: 1}\n",
            "prices[0].input_per_mtok: must be at most 1000 USD per million tokens, got 100000000000000000000",
        ),
        # A date that does not exist: named with its entry, not a traceback out of the YAML loader.
        (
            "prices:\n  - {provider: a, model: b, input_per_mtok: 1, output_per_mtok: 1, valid_from: 2026-13-01}\n",
            "prices[0].valid_from: must be a date (2025-01-01) or an RFC 3339 time, got '2026-13-01'",
        ),
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
