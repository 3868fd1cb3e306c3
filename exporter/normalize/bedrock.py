"""AWS Bedrock Converse usage (`inputTokens`, `outputTokens`, `cacheReadInputTokens`, …).

Converse `inputTokens` EXCLUDE the cache reads and writes, like Anthropic's: in the recorded calls
`totalTokens` = `inputTokens` + `outputTokens` + `cacheReadInputTokens` + `cacheWriteInputTokens`
for every model family (Claude, Nova, Llama, …). Each record is checked against its own total: if
`totalTokens` instead equals input + output while cache tokens are reported, that record's
`inputTokens` included them and they are subtracted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.normalize._fields import count, count0, first_count, tokens, uncached


def is_bedrock_converse(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has Converse's camelCase keys."""
    return "inputTokens" in usage or "outputTokens" in usage


def bedrock_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Converse `usage` object to the canonical partition."""
    input_tokens = count0(usage, "inputTokens", path)
    output = count0(usage, "outputTokens", path)
    # The ...Count spellings are older names for the same numbers.
    cache_read = first_count(usage, ("cacheReadInputTokens", "cacheReadInputTokenCount"), path) or 0
    cache_write = first_count(usage, ("cacheWriteInputTokens", "cacheWriteInputTokenCount"), path) or 0
    total = count(usage, "totalTokens", path)
    if cache_read + cache_write and total == input_tokens + output:
        input_tokens = uncached(
            input_tokens,
            f"{path}.inputTokens",
            (("cacheReadInputTokens", cache_read), ("cacheWriteInputTokens", cache_write)),
        )
    return tokens(input_tokens, cache_read, cache_write, output)
