"""`PriceBook`: the cost of a call at its timestamp, resolved once per model and price period.

`genai_prices.calc_price` takes 130-235 µs a call (model matching, unit decomposition, Decimal
arithmetic). A price book resolves each (provider, model) pair as sent once, keeps it in a bounded LRU,
and remembers the span of time around the last priced call in which that price cannot change (start
dates, DeepSeek's off-peak hours, override `valid_from`s). A call inside that span costs a dict lookup,
two float comparisons and a few integer multiplications.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fnmatch import translate
from pathlib import Path
from typing import Any

from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import ModelInfo, Provider

from exporter.pricing.catalog import Catalog, has_no_price_data, price_context, price_schedule
from exporter.pricing.overrides import PriceOverride, load_overrides
from exporter.pricing.tariff import (
    CITATION_AT,
    FILE_SEARCH_AT,
    MEDIA_KINDS,
    MEDIA_OF,
    MODALITIES,
    PRICED_APART,
    SCALE_AT,
    WEB_SEARCH_AT,
    Rates,
    Tariff,
    compile_rates,
    divide_half_even,
)

DEFAULT_CACHE_SIZE = 4096
_DAY = 86_400.0
_INF = math.inf


class _Period:
    """A span [lo, hi) of epoch seconds in which one tariff (or none) applies to an entry."""

    __slots__ = (
        "brackets",
        "effective",
        "hi",
        "lo",
        "media_unpriced",
        "rates",
        "source",
        "tariff",
        "tier_starts",
        "us_premium",
    )

    def __init__(self, lo: float, hi: float, tariff: Tariff | None, effective: str = "") -> None:
        self.lo = lo
        self.hi = hi
        self.tariff = tariff
        # Provenance recorded on every event priced in this period (see `PriceBook.quote`).
        self.source = "" if tariff is None else _source_of(tariff)
        self.effective = effective
        self.rates: Rates | None = None if tariff is None else tariff.brackets[0]
        self.tier_starts: tuple[int, ...] = () if tariff is None else tariff.tier_starts
        self.brackets: tuple[Rates, ...] = () if tariff is None else tariff.brackets
        # Which media kinds are charged the text rate though providers price them apart (noted on the event).
        priced = () if tariff is None else tariff.media_priced
        self.media_unpriced = tuple(kind in PRICED_APART and kind not in priced for kind in MEDIA_KINDS)
        # Anthropic's own prices carry its US-only inference premium; an override is the price as negotiated.
        self.us_premium = tariff is not None and tariff.details.get("price_provider") == "anthropic"


_UNRESOLVED = _Period(_INF, -_INF, None)  # contains no timestamp: forces the first resolution


@dataclass(slots=True)
class _OverrideGroup:
    """All override entries for one provider/model pattern pair: a price history by `valid_from`."""

    provider: re.Pattern[str]
    model: re.Pattern[str]
    starts: list[float] = field(default_factory=list)
    tariffs: list[Tariff] = field(default_factory=list)

    def matches(self, provider: str, model: str) -> bool:
        return self.provider.match(provider) is not None and self.model.match(model) is not None


class _Entry:
    """Everything resolved for one (provider, model) pair as sent, and its current price period."""

    __slots__ = ("book", "context", "daily", "groups", "instants", "match", "period", "standard_instants", "tier")

    def __init__(
        self,
        book: PriceBook,
        groups: list[_OverrideGroup],
        match: tuple[Provider, ModelInfo] | None,
        tier: str = "",
    ) -> None:
        self.book = book
        self.groups = groups
        self.match = match
        self.tier = tier
        self.context = price_context(tier)
        instants = {start for group in groups for start in group.starts if start != -_INF}
        daily: list[float] = []
        standard = set(instants)
        if match is not None:
            genai_instants, daily = price_schedule(match[1])
            standard.update(genai_instants)
            instants.update(genai_instants)
            if self.context:
                instants.update(price_schedule(match[1], variants=True)[0])
        self.instants = sorted(instants)
        # When the standard price took effect: a variant's start date is not, for a call it does not price.
        self.standard_instants = sorted(standard)
        self.daily = sorted(set(daily))
        self.period = _UNRESOLVED

    def period_at(self, timestamp: float) -> _Period:
        """Resolve (and remember) the price period containing `timestamp`."""
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        lo, hi = _window(timestamp, self.instants, self.daily)
        at = _inside(lo, hi)
        tariff, variant = self._tariff_at(at)
        instants = self.instants if variant else self.standard_instants
        index = bisect_right(instants, at)
        effective = _effective_text(instants[index - 1]) if index else ""
        self.period = period = _Period(lo, hi, tariff, effective)
        return period

    def _tariff_at(self, at: float) -> tuple[Tariff | None, bool]:
        """The price at `at`, and whether it is a tier's variant rather than the standard price."""
        for group in self.groups:  # overrides first, in file order
            index = bisect_right(group.starts, at)
            if index:
                return group.tariffs[index - 1], False
        if self.match is None:
            return None, False
        provider, model = self.match
        when = datetime.fromtimestamp(at, UTC)
        standard = model.get_prices(when)
        if has_no_price_data(model, standard):  # listed, but not priced: unknown, not free
            return None, False
        # As genai-prices does: a tier's variant applies to the provider's own models only, not to a
        # model found through another provider (Azure's gpt-4o is OpenAI's entry).
        if self.context and any(model is own for own in provider.models):
            variant = model.get_prices(when, self.context)
            if variant != standard:
                return self.book._genai_tariff(provider, model, standard, variant, self.tier), True
        return self.book._genai_tariff(provider, model, standard), False


