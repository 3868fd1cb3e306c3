"""Gemini / Vertex AI native `usageMetadata` (`promptTokenCount`, `candidatesTokenCount`, …).

`promptTokenCount` includes `cachedContentTokenCount`; tool-use prompt tokens are counted apart and
are input too. Thinking tokens (`thoughtsTokenCount`) are NOT in `candidatesTokenCount` but are
billed as output, so output = candidates + thoughts and reasoning = thoughts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.normalize._fields import count0, tokens, uncached


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
    return tokens(input_tokens, cached, 0, output, thoughts)
