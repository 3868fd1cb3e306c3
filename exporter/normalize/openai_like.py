"""OpenAI-shaped usage: Chat Completions (and everything that copies it) and the Responses API.

Chat Completions `prompt_tokens` INCLUDE the cached tokens (`prompt_tokens_details.cached_tokens`)
and the cache writes some providers report beside them (`prompt_tokens_details.cache_write_tokens`
from OpenAI and OpenRouter, `cache_creation_tokens` from LiteLLM), so both are subtracted to get the
uncached input (OpenRouter's Gemini usage counts the writes in `cached_tokens` too; where the reads and
writes together exceed the prompt and the billed `cost` is given, the writes are taken out of the reads).
Copies differ in where they put the cache hits: DeepSeek (`prompt_cache_hit_tokens`
/ `prompt_cache_miss_tokens`), Mistral (`num_cached_tokens`), Hugging Face router (`cached_tokens`),
LiteLLM and Databricks (`cache_read_input_tokens`); all are parts of `prompt_tokens`. A top-level
`cache_creation_input_tokens` beside `prompt_tokens` (older LiteLLM Anthropic usage) follows
Anthropic's meaning and is NOT part of `prompt_tokens`. LiteLLM's Anthropic usage also splits its cache
writes by lifetime (`prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens`): the
1-hour part is carried as `cache_write_1h_tokens`, as from Anthropic's own usage.

`completion_tokens` include `completion_tokens_details.reasoning_tokens`, except at xAI, which
reports reasoning beside the completion. `total_tokens` tells the two apart (prompt + completion, or
prompt + completion + reasoning) whatever the provider is called; only without a total does the
provider name decide. Gemini's OpenAI-compatible endpoint leaves thinking tokens out of
`completion_tokens` and out of the details, but counts them in `total_tokens`: for Google providers
the surplus is output (it is billed as such) and reasoning.

Perplexity adds `num_search_queries` (billed per search, carried as `web_search_requests`) and reports
its billed cost as an object whose `total_cost` is the call's cost. Its top-level `reasoning_tokens` and
`citation_tokens` (Deep Research) are beside `completion_tokens`, not in it: output is the three together,
and the citation part is carried as `citation_tokens` (priced apart).

Audio tokens are parts of the prompt and completion (`prompt_tokens_details.audio_tokens`,
`completion_tokens_details.audio_tokens`), cached or not; Chat Completions do not say how much of the
cache hit was audio, so the cached audio is the least the counts imply (audio beyond the uncached input).
The Realtime API's usage (`input_token_details`, `output_token_details`, singular) has the same
meaning and does split its cache hits (`cached_tokens_details.audio_tokens`), and counts image input
the same way (`image_tokens`).

The Images API (`gpt-image-1`) reports usage in the Responses shape, with image parts:
`input_tokens_details.image_tokens` and `output_tokens_details.image_tokens`.

Responses API `input_tokens` include `input_tokens_details.cached_tokens` and `cache_write_tokens`;
`output_tokens` include `output_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exporter.events import InvalidEvent
from exporter.normalize import providers
from exporter.normalize._fields import (
    check_reasoning,
    count,
    count0,
    first_count,
    sub,
    tokens,
    uncached,
    with_media,
)

# Where OpenAI copies put the cache hits that are part of prompt_tokens, by preference.
_TOP_LEVEL_CACHE_HITS = ("cache_read_input_tokens", "num_cached_tokens", "cached_tokens")


def chat_tokens(usage: Mapping[str, Any], path: str, provider: str) -> dict[str, int]:
    """Map a Chat Completions-style `usage` object to the canonical partition."""
    prompt = count0(usage, "prompt_tokens", path)
    completion = count0(usage, "completion_tokens", path)
    total = count(usage, "total_tokens", path)
    prompt_details = sub(usage, "prompt_tokens_details", path)
    details_path = f"{path}.prompt_tokens_details"

    hit = count(usage, "prompt_cache_hit_tokens", path)
    if hit is not None:  # DeepSeek: hit + miss is the whole prompt
        miss = count0(usage, "prompt_cache_miss_tokens", path)
        if "prompt_tokens" in usage and hit + miss != prompt:
            raise InvalidEvent(
                f"{path}.prompt_cache_miss_tokens",
                f"prompt_cache_hit_tokens ({hit}) + prompt_cache_miss_tokens ({miss}) != prompt_tokens ({prompt})",
            )
        prompt = hit + miss
        cache_read, cache_read_name = hit, "prompt_cache_hit_tokens"
    else:
        cache_read_name = "prompt_tokens_details.cached_tokens"
        details_hit = count(prompt_details, "cached_tokens", details_path)
        if details_hit is None:
            details_hit = first_count(usage, _TOP_LEVEL_CACHE_HITS, path)
            cache_read_name = next((k for k in _TOP_LEVEL_CACHE_HITS if usage.get(k) is not None), cache_read_name)
        cache_read = details_hit or 0

    included_write = first_count(prompt_details, ("cache_write_tokens", "cache_creation_tokens"), details_path)
    if included_write is None:
        separate_write = count0(usage, "cache_creation_input_tokens", path)
        included_write = 0
    else:
        separate_write = 0
    if cache_read + included_write > prompt >= max(cache_read, included_write) and usage.get("cost") is not None:
        # OpenRouter counts Gemini's implicit cache writes in cached_tokens as well (2161 read and 2161
        # written of a 2168-token prompt, billed as writes): the writes are taken out of the reads. Only
        # where the usage carries the billed cost, which is the call's cost whatever the split.
        cache_read -= min(cache_read, included_write)
    input_tokens = uncached(
        prompt,
        f"{path}.prompt_tokens",
        ((cache_read_name, cache_read), ("prompt_tokens_details.cache_write_tokens", included_write)),
    )

    reasoning = count(
        sub(usage, "completion_tokens_details", path), "reasoning_tokens", f"{path}.completion_tokens_details"
    )
    citations = 0
    if reasoning is None and _is_perplexity(usage, provider):
        # Perplexity counts reasoning and citation tokens beside completion_tokens (and outside total_tokens):
        # its cost object bills each apart (Deep Research: $3/M reasoning, $2/M citations, $8/M output).
        reasoning = count0(usage, "reasoning_tokens", path)
        citations = count0(usage, "citation_tokens", path)
        output = completion + reasoning + citations
    else:
        if reasoning is None:
            reasoning = count0(usage, "reasoning_tokens", path)
        output = _output(prompt, completion, reasoning, total, path, provider)
    if output != completion and reasoning == 0:  # Gemini's hidden thinking: the surplus is reasoning
        reasoning = output - completion
    mapped = tokens(input_tokens, cache_read, included_write + separate_write, output, reasoning)
    write_1h = _cache_write_1h(prompt_details, details_path, mapped["cache_write_tokens"])
    if write_1h:
        mapped["cache_write_1h_tokens"] = write_1h
    searches = count0(usage, "num_search_queries", path)  # Perplexity: billed per search
    if searches:
        mapped["web_search_requests"] = searches
    if citations:
        mapped["citation_tokens"] = citations
    output_audio = count0(
        sub(usage, "completion_tokens_details", path), "audio_tokens", f"{path}.completion_tokens_details"
    )
    return _media(mapped, "audio", prompt_details, details_path, output_audio, path)


def _cache_write_1h(prompt_details: Mapping[str, Any], details_path: str, cache_write: int) -> int:
    """LiteLLM's `prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens` (0 if absent).

    LiteLLM copies Anthropic's split of the cache writes by lifetime (`usage.cache_creation`) there. The
    1-hour writes cost twice the input price, more than the 5-minute ones: they travel as
    `cache_write_1h_tokens`, the part of `cache_write_tokens` written for one hour.
    """
    where = f"{details_path}.cache_creation_token_details"
    write_1h = count0(
        sub(prompt_details, "cache_creation_token_details", details_path), "ephemeral_1h_input_tokens", where
    )
    if write_1h > cache_write:
        raise InvalidEvent(
            f"{where}.ephemeral_1h_input_tokens",
            f"({write_1h}) exceeds the cache writes ({cache_write}), which include it",
        )
    return write_1h


def _media(
    mapped: dict[str, int],
    modality: str,
    input_details: Mapping[str, Any],
    details_path: str,
    output_part: int,
    path: str,
) -> dict[str, int]:
    """Split a prompt's `audio_tokens` or `image_tokens` (cached or not) between uncached input and cache reads."""
    key = f"{modality}_tokens"
    total = count0(input_details, key, details_path)
    cached = count(
        sub(input_details, "cached_tokens_details", details_path), key, f"{details_path}.cached_tokens_details"
    )
    if cached is None:  # not split: the least the counts imply
        cached = min(max(total - mapped["input_tokens"], 0), mapped["cache_read_tokens"])
    if cached > total:
        raise InvalidEvent(f"{details_path}.cached_tokens_details.{key}", f"({cached}) exceeds {key} ({total})")
    return with_media(mapped, modality, total - cached, cached, output_part, path)


