"""Gemini / Vertex AI native `usageMetadata` (`promptTokenCount`, `candidatesTokenCount`, …).

Read in either spelling: the REST API's camelCase, and the snake_case (`usage_metadata`,
`prompt_token_count`, …) that Google's Python SDKs give by default (google-genai's `model_dump()`,
`model_dump_json()` and `to_json_dict()`, the Vertex AI SDK's `to_dict()`).

`promptTokenCount` includes `cachedContentTokenCount`; tool-use prompt tokens are counted apart and
are input too. Thinking tokens (`thoughtsTokenCount`) are NOT in `candidatesTokenCount` but are
billed as output, so output = candidates + thoughts and reasoning = thoughts.

Audio, image and video are counted per modality (`promptTokensDetails`, `cacheTokensDetails`,
`candidatesTokensDetails`: lists of `{modality, tokenCount}`); the cached part of each is a part of the
prompt's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from exporter.events import InvalidEvent
from exporter.normalize._fields import count0, tokens, uncached, with_media

_PRICED_APART = ("AUDIO", "IMAGE", "VIDEO")
"""The modalities whose token counts are carried apart (each may have its own price)."""


class _Names(NamedTuple):
    """The usage keys of one spelling, so a problem is reported under the name that was sent."""

    prompt: str
    cached: str
    tool_prompt: str
    thoughts: str
    candidates: str
    prompt_details: str
    cache_details: str
    candidates_details: str
    token_count: str


_CAMEL = _Names(
    "promptTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "thoughtsTokenCount",
    "candidatesTokenCount",
    "promptTokensDetails",
    "cacheTokensDetails",
    "candidatesTokensDetails",
    "tokenCount",
)
_SNAKE = _Names(
    "prompt_token_count",
    "cached_content_token_count",
    "tool_use_prompt_token_count",
    "thoughts_token_count",
    "candidates_token_count",
    "prompt_tokens_details",
    "cache_tokens_details",
    "candidates_tokens_details",
    "token_count",
)


def is_gemini(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has Gemini's keys, camelCase or snake_case."""
    return any(key in usage for key in (_CAMEL.prompt, _CAMEL.candidates, _SNAKE.prompt, _SNAKE.candidates))


def gemini_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Gemini `usageMetadata` object (either spelling) to the canonical partition."""
    names = _CAMEL if _CAMEL.prompt in usage or _CAMEL.candidates in usage else _SNAKE
    cached = count0(usage, names.cached, path)
    prompt = count0(usage, names.prompt, path)
    input_tokens = uncached(prompt, f"{path}.{names.prompt}", ((names.cached, cached),))
    input_tokens += count0(usage, names.tool_prompt, path)
    thoughts = count0(usage, names.thoughts, path)
    output = count0(usage, names.candidates, path) + thoughts
    mapped = tokens(input_tokens, cached, 0, output, thoughts)
    prompt_parts = _by_modality(usage, names.prompt_details, names.token_count, path)
    cached_parts = _by_modality(usage, names.cache_details, names.token_count, path)
    output_parts = _by_modality(usage, names.candidates_details, names.token_count, path)
    for modality in _PRICED_APART:
        in_prompt, cached_part = prompt_parts.get(modality, 0), cached_parts.get(modality, 0)
        if cached_part > in_prompt:
            raise InvalidEvent(
                f"{path}.{names.cache_details}",
                f"cached {modality} ({cached_part}) exceeds the prompt's {modality} ({in_prompt})",
            )
        if in_prompt or output_parts.get(modality):
            with_media(
                mapped, modality.lower(), in_prompt - cached_part, cached_part, output_parts.get(modality, 0), path
            )
    return mapped


# Google bills Grounding with Google Search per grounded prompt on Gemini 1.x and 2.x, and per search
# query from Gemini 3 on (ai.google.dev/gemini-api/docs/pricing); genai-prices' `web_searches_kcount`
# carries each family's rate in its own unit ($35 per 1,000 prompts, $14 per 1,000 queries).
_PER_GROUNDED_PROMPT = re.compile(r"(?:^|/)gemini-[12](?:\.\d+)?-")


def grounded_searches(response: Mapping[str, Any], model: Any) -> int:
    """The Google Search grounding a whole Gemini response is billed for: its prompt or its queries.

    A candidate's `groundingMetadata.webSearchQueries` lists the searches the model ran; a response
    without any ran none and is not billed for grounding (the tool was offered, not used). The
    queries' text is only counted, never kept.
    """
    candidates = response.get("candidates")
    if not isinstance(candidates, list):
        return 0
    queries = 0
    for candidate in candidates:
        grounding = None
        if isinstance(candidate, Mapping):  # camelCase from the REST API, snake_case from the Python SDKs
            grounding = candidate.get("groundingMetadata") or candidate.get("grounding_metadata")
        searched = None
        if isinstance(grounding, Mapping):
            searched = grounding.get("webSearchQueries") or grounding.get("web_search_queries")
        if isinstance(searched, list):
            queries += len(searched)
    if not queries:
        return 0
    return 1 if isinstance(model, str) and _PER_GROUNDED_PROMPT.search(model.lower()) else queries


def _by_modality(usage: Mapping[str, Any], key: str, token_count: str, path: str) -> dict[str, int]:
    """The `tokenCount`s of a per-modality list by modality (`AUDIO`, `IMAGE`, …); empty when absent."""
    details = usage.get(key)
    if details is None:
        return {}
    if not isinstance(details, list):
        raise InvalidEvent(f"{path}.{key}", f"must be a list, got {type(details).__name__}")
    counts: dict[str, int] = {}
    for index, item in enumerate(details):
        if not isinstance(item, Mapping):
            raise InvalidEvent(f"{path}.{key}[{index}]", f"must be an object, got {type(item).__name__}")
        modality = item.get("modality")
        if modality in _PRICED_APART:
            counts[modality] = counts.get(modality, 0) + count0(item, token_count, f"{path}.{key}[{index}]")
    return counts
