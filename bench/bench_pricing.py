"""Pricing throughput: PriceBook.cost_nanousd (cached) against genai_prices.calc_price per call.

Run: .venv/bin/python bench/bench_pricing.py [--events N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from genai_prices import calc_price

from exporter.pricing import PriceBook, to_genai_usage

MODELS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-opus-4-6"),
    ("bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("deepseek", "deepseek-chat"),  # peak / off-peak price twice a day
    ("google", "gemini-2.5-pro"),  # tiered
    ("openrouter", "anthropic/claude-3.5-sonnet"),
    ("groq", "llama-3.3-70b-versatile"),
    ("self-hosted", "llama-internal"),  # unknown: None
]
START = datetime(2025, 7, 1, tzinfo=UTC).timestamp()


def make_events(n: int, seed: int = 7) -> list[tuple[str, str, float, int, int, int, int]]:
    """N calls over one day, time-ordered like a live stream, on a mix of models."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        provider, model = rng.choice(MODELS)
        timestamp = START + 86_400 * i / n
        events.append(
            (
                provider,
                model,
                timestamp,
                rng.randrange(0, 20_000),
                rng.choice((0, 0, rng.randrange(0, 50_000))),
                rng.choice((0, 0, 0, rng.randrange(0, 5_000))),
                rng.randrange(0, 4_000),
            )
        )
    return events


def best_of(repeats: int, run: Callable[[], int]) -> tuple[float, float]:
    """Median and best seconds per call over `repeats` runs of `run` (which returns its call count)."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        calls = run()
        timings.append((time.perf_counter() - start) / calls)
    return statistics.median(timings), min(timings)


def report(label: str, per_call: tuple[float, float]) -> None:
    median, best = per_call
    print(f"{label:<58} {median * 1e6:9.2f} µs/call  {1 / median:>12,.0f} calls/s  (best {best * 1e6:.2f} µs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--raw-events", type=int, default=2_000, help="calls timed for raw calc_price")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    book = PriceBook()
    elapsed_ms = (time.perf_counter() - start) * 1e3
    print(f"PriceBook() construction (loads the bundled price data): {elapsed_ms:.0f} ms")

    events = make_events(args.events)
    cost = book.cost_nanousd
    unpriced = sum(cost(*event) is None for event in events)  # warm every name and period
    print(f"{len(events):,} calls over one day on {len(MODELS)} names ({unpriced:,} unpriced)\n")

    def cached_mix() -> int:
        for event in events:
            cost(*event)
        return len(events)

    hot = ("openai", "gpt-4o-2024-08-06", START, 3000, 1000, 0, 200)

    def cached_one() -> int:
        for _ in range(args.events):
            cost(*hot)
        return args.events

    def loop_only() -> int:
        noop = lambda *a: None  # noqa: E731 - the cost of the loop and the call itself
        for event in events:
            noop(*event)
        return len(events)

    raw_events = [event for event in events if event[0] != "self-hosted"][: args.raw_events]

    def raw_calc_price() -> int:
        for provider, model, timestamp, i, r, w, o in raw_events:
            when = datetime.fromtimestamp(timestamp, UTC)
            calc_price(to_genai_usage(i, r, w, o), model, provider_id=provider, genai_request_timestamp=when)
        return len(raw_events)

    def cold() -> int:
        fresh = PriceBook()
        for provider, model in MODELS:
            fresh.cost_nanousd(provider, model, START, 1, 1, 1, 1)
        return len(MODELS)

    swing = [("openai", "o3", START - 86_400 * 30 * (i % 2), 1000, 0, 0, 100) for i in range(10_000)]

    def period_misses() -> int:
        for event in swing:
            cost(*event)
        return len(swing)

    report("empty loop + call overhead (baseline)", best_of(args.repeats, loop_only))
    cached = best_of(args.repeats, cached_mix)
    report("PriceBook.cost_nanousd, cached, model mix", cached)
    report("PriceBook.cost_nanousd, cached, one model", best_of(args.repeats, cached_one))
    report("PriceBook.cost_nanousd, o3 alternating across a price change", best_of(args.repeats, period_misses))
    report("PriceBook first call per name (resolve + compile)", best_of(3, cold))
    raw = best_of(3, raw_calc_price)
    report("genai_prices.calc_price (incl. Usage + datetime)", raw)
    print(f"\ncached PriceBook is {raw[0] / cached[0]:,.0f}x faster than calc_price per call")


if __name__ == "__main__":
    main()