def is_realtime(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage is the Realtime API's (`input_token_details`, singular)."""
    return "input_token_details" in usage or "output_token_details" in usage


def realtime_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Realtime API `usage` object (`response.done`) to the canonical partition."""
    details = sub(usage, "input_token_details", path)
    details_path = f"{path}.input_token_details"
    cache_read = count0(details, "cached_tokens", details_path)
    input_tokens = uncached(
        count0(usage, "input_tokens", path),
        f"{path}.input_tokens",
        (("input_token_details.cached_tokens", cache_read),),
    )
    output = count0(usage, "output_tokens", path)
    output_audio = count0(sub(usage, "output_token_details", path), "audio_tokens", f"{path}.output_token_details")
    mapped = _media(tokens(input_tokens, cache_read, 0, output), "audio", details, details_path, output_audio, path)
    return _media(mapped, "image", details, details_path, 0, path)


def _is_perplexity(usage: Mapping[str, Any], provider: str) -> bool:
    """Tell Perplexity's usage by its own keys (proxies rename the provider), or by the provider's name."""
    return "citation_tokens" in usage or "num_search_queries" in usage or provider.lower() == "perplexity"


def _output(prompt: int, completion: int, reasoning: int, total: int | None, path: str, provider: str) -> int:
    """Output tokens including reasoning; the totals, when given, say whether reasoning is already in."""
    name = provider.lower()
    if reasoning and (total == prompt + completion + reasoning or (total is None and name in providers.XAI)):
        return completion + reasoning  # reported beside the completion
    if not reasoning and total is not None and total > prompt + completion and name in providers.GOOGLE:
        return total - prompt  # thinking tokens left out of completion_tokens
    check_reasoning(
        reasoning,
        completion,
        f"{path}.completion_tokens_details.reasoning_tokens",
        f"{path}.completion_tokens",
    )
    return completion


def responses_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Responses API `usage` object to the canonical partition."""
    details = sub(usage, "input_tokens_details", path)
    details_path = f"{path}.input_tokens_details"
    # Perplexity's Responses API names the cache hits like Anthropic does.
    cache_read = first_count(details, ("cached_tokens", "cache_read_input_tokens"), details_path) or 0
    cache_write = count0(details, "cache_write_tokens", details_path)
    input_tokens = uncached(
        count0(usage, "input_tokens", path),
        f"{path}.input_tokens",
        (
            ("input_tokens_details.cached_tokens", cache_read),
            ("input_tokens_details.cache_write_tokens", cache_write),
        ),
    )
    output = count0(usage, "output_tokens", path)
    output_details = sub(usage, "output_tokens_details", path)
    reasoning = count0(output_details, "reasoning_tokens", f"{path}.output_tokens_details")
    check_reasoning(reasoning, output, f"{path}.output_tokens_details.reasoning_tokens", f"{path}.output_tokens")
    mapped = tokens(input_tokens, cache_read, cache_write, output, reasoning)
    if "image_tokens" not in details and "image_tokens" not in output_details:
        return mapped
    # The Images API: image input and generated images.
    output_image = count0(output_details, "image_tokens", f"{path}.output_tokens_details")
    return _media(mapped, "image", details, details_path, output_image, path)


def is_responses(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has keys only the Responses API has (Anthropic never sends them)."""
    return "input_tokens_details" in usage or ("output_tokens_details" in usage and "total_tokens" in usage)


def usage_cost(usage: Mapping[str, Any], path: str) -> str | float | None:
    """Return the cost a provider reports in its usage (OpenRouter, LiteLLM) in USD, or None.

    OpenRouter's `cost` is what it charged your credits. With your own provider key (`is_byok`) that
    is only OpenRouter's fee and the provider bills `cost_details.upstream_inference_cost` to you
    directly, so the call cost both.

    Perplexity's `cost` is an object (`input_tokens_cost`, `output_tokens_cost`, `request_cost`,
    `total_cost`): its `total_cost` is the call's cost, request fee and searches included.
    """
    cost = usage.get("cost")
    if cost is None:
        return None
    if isinstance(cost, Mapping):
        total = cost.get("total_cost")
        if total is None or isinstance(total, bool) or not isinstance(total, int | float):
            raise InvalidEvent(f"{path}.cost.total_cost", f"must be a number, got {type(total).__name__}")
        return total
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        raise InvalidEvent(f"{path}.cost", f"must be a number, got {type(cost).__name__}")
    if usage.get("is_byok") is True:
        upstream = sub(usage, "cost_details", path).get("upstream_inference_cost")
        if upstream is not None:
            if isinstance(upstream, bool) or not isinstance(upstream, int | float):
                raise InvalidEvent(
                    f"{path}.cost_details.upstream_inference_cost",
                    f"must be a number, got {type(upstream).__name__}",
                )
            # Sum the decimal renderings: exact, no float rounding.
            return str(Decimal(repr(cost)) + Decimal(repr(upstream)))
    return cost