def _window(timestamp: float, instants: Sequence[float], daily: Sequence[float]) -> tuple[float, float]:
    """Return the span [lo, hi) around `timestamp` that contains no instant and no daily time of day."""
    lo, hi = -_INF, _INF
    if instants:
        index = bisect_right(instants, timestamp)
        if index:
            lo = instants[index - 1]
        if index < len(instants):
            hi = instants[index]
    if daily:
        day = timestamp - timestamp % _DAY
        index = bisect_right(daily, timestamp - day)
        lo = max(lo, day + daily[index - 1] if index else day - _DAY + daily[-1])
        hi = min(hi, day + daily[index] if index < len(daily) else day + _DAY + daily[0])
    return lo, hi


def _inside(lo: float, hi: float) -> float:
    """Return a moment safely inside [lo, hi), away from float/microsecond rounding at its edges."""
    if lo == -_INF:
        return 0.0 if hi == _INF else hi - 1.0
    return lo if hi == _INF else (lo + hi) / 2


def _source_of(tariff: Tariff) -> str:
    """Where a price comes from, as recorded on events: the price data's version, or the override entry."""
    details = tariff.details
    return str(details.get("source_detail") or details.get("source") or "")


def _effective_text(moment: float) -> str:
    """When a price took effect: a date for UTC midnight (as price tables give them), else an RFC 3339 time."""
    when = datetime.fromtimestamp(moment, UTC)
    return when.date().isoformat() if moment % _DAY == 0 else when.isoformat()


US_ONLY_NOTE = "; US-only inference 1.1x"
"""Added to the price source of an Anthropic call run with `inference_geo: us` (`PriceBook.quote`)."""
NO_MEDIA = (0, 0, 0)
"""No audio (image, video) tokens: the `audio`, `image`, `video` arguments of `PriceBook.quote` for most calls."""
MediaParts = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
"""The audio, image and video parts of a call, each `(input, cache read, output)`, as `quote` takes them."""
NO_MEDIA_PARTS: MediaParts = (NO_MEDIA, NO_MEDIA, NO_MEDIA)
"""No audio, image or video tokens at all: the media parts of most events, as ingest and reprice pass them."""
# "input audio", "cached audio", "output audio", "input image", …: the media kinds as the note names them.
_NOTE_WORDS = tuple(
    f"{'cached' if MEDIA_OF[kind] == 'cache_read' else MEDIA_OF[kind]} {kind.rpartition('_')[2]}"
    for kind in MEDIA_KINDS
)


