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

Rates = tuple[int, ...]
"""(per_request, input, cache_read, cache_write, output, reasoning, the nine `MEDIA_KINDS`, web_search,
file_search, citation, scale) in nano-dollars * scale: 19 integers.

`reasoning` and the media rates are the price of such a token *on top of* the price of the token kind
that includes it (`output`; `MEDIA_OF[kind]`): canonical `output_tokens` already include reasoning and
output audio tokens, and so on. They are usually 0 for reasoning, and 10-20x text prices for audio.
`web_search` is the price of one server-side web search (Anthropic's `server_tool_use.web_search_requests`),
billed per search on top of the tokens; `file_search` that of one file search (OpenAI Responses'
`file_search_call`, genai-prices' `storage_searches_kcount`). `citation` is the price of a citation
token (Perplexity Deep Research) on top of the output price, as `reasoning` is.
"""

TOKEN_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")
MODALITIES = ("audio", "image", "video")
"""The modalities priced apart from text where the price has a rate for them."""
MEDIA_KINDS = tuple(f"{whole}_{modality}" for modality in MODALITIES for whole in ("input", "cache_read", "output"))
"""`input_audio`, `cache_read_audio`, `output_audio`, `input_image`, …: each a part of `MEDIA_OF[kind]`."""
MEDIA_OF = {kind: kind.rpartition("_")[0] for kind in MEDIA_KINDS}
AUDIO_KINDS = MEDIA_KINDS[:3]
PRICED_APART = frozenset((*AUDIO_KINDS, "output_image", "output_video"))
"""The media kinds providers always price apart from text, so charging them the text rate is noted.

Image and video *input* is billed as ordinary input by most models (OpenAI and Anthropic vision,
Gemini's one input price for text, image and video): without an image price the input price is the
price, not a guess. Audio, and generated images and video, are priced apart wherever they are sold.
"""
_PER_TOKEN = len(TOKEN_KINDS) + len(MEDIA_KINDS)
WEB_SEARCH_AT = 1 + _PER_TOKEN
"""Where the price of one web search is in `Rates`."""
FILE_SEARCH_AT = WEB_SEARCH_AT + 1
"""Where the price of one file search (a search of a vector store) is in `Rates`."""
CITATION_AT = FILE_SEARCH_AT + 1
"""Where the extra price of one citation token (a part of the output, genai-prices' `output_citation_mtok`) is."""
SCALE_AT = CITATION_AT + 1
"""Where the scale is in `Rates` (the last item)."""


def compile_rates(
    per_request_usd: Decimal,
    per_token_usd: Sequence[Decimal],
    per_web_search_usd: Decimal = Decimal(0),
    per_file_search_usd: Decimal = Decimal(0),
    per_citation_token_usd: Decimal = Decimal(0),
) -> Rates:
    """Exact integer rates from USD per request, per token (`TOKEN_KINDS`, then `MEDIA_KINDS`), per web and file search.

    The media prices, like the reasoning and citation ones, are extras on top of the text kind that
    includes them; left out, they are 0 (media at the text rate, citations at the output rate).
    """
    per_token = [*per_token_usd, *[Decimal(0)] * (_PER_TOKEN - len(per_token_usd))]
    extras = (per_web_search_usd, per_file_search_usd, per_citation_token_usd)
    nanos = [value.scaleb(9) for value in (per_request_usd, *per_token, *extras)]
    digits = max((-int(value.normalize().as_tuple().exponent) for value in nanos if value), default=0)
    digits = max(digits, 0)
    scaled = [value.scaleb(digits) for value in nanos]
    if any(value != value.to_integral_value() for value in scaled):
        raise ArithmeticError(f"price is not exactly representable: {nanos}")
    return (*(int(value) for value in scaled), 10**digits)


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
    image: tuple[int, int, int] = (0, 0, 0),
    video: tuple[int, int, int] = (0, 0, 0),
    web_searches: int = 0,
    file_searches: int = 0,
    citation: int = 0,
) -> int:
    """Cost in nano-dollars of one call at `rates` (the readable form of `PriceBook`'s inlined loop).

    `audio`, `image`, `video`: the (input, cache read, output) parts of `input_tokens`, `cache_read`, `output`.
    """
    per_request, r_in, r_read, r_write, r_out, r_reason = rates[:6]
    total = (
        per_request
        + r_in * input_tokens
        + r_read * cache_read
        + r_write * cache_write
        + r_out * output
        + r_reason * reasoning
        + sum(rate * count for rate, count in zip(rates[6:WEB_SEARCH_AT], (*audio, *image, *video), strict=True))
        + rates[WEB_SEARCH_AT] * web_searches
        + rates[FILE_SEARCH_AT] * file_searches
        + rates[CITATION_AT] * citation
    )
    scale = rates[-1]
    return total if scale == 1 else divide_half_even(total, scale)


def usd_per_mtok(rates: Rates, media_priced: Sequence[str] = ()) -> dict[str, str]:
    """Return the rates as exact decimal strings in USD per million tokens (reasoning, media: their full price).

    Media kinds are listed only when `media_priced` names them (a price without one charges text rates).
    """
    digits = len(str(rates[-1])) - 1
    out = {}
    kinds = (*TOKEN_KINDS, *MEDIA_KINDS)
    for i, kind in enumerate(kinds, start=1):
        if kind in MEDIA_OF and kind not in media_priced:
            continue
        value = rates[i]
        if kind == "reasoning":
            value += rates[4]
        elif kind in MEDIA_OF:
            value += rates[1 + kinds.index(MEDIA_OF[kind])]
        out[kind] = _plain(Decimal(value).scaleb(-digits - 3))
    return out


def usd_per_request(rates: Rates) -> str:
    """Return the fixed per-request fee in USD as an exact decimal string."""
    return _plain(Decimal(rates[0]).scaleb(-(len(str(rates[-1])) - 1) - 9))


def usd_per_web_search(rates: Rates) -> str:
    """Return the price of one web search in USD as an exact decimal string."""
    return _plain(Decimal(rates[WEB_SEARCH_AT]).scaleb(-(len(str(rates[-1])) - 1) - 9))


def usd_per_file_search(rates: Rates) -> str:
    """Return the price of one file search in USD as an exact decimal string."""
    return _plain(Decimal(rates[FILE_SEARCH_AT]).scaleb(-(len(str(rates[-1])) - 1) - 9))


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
    media_priced: tuple[str, ...] = ()
    """The `MEDIA_KINDS` this price has its own price for; tokens of the others are charged the text rate."""

    def rates_for(self, total_input_tokens: int) -> Rates:
        """Return the rates that apply to a call with this many input tokens in all."""
        if not self.tier_starts:
            return self.brackets[0]
        return self.brackets[bisect_left(self.tier_starts, total_input_tokens)]

    def describe(self) -> dict[str, Any]:
        """Return the compiled price as JSON-friendly data (exact decimal strings)."""
        out: dict[str, Any] = dict(self.details)
        out["usd_per_mtok"] = usd_per_mtok(self.brackets[0], self.media_priced)
        out["usd_per_request"] = usd_per_request(self.brackets[0])
        out["usd_per_web_search"] = usd_per_web_search(self.brackets[0])
        out["usd_per_file_search"] = usd_per_file_search(self.brackets[0])
        out["tiers"] = [
            {
                "when_input_tokens_above": start,
                "usd_per_mtok": usd_per_mtok(rates, self.media_priced),
                "usd_per_request": usd_per_request(rates),
            }
            for start, rates in zip(self.tier_starts, self.brackets[1:], strict=True)
        ]
        return out
