"""The genai-prices data adapted to llmcost: provider names, model lookup, price schedules, compiling.

Offline by construction. genai-prices can replace its data at runtime: `genai_prices.UpdatePrices`
starts a background thread that downloads a new price file from GitHub every hour and installs it as
the process-wide snapshot that `genai_prices.calc_price` reads. llmcost never starts it, and never reads
that process-wide snapshot either: a `Catalog` holds the data shipped inside the installed wheel
(`genai_prices.data.providers`), or a snapshot passed in explicitly, so nothing another library in the
same process does can change llmcost's prices or make it touch the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib.metadata import version
from types import MappingProxyType
from typing import Any

from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
    Usage,
)

from exporter.pricing.tariff import MEDIA_KINDS, MEDIA_OF, MODALITIES, Rates, Tariff, compile_rates

# Provider names as users and SDKs send them (lower-cased) → genai-prices provider ids. Every
# genai-prices id also maps to itself; anything else is an unknown provider, priced by model name alone.
PROVIDER_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "amazon": "aws",
        "amazon-bedrock": "aws",
        "amazon_bedrock": "aws",
        "aws-bedrock": "aws",
        "aws_bedrock": "aws",
        "bedrock": "aws",
        "bedrock_converse": "aws",
        "azure-openai": "azure",
        "azure_ai": "azure",
        "azure_openai": "azure",
        "azureopenai": "azure",
        "cohere_chat": "cohere",
        "fireworks-ai": "fireworks",
        "fireworks_ai": "fireworks",
        "fireworksai": "fireworks",
        "gemini": "google",
        "google-genai": "google",
        "google-vertex": "google",
        "google_ai_studio": "google",
        "google_genai": "google",
        "google_vertex": "google",
        "vertex": "google",
        "vertex_ai": "google",
        "vertex_ai_beta": "google",
        "vertexai": "google",
        "kimi": "moonshotai",
        "moonshot": "moonshotai",
        "mistral_ai": "mistral",
        "mistralai": "mistral",
        "together-ai": "together",
        "together_ai": "together",
        "togetherai": "together",
        "voyage": "voyageai",
        "workers_ai": "cloudflare",
        "grok": "x-ai",
        "x_ai": "x-ai",
        "xai": "x-ai",
        "z-ai": "zai",
        "zhipu": "zhipuai",
    }
)


def to_genai_usage(
    input_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    output_tokens: int,
    reasoning_tokens: int = 0,
    audio: tuple[int, int, int] = (0, 0, 0),
    image: tuple[int, int, int] = (0, 0, 0),
    video: tuple[int, int, int] = (0, 0, 0),
) -> Usage:
    """Convert canonical token counts to a genai-prices `Usage`.

    genai-prices counts `input_tokens` as ALL input, cached or not, and prices cache reads and writes
    as subsets of it (uncached input = input_tokens - cache_read_tokens - cache_write_tokens).
    Canonical `input_tokens` are uncached only, so the three are added. Both count reasoning tokens
    inside `output_tokens`. `audio`, `image` and `video` hold the canonical parts (uncached input,
    cache read, output); genai-prices' `input_audio_tokens` are all audio input, cached or not, like
    its input (and so for image and video).
    """
    extra = {}
    for modality, (uncached, cached, output) in zip(MODALITIES, (audio, image, video), strict=True):
        if uncached or cached:
            extra[f"input_{modality}_tokens"] = uncached + cached
        if cached:
            extra[f"cache_{modality}_read_tokens"] = cached
        if output:
            extra[f"output_{modality}_tokens"] = output
    return Usage(
        input_tokens=input_tokens + cache_read_tokens + cache_write_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        output_tokens=output_tokens,
        output_reasoning_tokens=reasoning_tokens,
        **extra,
    )


def _media_probe(kind: str) -> Usage:
    """One token of a media kind, inside one token of the text kind that includes it."""
    whole = MEDIA_OF[kind]
    one = [int(other == kind) for other in MEDIA_KINDS]
    text = (int(whole == "input"), int(whole == "cache_read"), 0, int(whole == "output"))
    return to_genai_usage(*text, 0, (one[0], one[1], one[2]), (one[3], one[4], one[5]), (one[6], one[7], one[8]))


# One request and one token of each canonical kind (input, cache read, cache write, output,
# output-with-reasoning, then each of `MEDIA_KINDS`), then one web search and one file search (genai-prices'
# `storage_searches`: OpenAI's file search tool, billed per call): pricing these with
# genai-prices' own arithmetic gives exact linear rates.
_PROBES = (
    to_genai_usage(0, 0, 0, 0),
    to_genai_usage(1, 0, 0, 0),
    to_genai_usage(0, 1, 0, 0),
    to_genai_usage(0, 0, 1, 0),
    to_genai_usage(0, 0, 0, 1),
    to_genai_usage(0, 0, 0, 1, 1),
    *(_media_probe(kind) for kind in MEDIA_KINDS),
    Usage(web_searches=1),
    Usage(storage_searches=1),
    Usage(output_tokens=1, output_citation_tokens=1),  # a citation token: a part of the output
)
# The genai-prices prices that give each of `MEDIA_KINDS` a rate of its own; without one, genai-prices
# charges it the text rate. Cached media without a price of their own are charged the media input
# price when the model has no cache price at all (genai-prices requires one or the other otherwise).
_MEDIA_PRICE_KEYS = tuple(
    (kind, (f"cache_{modality}_read_mtok", f"input_{modality}_mtok") if whole == "cache_read" else (f"{kind}_mtok",))
    for kind in MEDIA_KINDS
    for whole, _, modality in (kind.rpartition("_"),)
)


# genai-prices' own words for a model that costs nothing per call, in its name, description or price
# comments: "Gemma 3 (free)", "Free of charge on the Gemini API", "All OpenAI moderation models and
# endpoints are free of charge", GitHub Copilot's "Included in the subscription".
_FREE_WORDS = re.compile(r"\(free\)|\bfree of charge\b|\bincluded in the subscription\b", re.IGNORECASE)


def has_no_price_data(model: ModelInfo, price: ModelPrice) -> bool:
    """Whether `price` (one of `model`'s) is an entry without price data, so a call to it has no known price.

    genai-prices writes a free model and a model whose price it does not know the same way: a price
    with no field set (`ModelPrice()`); it has no explicit zero prices. Pricing the second kind at $0
    would hide a paid call (`cerebras/qwen-3-coder-480b`, OpenRouter's `google/lyria-3-*`), so an
    empty price is free only where genai-prices says so: a `:free` model id (OpenRouter's free variants,
    also Azure's and Mistral's), or its free words (`_FREE_WORDS`). Anything else is unpriced.
    """
    if any(value is not None for value in price.__dict__.values()):
        return False
    if model.id.lower().endswith(":free"):
        return False
    texts = (model.name, model.description, model.price_comments)
    return not any(_FREE_WORDS.search(text) for text in texts if text)


class Catalog:
    """Model lookup and price compilation over one fixed set of genai-prices providers."""

    def __init__(self, snapshot: DataSnapshot | None = None) -> None:
        if snapshot is None:
            from genai_prices.data import providers  # ~0.5 s import: only when a price book is built

            self.providers: list[Provider] = providers
            self.source = f"genai-prices {version('genai-prices')} bundled data"
        else:
            self.providers = snapshot.providers
            self.source = f"genai-prices snapshot of {snapshot.timestamp.isoformat(timespec='seconds')}"
        self._by_id = {provider.id: provider for provider in self.providers}
        self._by_model_name = [p for p in self.providers if p.model_match is not None]

    def provider_id(self, provider: str) -> str | None:
        """Return the genai-prices provider id for a provider name as sent, or None when unknown."""
        name = provider.strip().lower()
        name = PROVIDER_ALIASES.get(name, name)
        return name if name in self._by_id else None

    def find(self, provider: str, model: str) -> tuple[Provider, ModelInfo] | None:
        """Find the price entry for a call, matching model names the way genai-prices does.

        A known provider is searched alone (genai-prices follows resellers such as Azure or Vertex to
        the model's maker itself), also without a `provider/` prefix naming that same provider. For an
        unknown provider (a proxy, LiteLLM, self-hosted) a `provider/model` prefix naming a known
        provider is tried first, as genai-prices does for LiteLLM, then the model name alone.
        """
        ref = model.lower()
        provider_id = self.provider_id(provider)
        prefix, slash, rest = ref.partition("/")
        prefixed = self.provider_id(prefix) if slash else None
        if provider_id is not None:
            found = self._in_provider(provider_id, ref)
            if found is None and prefixed == provider_id:
                found = self._in_provider(provider_id, rest)
            return found
        if (found := self._routed(provider, ref)) is not None:
            return found
        if prefixed is not None and (found := self._in_provider(prefixed, rest)) is not None:
            return found
        for candidate in self._by_model_name:
            if candidate.model_match is not None and candidate.model_match.is_match(ref):
                return self._in_provider(candidate.id, ref)
        return None

    def _routed(self, provider: str, ref: str) -> tuple[Provider, ModelInfo] | None:
        """A router's call priced at the provider that served it, named as genai-prices names it.

        genai-prices prices a router by the provider behind it, as a provider of its own whose
        `provider_match` names both (`huggingface_novita` matches any name containing `huggingface`
        and `novita`). The Hugging Face router is told which one in the model id: `model:novita`
        (its documented suffix) or `novita/model`; a caller may also name both in the provider
        (`huggingface/novita`). Only a provider genai-prices matches this way is used, and only when
        it prices the model: anything else is left to the unknown-provider rules below.
        """
        name = provider.strip().lower()
        candidates = [(name, ref)]
        base, colon, route = ref.rpartition(":")
        if colon and route and "/" not in route:
            candidates.append((f"{name}_{route}", base))
        route, slash, rest = ref.partition("/")
        if slash and rest.count("/") == 1:  # "novita/meta-llama/Llama-3.1-8B-Instruct"
            candidates.append((f"{name}_{route}", rest))
        for routed_name, routed_ref in candidates:
            routed = find_provider_by_id(self.providers, routed_name)
            # A plain provider_match (Groq's "groq" in "my-groq-proxy") is not a route: only a provider
            # whose match names the router too, i.e. one that is not the name's own provider id.
            if routed is not None and routed.provider_match is not None and "_" in routed.id:
                found = self._in_provider(routed.id, routed_ref)
                if found is not None:
                    return found
        return None

    def _in_provider(self, provider_id: str, ref: str) -> tuple[Provider, ModelInfo] | None:
        provider = self._by_id[provider_id]
        model = provider.find_model(ref, all_providers=self.providers)
        return None if model is None else (provider, model)

    def compile(self, provider: Provider, model: ModelInfo, price: ModelPrice, service_tier: str = "") -> Tariff:
        """Compile one of the model's prices into exact integer rates, one set per tier bracket.

        `service_tier`: the tier whose price variant `price` is ("" = the standard price); it is named in
        the source recorded on every event priced with it.
        """
        tiered = [value for value in price.__dict__.values() if isinstance(value, TieredPrices)]
        starts = tuple(sorted({tier.start for value in tiered for tier in value.tiers}))
        # Bracket k covers total input in (starts[k-1], starts[k]]; price it at its smallest total.
        brackets = tuple(_probe(_flatten(price, 0 if k == 0 else starts[k - 1] + 1)) for k in range(len(starts) + 1))
        details = {
            "source": "genai-prices",
            "source_detail": f"{self.source}; service tier {service_tier}" if service_tier else self.source,
            "price_provider": provider.id,
            "price_model": model.id,
            "model_name": model.name,
            "price_table": str(price),
            "pricing_urls": list(provider.pricing_urls or ()),
        }
        media_priced = tuple(
            kind for kind, keys in _MEDIA_PRICE_KEYS if any(price.__dict__.get(key) is not None for key in keys)
        )
        return Tariff(starts, brackets, details, media_priced)


def price_context(service_tier: str) -> dict[str, str]:
    """The genai-prices price context for a call served by `service_tier` (lower-case; "" = standard).

    genai-prices names batch processing `processing: batch`, Anthropic's fast mode `speed: fast` and
    every other tier `service_tier: <name>` (OpenAI's `flex`, `priority`, `fast`, …); a tier it has no
    variant for selects nothing: the standard price.
    """
    if not service_tier:
        return {}
    if service_tier == "batch":
        return {"processing": "batch"}
    if service_tier == "fast":  # OpenAI's service_tier, Anthropic's speed: one tier, two spellings
        return {"service_tier": "fast", "speed": "fast"}
    return {"service_tier": service_tier}


def price_schedule(model: ModelInfo, variants: bool = False) -> tuple[list[float], list[float]]:
    """When the model's price can change: absolute instants (epoch s) and daily UTC seconds-of-day.

    Start-date constraints (of the prices and, with `variants`, of their batch, flex or priority
    variants) switch at UTC midnight of their date; time-of-day constraints (DeepSeek's
    off-peak hours) switch every day at their start and end. Between two such moments the price
    genai-prices selects is constant, which is what lets a resolved price be reused.
    """
    instants: list[float] = []
    daily: list[float] = []
    # Price variants (batch, flex, priority) can start at a date of their own: only a tier's calls care.
    for variant in model.price_variants or () if variants else ():
        if isinstance(variant.constraint, StartDateConstraint):
            instants.append(datetime.combine(variant.constraint.start_date, time(), UTC).timestamp())
    if isinstance(model.prices, list):
        for conditional in model.prices:
            constraint = conditional.constraint
            if isinstance(constraint, StartDateConstraint):
                instants.append(datetime.combine(constraint.start_date, time(), UTC).timestamp())
            elif isinstance(constraint, TimeOfDateConstraint):
                daily += (_seconds_of_day(constraint.start_time), _seconds_of_day(constraint.end_time))
    return instants, daily


def _seconds_of_day(value: time) -> float:
    # Same normalisation as genai-prices: naive times are UTC, aware ones are converted to UTC.
    if value.tzinfo is None:
        utc = value.replace(tzinfo=UTC)
    else:
        utc = datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()
    return utc.hour * 3600 + utc.minute * 60 + utc.second + utc.microsecond / 1e6


def _flatten(price: ModelPrice, total_input_tokens: int) -> ModelPrice:
    """Replace every tiered value of the price by the one genai-prices applies at this input size."""
    return ModelPrice(
        **{
            key: _tier_value(value, total_input_tokens) if isinstance(value, TieredPrices) else value
            for key, value in price.__dict__.items()
        }
    )


def _tier_value(value: TieredPrices, total_input_tokens: int) -> Decimal:
    # genai_prices.types.calc_unit_price: the highest tier whose start the total input exceeds.
    for tier in reversed(value.tiers):
        if total_input_tokens > tier.start:
            return tier.price
    return value.base


def _probe(price: ModelPrice) -> Rates:
    totals: Sequence[Any] = [price.calc_price(usage)["total_price"] for usage in _PROBES]
    base, input_, cache_read, cache_write, output, output_reasoning, *media, web_search, file_search, citation = totals
    text = {"input": input_, "cache_read": cache_read, "output": output}
    return compile_rates(
        base,
        (
            input_ - base,
            cache_read - base,
            cache_write - base,
            output - base,
            output_reasoning - output,
            # Each media kind: the extra over one token of the text kind that includes it.
            *(total - text[MEDIA_OF[kind]] for kind, total in zip(MEDIA_KINDS, media, strict=True)),
        ),
        web_search - base,
        file_search - base,
        citation - output,
    )