def _text_rate_note(unpriced: tuple[bool, ...], counts: tuple[int, ...]) -> str:
    """The note added to the price source when media tokens were charged the text rate, else ""."""
    note = ""
    for first, modality in zip(range(0, len(MEDIA_KINDS), 3), MODALITIES, strict=True):
        kinds = [_NOTE_WORDS[i] for i in range(first, first + 3) if unpriced[i] and counts[i]]
        if kinds:
            note += f"; {', '.join(kinds)} at text rate (no {modality} price)"
    return note


def _iso(moment: float) -> str | None:
    return None if math.isinf(moment) else datetime.fromtimestamp(moment, UTC).isoformat()


def _override_tariff(override: PriceOverride) -> Tariff:
    input_price = override.input_per_mtok
    cache_read = input_price if override.cache_read_per_mtok is None else override.cache_read_per_mtok
    text_price = {"input": input_price, "cache_read": cache_read, "output": override.output_per_mtok}
    media = [(getattr(override, f"{kind}_per_mtok"), text_price[MEDIA_OF[kind]]) for kind in MEDIA_KINDS]
    per_mtok = (
        input_price,
        cache_read,
        input_price if override.cache_write_per_mtok is None else override.cache_write_per_mtok,
        override.output_per_mtok,
        Decimal(0),  # reasoning tokens are output tokens
        # Media: the extra over the text price of the kind that includes it (none without a media price).
        *(Decimal(0) if price is None else price - text for price, text in media),
    )
    per_search, per_file_search = override.web_search_per_thousand, override.file_search_per_thousand
    rates = compile_rates(
        Decimal(0),
        [price.scaleb(-6) for price in per_mtok],
        Decimal(0) if per_search is None else per_search.scaleb(-3),
        Decimal(0) if per_file_search is None else per_file_search.scaleb(-3),
    )
    media_priced = tuple(kind for kind, (price, _) in zip(MEDIA_KINDS, media, strict=True) if price is not None)
    details = {
        "source": "override",
        "source_detail": override.origin or "PriceOverride",
        "override_provider": override.provider,
        "override_model": override.model,
    }
    return Tariff((), (rates,), details, media_priced)


def _group_overrides(overrides: Sequence[PriceOverride]) -> list[_OverrideGroup]:
    groups: dict[tuple[str, str], _OverrideGroup] = {}
    for override in overrides:
        key = (override.provider.strip().lower(), override.model.strip().lower())
        group = groups.get(key)
        if group is None:
            group = groups[key] = _OverrideGroup(re.compile(translate(key[0])), re.compile(translate(key[1])))
        start = -_INF if override.valid_from is None else override.valid_from.timestamp()
        index = bisect_right(group.starts, start)  # equal starts: the later entry wins
        group.starts.insert(index, start)
        group.tariffs.insert(index, _override_tariff(override))
    return list(groups.values())


