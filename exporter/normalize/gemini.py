"""Gemini / Vertex AI native `usageMetadata` (`promptTokenCount`, `candidatesTokenCount`, …).

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
from typing import Any

from exporter.events import InvalidEvent
from exporter.normalize._fields import count0, tokens, uncached, with_media

_PRICED_APART = ("AUDIO", "IMAGE", "VIDEO")
"""The modalities whose token counts are carried apart (each may have its own price)."""


def is_gemini(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has Gemini's camelCase keys."""
    return "promptTokenCount" in usage or "candidatesTokenCount" in usage


def gemini_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Gemini `usageMetadata` object to the canonical partition."""
    cached = count0(usage, "cachedContentTokenCount", path)
    prompt = count0(usage, "promptTokenCount", path)
    input_tokens = uncached(prompt, f"{path}.promptTokenCount", (("cachedContentTokenCount", cached),))
    input_tokens += count0(usage, "toolUsePromptTokenCount", path)
    thoughts = count0(usage, "thoughtsTokenCount", path)
    output = count0(usage, "candidatesTokenCount", path) + thoughts
    mapped = tokens(input_tokens, cached, 0, output, thoughts)
    prompt_parts = _by_modality(usage, "promptTokensDetails", path)
    cached_parts = _by_modality(usage, "cacheTokensDetails", path)
    output_parts = _by_modality(usage, "candidatesTokensDetails", path)
    for modality in _PRICED_APART:
        in_prompt, cached_part = prompt_parts.get(modality, 0), cached_parts.get(modality, 0)
        if cached_part > in_prompt:
            raise InvalidEvent(
                f"{path}.cacheTokensDetails",
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
        grounding = candidate.get("groundingMetadata") if isinstance(candidate, Mapping) else None
        searched = grounding.get("webSearchQueries") if isinstance(grounding, Mapping) else None
        if isinstance(searched, list):
            queries += len(searched)
    if not queries:
        return 0
    return 1 if isinstance(model, str) and _PER_GROUNDED_PROMPT.search(model.lower()) else queries


def _by_modality(usage: Mapping[str, Any], key: str, path: str) -> dict[str, int]:
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
            counts[modality] = counts.get(modality, 0) + count0(item, "tokenCount", f"{path}.{key}[{index}]")
    return counts
