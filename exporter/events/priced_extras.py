"""What a call is priced with beyond its tokens (searches, service tier, inference geo, citation tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.events.fields import (
    CITATION_TOKENS,
    FILE_SEARCHES,
    INFERENCE_GEO,
    MAX_WEB_SEARCHES,
    SERVICE_TIER,
    SERVICE_TIER_MAX_LEN,
    WEB_SEARCHES,
)


def priced_extras(metadata: Mapping[str, Any], output_room: int = 0) -> tuple[int, str, int, str, int]:
    """The web searches, service tier, file searches, inference geo and citation tokens a call is priced with.

    Read from its (stored) metadata. Citation tokens are a part of the output: a count above
    `output_room` (output tokens less reasoning tokens) is not a well-formed one, and is 0.

    Ingest and `llmcost reprice` both read them here, so a reprice prices a call as ingest did. The
    event fields were validated and written into the metadata; a key only the caller's own metadata
    holds is taken when it is well formed, else ignored (metadata is free-form). Without either key,
    the provider usage kept in `metadata["usage"]` says (Anthropic's `server_tool_use.web_search_requests`,
    `service_tier`, `speed` and `inference_geo`, Perplexity's `num_search_queries`), as ingest read it: so
    calls stored before these fields existed are repriced with them.
    """
    usage = metadata.get("usage")
    if isinstance(usage, Mapping) and not (
        WEB_SEARCHES in metadata and SERVICE_TIER in metadata and INFERENCE_GEO in metadata
    ):
        metadata = {**_usage_extras(usage), **metadata}
    count = metadata.get(WEB_SEARCHES)
    searches = 0
    if isinstance(count, int | float) and not isinstance(count, bool) and 0 <= count <= MAX_WEB_SEARCHES:
        searches = int(count) if count == int(count) else 0
    tier = metadata.get(SERVICE_TIER)
    if type(tier) is not str or len(tier) > SERVICE_TIER_MAX_LEN or not tier.isprintable():
        tier = ""
    return (
        searches,
        tier.strip().lower(),
        _search_count(metadata.get(FILE_SEARCHES)),
        _text(metadata.get(INFERENCE_GEO)),
        _part_count(metadata.get(CITATION_TOKENS), output_room),
    )


def _text(value: Any) -> str:
    """A well-formed short text value from metadata (a tier, a geo), lower-cased; else ""."""
    if type(value) is not str or len(value) > SERVICE_TIER_MAX_LEN or not value.isprintable():
        return ""
    return value.strip().lower()


def _part_count(count: Any, room: int) -> int:
    """A well-formed token count from metadata that fits in `room`, else 0."""
    if type(count) is int and 0 <= count <= room:
        return count
    return 0


def _search_count(count: Any) -> int:
    """A well-formed search count from metadata, else 0 (metadata is free-form)."""
    if isinstance(count, int | float) and not isinstance(count, bool) and 0 <= count <= MAX_WEB_SEARCHES:
        return int(count) if count == int(count) else 0
    return 0


def _usage_extras(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The web searches and tier a provider usage object reports (the normalizers' reading of it)."""
    out: dict[str, Any] = {}
    tools = usage.get("server_tool_use")
    searches = tools.get("web_search_requests") if isinstance(tools, Mapping) else usage.get("num_search_queries")
    if searches:
        out[WEB_SEARCHES] = searches
    tier = "fast" if usage.get("speed") == "fast" else usage.get("service_tier")
    if tier is not None:
        out[SERVICE_TIER] = tier
    if usage.get(INFERENCE_GEO) is not None:
        out[INFERENCE_GEO] = usage[INFERENCE_GEO]
    return out