class PriceBook:
    """Prices canonical usage in exact integer nano-dollars at the time of each call.

    Overrides are checked first (see `exporter.pricing` for the file format), then the genai-prices
    data bundled with the installed package. Safe to share between threads: a race can at worst
    resolve the same entry twice.
    """

    def __init__(
        self,
        overrides: Sequence[PriceOverride] = (),
        *,
        snapshot: DataSnapshot | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._catalog = Catalog(snapshot)
        self._groups = _group_overrides(overrides)
        self._cache_size = cache_size
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        # Compiled genai-prices prices, shared by every name that resolves to the same model. Bounded
        # by the size of the price data, not by the names seen.
        self._genai_tariffs: dict[tuple[str, str, int, str], Tariff] = {}

    @classmethod
    def from_file(cls, path: str | Path | None, **kwargs: Any) -> PriceBook:
        """Build a price book with the overrides from a YAML file; None means no overrides."""
        return cls(() if path is None else load_overrides(path), **kwargs)

    def cost_nanousd(
        self,
        provider: str,
        model: str,
        timestamp: float,
        input_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        output_tokens: int,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        audio: tuple[int, int, int] = NO_MEDIA,
        image: tuple[int, int, int] = NO_MEDIA,
        video: tuple[int, int, int] = NO_MEDIA,
        web_searches: int = 0,
        service_tier: str = "",
        file_searches: int = 0,
        inference_geo: str = "",
        citation_tokens: int = 0,
    ) -> int | None:
        """Cost in integer nano-dollars, or None when the model has no known price.

        Canonical counts: `input_tokens` are uncached input only; `output_tokens` include
        `reasoning_tokens` (which only matter for the few models that price reasoning apart), and
        `cache_write_tokens` include `cache_write_1h_tokens` (one-hour cache writes, see `quote`);
        `audio`, `image`, `video` are the parts of input, cache read and output tokens, and
        `web_searches` the server-side web searches the call ran, `service_tier` the tier that served
        it, `file_searches` its file searches, `inference_geo` where it ran, `citation_tokens` the part of
        `output_tokens` that are citation tokens (see `quote`).
        """
        return self.quote(
            provider,
            model,
            timestamp,
            input_tokens,
            cache_read_tokens,
            cache_write_tokens,
            output_tokens,
            reasoning_tokens,
            cache_write_1h_tokens,
            audio,
            image,
            video,
            web_searches,
            service_tier,
            file_searches,
            inference_geo,
            citation_tokens,
        )[0]

    def quote(
        self,
        provider: str,
        model: str,
        timestamp: float,
        input_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        output_tokens: int,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        audio: tuple[int, int, int] = NO_MEDIA,
        image: tuple[int, int, int] = NO_MEDIA,
        video: tuple[int, int, int] = NO_MEDIA,
        web_searches: int = 0,
        service_tier: str = "",
        file_searches: int = 0,
        inference_geo: str = "",
        citation_tokens: int = 0,
    ) -> tuple[int | None, str, str]:
        """`(cost, price source, effective date)`: the cost as `cost_nanousd` and where its price comes from.

        The source is the price data (`genai-prices 0.2.3 bundled data`) or the override entry
        (`prices.yaml prices[3]`); the effective date is when that price took effect ("" = it always
        applied). Unpriced: `(None, "", "")`.

        One-hour cache writes cost twice the uncached input price (Anthropic's rule; genai-prices and
        the override file carry one cache-write price, the 5-minute one): the part of
        `cache_write_tokens` given as `cache_write_1h_tokens` is charged that instead.

        `audio` is the audio part of `(input_tokens, cache_read_tokens, output_tokens)`, charged the
        price's audio rates. Where the price has no audio rate for a kind, its audio tokens are charged
        the text rate and the source says so: `genai-prices 0.2.5 bundled data; input audio at text rate
        (no audio price)`. `image` and `video` are the same for image and video tokens; their input
        is billed as text input by most models, so only their output at the text rate is noted.

        `web_searches` (Anthropic's `server_tool_use.web_search_requests`) are charged the price's
        per-search rate on top of the tokens: genai-prices' `web_searches_kcount`, or the override
        entry's `web_search_per_thousand` (none: searches are not charged). `file_searches` (OpenAI
        Responses' `file_search_call` items) likewise: genai-prices' `storage_searches_kcount`, or the
        override entry's `file_search_per_thousand`.

        `inference_geo` (lower-case, Anthropic's `usage.inference_geo`): `us` (US-only inference) costs
        1.1x every token price of an Anthropic model priced from genai-prices (Anthropic's data
        residency pricing; the API reports `us` only for models that offer it); the source then ends
        `; US-only inference 1.1x`. Any other value, or an override entry, is the price as it is.

        `citation_tokens` (Perplexity Deep Research's `citation_tokens`) are a part of `output_tokens`,
        charged genai-prices' `output_citation_mtok` where the price has one, else the output price.

        `service_tier` (lower-case, "" = standard) selects genai-prices' price variant for that tier:
        `batch` (Batch APIs), `flex`, `priority`, … The source then ends `; service tier batch`. A tier
        the price data has no variant for is charged the standard price, without the note; an override
        entry is the price whatever the tier.
        """
        key = (provider, model, service_tier)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._add(key)
        else:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of this call
                self._entries.move_to_end(key)
            except KeyError:  # evicted by another thread since the lookup
                pass
        period = entry.period
        if not period.lo <= timestamp < period.hi:
            period = entry.period_at(timestamp)
        rates = period.rates
        if rates is None:
            return None, "", ""
        if period.tier_starts:
            total_input = input_tokens + cache_read_tokens + cache_write_tokens
            rates = period.brackets[bisect_left(period.tier_starts, total_input)]
        per_request, r_input, r_read, r_write, r_output, r_reasoning = rates[:6]
        source = period.source
        total = (
            r_input * input_tokens
            + r_read * cache_read_tokens
            + r_write * cache_write_tokens
            + r_output * output_tokens
        )
        if r_reasoning:
            total += r_reasoning * reasoning_tokens
        if cache_write_1h_tokens:
            total += (2 * r_input - r_write) * cache_write_1h_tokens
        if audio is not NO_MEDIA or image is not NO_MEDIA or video is not NO_MEDIA:
            counts = (*audio, *image, *video)
            if any(counts):
                total += sum(rate * count for rate, count in zip(rates[6:WEB_SEARCH_AT], counts, strict=True))
                source += _text_rate_note(period.media_unpriced, counts)
        if citation_tokens:
            total += rates[CITATION_AT] * citation_tokens
        scale = rates[SCALE_AT]
        if inference_geo == "us" and period.us_premium:
            # Anthropic: US-only inference costs 1.1x every token price (not the per-search fees). Exact:
            # the token total times 11, everything else times 10, over ten times the scale.
            total = total * 11 + 10 * per_request
            scale *= 10
            per_search = 10
            source += US_ONLY_NOTE
        else:
            total += per_request
            per_search = 1
        if web_searches:
            total += rates[WEB_SEARCH_AT] * web_searches * per_search
        if file_searches:
            total += rates[FILE_SEARCH_AT] * file_searches * per_search
        cost = total if scale == 1 else divide_half_even(total, scale)
        return cost, source, period.effective

    def describe(self, provider: str, model: str, timestamp: float) -> dict[str, Any] | None:
        """Which price applies to a call, where it comes from and the span it holds; None if unpriced.

        `valid_from` / `valid_until` bound the span around `timestamp` in which this price applies
        unchanged (None = unbounded); prices are exact decimal strings in USD.
        """
        period = self._entry((provider, model, "")).period_at(timestamp)
        if period.tariff is None:
            return None
        return {
            "provider": provider,
            "model": model,
            **period.tariff.describe(),
            "valid_from": _iso(period.lo),
            "valid_until": _iso(period.hi),
        }

    def cache_info(self) -> dict[str, int]:
        """How many (provider, model) names are cached, and the limit."""
        return {"entries": len(self._entries), "max_entries": self._cache_size}

    def _entry(self, key: tuple[str, str, str]) -> _Entry:
        entry = self._entries.get(key)
        return self._add(key) if entry is None else entry

    def _add(self, key: tuple[str, str, str]) -> _Entry:
        provider, model, tier = key
        provider_l, model_l = provider.strip().lower(), model.strip().lower()
        groups = [group for group in self._groups if group.matches(provider_l, model_l)]
        # An override without valid_from always applies, so the bundled data is never consulted.
        always_overridden = any(group.starts[0] == -_INF for group in groups)
        match = None if always_overridden else self._catalog.find(provider, model)
        entry = _Entry(self, groups, match, tier)
        entries = self._entries
        entries[key] = entry
        while len(entries) > self._cache_size:
            try:
                entries.popitem(last=False)
            except KeyError:  # emptied by another thread
                break
        return entry

    def _genai_tariff(
        self, provider: Provider, model: ModelInfo, standard: Any, variant: Any = None, tier: str = ""
    ) -> Tariff:
        """The compiled standard price, or its `variant` for `tier`.

        Keyed by the standard price object (the price data's own) and, for a variant, by its values: a
        variant is a fresh object at every lookup, and which variants apply depends on the date.
        """
        key = (provider.id, model.id, id(standard), "" if variant is None else f"{tier} {variant!r}")
        tariff = self._genai_tariffs.get(key)
        if tariff is None:
            if variant is None:
                tariff = self._catalog.compile(provider, model, standard)
            else:
                tariff = self._catalog.compile(provider, model, variant, tier)
            self._genai_tariffs[key] = tariff
        return tariff
