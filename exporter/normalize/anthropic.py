"""Anthropic Messages usage (also what Bedrock InvokeModel, Vertex and MiniMax return for Claude-style APIs).

`input_tokens` already EXCLUDES `cache_read_input_tokens` and `cache_creation_input_tokens`, so it is
the canonical uncached input unchanged. Reasoning is `output_tokens_details.thinking_tokens`, part of
`output_tokens`.

Streaming: `message_start` carries the usage so far (output is typically 1) and `message_delta`
carries CUMULATIVE counts: the delta's numbers replace the start's, they are never added. Current
API versions put every field in the final `message_delta`, so its usage alone is complete; older
ones sent only `output_tokens` there, and `merge_stream_usage` combines the two events.

Cache writes: `cache_creation_input_tokens` counts every cache write; `cache_creation` splits them by
lifetime (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`). The 1-hour part costs more, so it
travels as `cache_write_1h_tokens` (a part of `cache_write_tokens`, as reasoning is a part of output).

Server-side web searches (`server_tool_use.web_search_requests`) are billed per search on top of the
tokens; they travel as `web_search_requests` and are priced at the model's per-search price.

Server-side compaction and the advisor tool add `usage.iterations`. Anthropic documents that the
top-level counts leave out compaction iterations and that the billed total is the sum over the
iterations, so we sum the iterations run by the request's own model. Advisor iterations name their
own (different, differently priced) `model`; one event has one model, so they are left out here and
stay visible in the stored raw usage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exporter.events import InvalidEvent
from exporter.normalize._fields import check_reasoning, count, count0, sub, tokens


def is_anthropic(usage: Mapping[str, Any]) -> bool:
    """Tell whether the usage has keys only Anthropic-style usage has."""
    details = usage.get("output_tokens_details")
    return (
        "cache_creation_input_tokens" in usage
        or "cache_read_input_tokens" in usage
        or "cache_creation" in usage
        or "server_tool_use" in usage
        or "iterations" in usage
        or (isinstance(details, Mapping) and "thinking_tokens" in details)
    )


def anthropic_tokens(usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """Map an Anthropic `usage` object (message, message_start or message_delta) to the partition."""
    if "input_tokens" not in usage:
        # An old-style message_delta: only the output count, the input is in message_start.
        raise InvalidEvent(
            f"{path}.input_tokens",
            "is missing; an Anthropic message_delta usage without input_tokens must be merged with its "
            "message_start usage first (exporter.normalize.merge_stream_usage)",
        )
    details = sub(usage, "output_tokens_details", path)
    reasoning = count0(details, "thinking_tokens", f"{path}.output_tokens_details")
    parts = _own_model_iterations(usage, path)
    if parts:
        input_tokens = cache_read = cache_write = write_1h = output = 0
        for index, item in parts:
            item_path = f"{path}.iterations[{index}]"
            input_tokens += count0(item, "input_tokens", item_path)
            cache_read += count0(item, "cache_read_input_tokens", item_path)
            cache_write += _cache_write(item, item_path)
            write_1h += _cache_write_1h(item, item_path)
            output += count0(item, "output_tokens", item_path)
        check_reasoning(reasoning, output, f"{path}.output_tokens_details.thinking_tokens", f"{path}.iterations")
        mapped = _with_1h(tokens(input_tokens, cache_read, cache_write, output, reasoning), write_1h, path)
        return _with_searches(mapped, usage, path)
    output = count0(usage, "output_tokens", path)
    check_reasoning(reasoning, output, f"{path}.output_tokens_details.thinking_tokens", f"{path}.output_tokens")
    mapped = tokens(
        count0(usage, "input_tokens", path),
        count0(usage, "cache_read_input_tokens", path),
        _cache_write(usage, path),
        output,
        reasoning,
    )
    return _with_searches(_with_1h(mapped, _cache_write_1h(usage, path), path), usage, path)


def _with_searches(mapped: dict[str, int], usage: Mapping[str, Any], path: str) -> dict[str, int]:
    """`mapped` with the web searches the call ran (`server_tool_use.web_search_requests`), when any."""
    searches = count0(sub(usage, "server_tool_use", path), "web_search_requests", f"{path}.server_tool_use")
    return {**mapped, "web_search_requests": searches} if searches else mapped


def _cache_write_1h(usage: Mapping[str, Any], path: str) -> int:
    """The 1-hour cache writes of `cache_creation.ephemeral_1h_input_tokens` (0 when not split)."""
    breakdown = sub(usage, "cache_creation", path)
    return count0(breakdown, "ephemeral_1h_input_tokens", f"{path}.cache_creation")


def _with_1h(mapped: dict[str, int], write_1h: int, path: str) -> dict[str, int]:
    if not write_1h:
        return mapped
    if write_1h > mapped["cache_write_tokens"]:
        raise InvalidEvent(
            f"{path}.cache_creation.ephemeral_1h_input_tokens",
            f"({write_1h}) exceeds the cache writes ({mapped['cache_write_tokens']}), which include it",
        )
    return {**mapped, "cache_write_1h_tokens": write_1h}


def _cache_write(usage: Mapping[str, Any], path: str) -> int:
    total = count(usage, "cache_creation_input_tokens", path)
    if total is not None:
        return total
    # Only the per-TTL breakdown: its parts add up to the cache writes.
    breakdown = sub(usage, "cache_creation", path)
    return sum(count0(breakdown, key, f"{path}.cache_creation") for key in breakdown if key.endswith("_tokens"))


def _own_model_iterations(usage: Mapping[str, Any], path: str) -> list[tuple[int, Mapping[str, Any]]]:
    items = usage.get("iterations")
    if items is None:
        return []
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise InvalidEvent(f"{path}.iterations", f"must be a list, got {type(items).__name__}")
    own = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidEvent(f"{path}.iterations[{index}]", f"must be an object, got {type(item).__name__}")
        if "model" in item or item.get("type") == "advisor_message":
            continue
        own.append((index, item))
    return own


def merge_stream_usage(message_start: Mapping[str, Any], message_delta: Mapping[str, Any]) -> dict[str, Any]:
    """One usage object for a streamed message from its `message_start` and `message_delta` usage.

    The delta's counts are cumulative and replace the start's; summing them would count the first
    output tokens twice.
    """
    merged = dict(message_start)
    merged.update((key, value) for key, value in message_delta.items() if value is not None)
    return merged
