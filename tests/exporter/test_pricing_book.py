"""The price book itself: a bounded cache, prices only from the bundled (or a given) snapshot and never the
network, and exact integer arithmetic rounded once."""

from __future__ import annotations

import socket

import pytest
from genai_prices import data_snapshot as genai_snapshot
from genai_prices import update_prices
from genai_prices.data import providers as genai_providers
from genai_prices.data_snapshot import DataSnapshot

from exporter.pricing import PriceBook
from exporter.pricing.tariff import compile_rates, divide_half_even, rates_cost
from tests.support.pricing import JULY_2025

# --- cache ----------------------------------------------------------------------------------------------


def test_cache_is_bounded_and_keeps_recent_names() -> None:
    book = PriceBook(cache_size=50)
    for i in range(1000):
        assert book.cost_nanousd("self-hosted", f"model-{i}", JULY_2025, 1, 0, 0, 1) is None
        assert book.cost_nanousd("openai", "gpt-4o", JULY_2025, 1, 0, 0, 0) == 2500
    assert book.cache_info() == {"entries": 50, "max_entries": 50}
    assert ("openai", "gpt-4o", "") in book._entries  # the hot name was never evicted
    assert ("self-hosted", "model-0", "") not in book._entries


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
    assert rates == (0, 28, 0, 0, 0, 0, *[0] * 9, 0, 0, 0, 10)  # nine media extras; web, file search; citation; scale
    assert rates_cost(rates, 5, 0, 0, 0, 0) == 14
    assert rates_cost(rates, 1_000_000_000_000, 0, 0, 0, 0) == 2_800_000_000_000
    assert [divide_half_even(n, 10) for n in (5, 15, 25, -5, 14, 16)] == [0, 2, 2, 0, 1, 2]
