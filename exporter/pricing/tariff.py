"""Compiled prices: exact integer rates, so pricing a call is a dot product and one rounding.

A `Rates` tuple holds, for one price, what a request and each canonical token kind cost in
nano-dollars multiplied by `scale` (a power of ten chosen so every rate is a whole number: a price of
$0.0028 per million tokens is 2.8 nano-dollars per token, stored as 28 with scale 10). The cost of a
call is `per_request + sum(rate * tokens)`, divided by `scale` once, rounded half-even to the nano-dollar.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Rates = tuple[int, int, int, int, int, int, int]
"""(per_request, input, cache_read, cache_write, output, reasoning, scale) in nano-dollars * scale.

`reasoning` is the price of a reasoning token *on top of* `output` (usually 0), because canonical
`output_tokens` already include reasoning tokens.
"""

TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")


def compile_rates(per_request_usd: Decimal, per_token_usd: Sequence[Decimal]) -> Rates:
    """Exact integer rates from USD per request and USD per token for the five `TOKEN_KINDS`."""
    nanos = [value.scaleb(9) for value in (per_request_usd, *per_token_usd)]
    digits = max((-int(value.normalize().as_tuple().exponent) for value in nanos if value), default=0)
    digits = max(digits, 0)
    scaled = [value.scaleb(digits) for value in nanos]
    if any(value != value.to_integral_value() for value in scaled):
        raise ArithmeticError(f"price is not exactly representable: {nanos}")
    per_request, input_, cache_read, cache_write, output, reasoning = (int(value) for value in scaled)
    return (per_request, input_, cache_read, cache_write, output, reasoning, 10**digits)


def divide_half_even(total: int, scale: int) -> int:
    """`total / scale` rounded to the nearest integer, ties to even (the rule `usd_to_nanos` uses)."""
    quotient, remainder = divmod(total, scale)
    twice = 2 * remainder
    if twice > scale or (twice == scale and quotient & 1):
        quotient += 1
    return quotient


def rates_cost(rates: Rates, input_tokens: int, cache_read: int, cache_write: int, output: int, reasoning: int) -> int:
    """Cost in nano-dollars of one call at `rates` (the readable form of `PriceBook`'s inlined loop)."""
    per_request, r_in, r_read, r_write, r_out, r_reason, scale = rates
    total = (
        per_request
        + r_in * input_tokens
        + r_read * cache_read
        + r_write * cache_write
        + r_out * output
        + r_reason * reasoning
    )
    return total if scale == 1 else divide_half_even(total, scale)


def usd_per_mtok(rates: Rates) -> dict[str, str]:
    """Return the rates as exact decimal strings in USD per million tokens (reasoning: its full price)."""
    scale = rates[6]
    digits = len(str(scale)) - 1
    out = {}
    for i, kind in enumerate(TOKEN_KINDS, start=1):
        value = rates[i] + (rates[4] if kind == "reasoning" else 0)
        out[kind] = _plain(Decimal(value).scaleb(-digits - 3))
    return out


def usd_per_request(rates: Rates) -> str:
    """Return the fixed per-request fee in USD as an exact decimal string."""
    return _plain(Decimal(rates[0]).scaleb(-(len(str(rates[6])) - 1) - 9))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, slots=True)
class Tariff:
    """One price, compiled: rates per input-size bracket (one bracket unless the price is tiered).

    Tiers follow genai-prices' "cliff" rule: when the call's total input (uncached + cache read +
    cache write) exceeds a tier start, every token of the call is charged at that tier's price.
    """

    tier_starts: tuple[int, ...]
    """Sorted tier thresholds; bracket k applies when total input > tier_starts[k - 1]."""
    brackets: tuple[Rates, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    """Where the price comes from, for `PriceBook.describe`."""

    def rates_for(self, total_input_tokens: int) -> Rates:
        """Return the rates that apply to a call with this many input tokens in all."""
        if not self.tier_starts:
            return self.brackets[0]
        return self.brackets[bisect_left(self.tier_starts, total_input_tokens)]

    def describe(self) -> dict[str, Any]:
        """Return the compiled price as JSON-friendly data (exact decimal strings)."""
        out: dict[str, Any] = dict(self.details)
        out["usd_per_mtok"] = usd_per_mtok(self.brackets[0])
        out["usd_per_request"] = usd_per_request(self.brackets[0])
        out["tiers"] = [
            {
                "when_input_tokens_above": start,
                "usd_per_mtok": usd_per_mtok(rates),
                "usd_per_request": usd_per_request(rates),
            }
            for start, rates in zip(self.tier_starts, self.brackets[1:], strict=True)
        ]
        return out
