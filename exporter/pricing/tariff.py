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

Rates = tuple[int, int, int, int, int, int, int, int, int, int]
"""(per_request, input, cache_read, cache_write, output, reasoning, input_audio, cache_read_audio,
output_audio, scale) in nano-dollars * scale.

`reasoning` and the three audio rates are the price of such a token *on top of* the price of the
token kind that includes it (`output`, `input`, `cache_read`, `output`): canonical `output_tokens`
already include reasoning and output audio tokens, and so on. They are usually 0 for reasoning, and
10-20x text prices for audio.
"""

TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")
AUDIO_KINDS = ("input_audio", "cache_read_audio", "output_audio")
"""The audio token kinds, each a part of `AUDIO_OF[kind]`."""
AUDIO_OF = {"input_audio": "input", "cache_read_audio": "cache_read", "output_audio": "output"}


def compile_rates(per_request_usd: Decimal, per_token_usd: Sequence[Decimal]) -> Rates:
    """Exact integer rates from USD per request and USD per token for the `TOKEN_KINDS`, then `AUDIO_KINDS`.

    The audio prices, like the reasoning one, are extras on top of the text kind that includes them;
    left out, they are 0 (audio at the text rate).
    """
    per_token = [*per_token_usd, *[Decimal(0)] * (8 - len(per_token_usd))]
    nanos = [value.scaleb(9) for value in (per_request_usd, *per_token)]
    digits = max((-int(value.normalize().as_tuple().exponent) for value in nanos if value), default=0)
    digits = max(digits, 0)
    scaled = [value.scaleb(digits) for value in nanos]
    if any(value != value.to_integral_value() for value in scaled):
        raise ArithmeticError(f"price is not exactly representable: {nanos}")
    ints = [int(value) for value in scaled]
    return (ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8], 10**digits)


def divide_half_even(total: int, scale: int) -> int:
    """`total / scale` rounded to the nearest integer, ties to even (the rule `usd_to_nanos` uses)."""
    quotient, remainder = divmod(total, scale)
    twice = 2 * remainder
    if twice > scale or (twice == scale and quotient & 1):
        quotient += 1
    return quotient


def rates_cost(
    rates: Rates,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    output: int,
    reasoning: int,
    audio: tuple[int, int, int] = (0, 0, 0),
) -> int:
    """Cost in nano-dollars of one call at `rates` (the readable form of `PriceBook`'s inlined loop).

    `audio`: the (input, cache read, output) audio parts of `input_tokens`, `cache_read`, `output`.
    """
    per_request, r_in, r_read, r_write, r_out, r_reason, r_in_audio, r_read_audio, r_out_audio, scale = rates
    total = (
        per_request
        + r_in * input_tokens
        + r_read * cache_read
        + r_write * cache_write
        + r_out * output
        + r_reason * reasoning
        + r_in_audio * audio[0]
        + r_read_audio * audio[1]
        + r_out_audio * audio[2]
    )
    return total if scale == 1 else divide_half_even(total, scale)


def usd_per_mtok(rates: Rates, audio_priced: Sequence[str] = ()) -> dict[str, str]:
    """Return the rates as exact decimal strings in USD per million tokens (reasoning, audio: their full price).

    Audio kinds are listed only when `audio_priced` names them (a price without one charges text rates).
    """
    digits = len(str(rates[-1])) - 1
    out = {}
    kinds = (*TOKEN_KINDS, *AUDIO_KINDS)
    for i, kind in enumerate(kinds, start=1):
        if kind in AUDIO_OF and kind not in audio_priced:
            continue
        value = rates[i]
        if kind == "reasoning":
            value += rates[4]
        elif kind in AUDIO_OF:
            value += rates[1 + kinds.index(AUDIO_OF[kind])]
        out[kind] = _plain(Decimal(value).scaleb(-digits - 3))
    return out


def usd_per_request(rates: Rates) -> str:
    """Return the fixed per-request fee in USD as an exact decimal string."""
    return _plain(Decimal(rates[0]).scaleb(-(len(str(rates[-1])) - 1) - 9))


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
    audio_priced: tuple[str, ...] = ()
    """The `AUDIO_KINDS` this price has its own price for; audio of the others is charged the text rate."""

    def rates_for(self, total_input_tokens: int) -> Rates:
        """Return the rates that apply to a call with this many input tokens in all."""
        if not self.tier_starts:
            return self.brackets[0]
        return self.brackets[bisect_left(self.tier_starts, total_input_tokens)]

    def describe(self) -> dict[str, Any]:
        """Return the compiled price as JSON-friendly data (exact decimal strings)."""
        out: dict[str, Any] = dict(self.details)
        out["usd_per_mtok"] = usd_per_mtok(self.brackets[0], self.audio_priced)
        out["usd_per_request"] = usd_per_request(self.brackets[0])
        out["tiers"] = [
            {
                "when_input_tokens_above": start,
                "usd_per_mtok": usd_per_mtok(rates, self.audio_priced),
                "usd_per_request": usd_per_request(rates),
            }
            for start, rates in zip(self.tier_starts, self.brackets[1:], strict=True)
        ]
        return out
