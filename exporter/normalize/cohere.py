"""Cohere usage: `billed_units` (what is charged) and `tokens` (what the model processed).

The bill is `billed_units`, which leaves out the prompt template Cohere adds; `tokens` is larger and
`cached_tokens` relates to it, not to the billed units, so with `billed_units` present the cache
count is not subtracted from anything. Without `billed_units` the processed counts are used, with
`cached_tokens` as the cached part of the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.normalize._fields import count0, sub, tokens, uncached


def is_cohere(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has Cohere's nested `billed_units` / `tokens` objects."""
    return "billed_units" in usage or isinstance(usage.get("tokens"), Mapping)


def cohere_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map a Cohere `usage` (or `meta`) object to the canonical partition."""
    billed = sub(usage, "billed_units", path)
    if billed:
        billed_path = f"{path}.billed_units"
        return tokens(count0(billed, "input_tokens", billed_path), output=count0(billed, "output_tokens", billed_path))
    processed = sub(usage, "tokens", path)
    processed_path = f"{path}.tokens"
    cached = count0(usage, "cached_tokens", path)
    input_tokens = uncached(
        count0(processed, "input_tokens", processed_path),
        f"{processed_path}.input_tokens",
        (("cached_tokens", cached),),
    )
    return tokens(input_tokens, cached, 0, count0(processed, "output_tokens", processed_path))
