"""Gemini / Vertex AI native `usageMetadata` (`promptTokenCount`, `candidatesTokenCount`, …).

`promptTokenCount` includes `cachedContentTokenCount`; tool-use prompt tokens are counted apart and
are input too. Thinking tokens (`thoughtsTokenCount`) are NOT in `candidatesTokenCount` but are
billed as output, so output = candidates + thoughts and reasoning = thoughts.

Audio is counted per modality (`promptTokensDetails`, `cacheTokensDetails`, `candidatesTokensDetails`:
lists of `{modality, tokenCount}`); the cached audio is a part of the prompt's audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.events import InvalidEvent
from exporter.normalize._fields import count0, tokens, uncached, with_audio


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
    prompt_audio = _audio(usage, "promptTokensDetails", path)
    cached_audio = _audio(usage, "cacheTokensDetails", path)
    if cached_audio > prompt_audio:
        raise InvalidEvent(
            f"{path}.cacheTokensDetails", f"cached AUDIO ({cached_audio}) exceeds the prompt's AUDIO ({prompt_audio})"
        )
    output_audio = _audio(usage, "candidatesTokensDetails", path)
    return with_audio(mapped, prompt_audio - cached_audio, cached_audio, output_audio, path)


def _audio(usage: Mapping[str, Any], key: str, path: str) -> int:
    """The AUDIO `tokenCount` of a per-modality list (0 when absent)."""
    details = usage.get(key)
    if details is None:
        return 0
    if not isinstance(details, list):
        raise InvalidEvent(f"{path}.{key}", f"must be a list, got {type(details).__name__}")
    audio = 0
    for index, item in enumerate(details):
        if not isinstance(item, Mapping):
            raise InvalidEvent(f"{path}.{key}[{index}]", f"must be an object, got {type(item).__name__}")
        if item.get("modality") == "AUDIO":
            audio += count0(item, "tokenCount", f"{path}.{key}[{index}]")
    return audio
