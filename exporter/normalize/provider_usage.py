"""Events that carry a raw provider `usage` object instead of token fields.

The shape is recognised from the usage keys themselves (different providers copy each other's
shapes, so the provider name is only a hint, used where one shape means two things). Each shape's
mapping to the canonical partition lives in its own module; this one picks the module, unwraps
whole responses or stream events passed as the usage, and builds the event.

The raw usage object is kept in the event's `metadata["usage"]`: the canonical partition cannot hold
everything (image tokens, web searches, advisor iterations), and nothing the caller sent
is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.events import TOKEN_FIELDS, InvalidEvent
from exporter.normalize._fields import count0, tokens
from exporter.normalize.anthropic import anthropic_tokens, is_anthropic
from exporter.normalize.batches import batch_result_of, event_from_batch_result
from exporter.normalize.bedrock import bedrock_tokens, is_bedrock_converse
from exporter.normalize.cohere import cohere_tokens, is_cohere
from exporter.normalize.gemini import gemini_tokens, grounded_searches, is_gemini
from exporter.normalize.openai_like import (
    chat_tokens,
    is_realtime,
    is_responses,
    realtime_tokens,
    responses_tokens,
    usage_cost,
)
from exporter.normalize.responses import event_from_response, response_kind

_TOKEN_KEYS = frozenset(
    (
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "inputTokens",
        "outputTokens",
        "promptTokenCount",
        "candidatesTokenCount",
        "prompt_token_count",  # Gemini as Google's Python SDKs dump it
        "candidates_token_count",
        "billed_units",
        "total_tokens",
    )
)
_SHAPE_HINT = (
    "expected the usage of OpenAI (prompt_tokens or input_tokens), Anthropic (input_tokens), "
    "Bedrock Converse (inputTokens), Gemini (promptTokenCount or prompt_token_count) or Cohere (billed_units)"
)


def map_usage(usage: Any, provider: str = "", path: str = "usage") -> tuple[dict[str, int], Any, str | None]:
    """Map a provider usage object to `(token fields, reported cost or None, model or None)`.

    `usage` may also be a whole response or stream event that contains one (an Anthropic
    `message_start` nests it under `message`, which also names the model).
    """
    usage, path, model = unwrap_usage(usage, path)
    return _tokens_for_shape(usage, path, provider), usage_cost(usage, path), model


def unwrap_usage(usage: Any, path: str = "usage") -> tuple[Mapping[str, Any], str, str | None]:
    """The usage object itself out of a response or stream event that holds one: `(usage, its path, model)`."""
    model: str | None = None
    for _ in range(3):  # response → message → usage is the deepest nesting in use
        if not isinstance(usage, Mapping):
            raise InvalidEvent(path, f"must be an object, got {type(usage).__name__}")
        if not _TOKEN_KEYS.isdisjoint(usage):
            break
        inner = usage.get("message")
        if isinstance(inner, Mapping) and "usage" in inner:
            model = inner.get("model") if isinstance(inner.get("model"), str) else model
            usage, path = inner["usage"], f"{path}.message.usage"
            continue
        for key in ("usage", "usageMetadata", "usage_metadata", "meta"):
            if isinstance(usage.get(key), Mapping):
                if model is None and isinstance(usage.get("model"), str):
                    model = usage["model"]
                usage, path = usage[key], f"{path}.{key}"
                break
        else:
            break
    if not isinstance(usage, Mapping):
        raise InvalidEvent(path, f"must be an object, got {type(usage).__name__}")
    if not usage:
        raise InvalidEvent(path, "is empty")
    return usage, path, model


def _tokens_for_shape(usage: Mapping[str, Any], path: str, provider: str) -> dict[str, int]:
    if is_bedrock_converse(usage):
        return bedrock_tokens(usage, path)
    if is_gemini(usage):
        return gemini_tokens(usage, path)
    if is_cohere(usage):
        return cohere_tokens(usage, path)
    if "prompt_tokens" in usage or "completion_tokens" in usage or "prompt_cache_hit_tokens" in usage:
        return chat_tokens(usage, path, provider)
    if is_realtime(usage):
        return realtime_tokens(usage, path)
    if "input_tokens" in usage or "output_tokens" in usage:
        anthropic, responses = is_anthropic(usage), is_responses(usage)
        if anthropic and responses:
            raise InvalidEvent(path, "mixes Anthropic keys (cache_*_input_tokens) with Responses API keys (*_details)")
        if anthropic or "input_tokens" not in usage:
            return anthropic_tokens(usage, path)
        # Plain {input_tokens, output_tokens}: Anthropic and Responses read it the same way.
        return responses_tokens(usage, path)
    if "total_tokens" in usage:  # embeddings (Voyage): every token is input
        return tokens(count0(usage, "total_tokens", path))
    keys = ", ".join(sorted(map(str, usage))[:8])
    raise InvalidEvent(path, f"unrecognised usage object ({keys}); {_SHAPE_HINT}")


def event_from_usage(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Map `{"provider": …, "model": …, "usage": {…}, <other fields>}` to a canonical event.

    A whole provider response, posted as is or wrapped as the `usage`, keeps only its usage, ids
    and model (`responses`): its content never reaches `metadata`.
    """
    kind = response_kind(raw)
    if kind is not None:
        raw = event_from_response(raw, kind)
    clashing = [name for name in TOKEN_FIELDS if name in raw]
    if clashing:
        raise InvalidEvent("usage", f"cannot be combined with {', '.join(clashing)}: send one or the other")
    out = dict(raw)
    wrapped = out.pop("usage")
    batch_line = batch_result_of(wrapped) if isinstance(wrapped, Mapping) else None
    if batch_line is not None:
        # A batch result line (or its `response`) given as the usage: a batch call, as when the line is
        # sent as it is (exporter.normalize.batches). A bare usage object cannot say so: the caller does.
        inner = event_from_batch_result(batch_line)
        for key in ("request_id", "timestamp", "model", "service_tier", "web_search_requests", "file_search_requests"):
            if out.get(key) is None and inner.get(key) is not None:
                out[key] = inner[key]
        if out.get("provider") is None:
            out["provider"] = inner["provider"]
        custom_id = (inner.get("metadata") or {}).get("batch_custom_id")
        if custom_id is not None and isinstance(out.get("metadata", {}), dict):
            out["metadata"] = {"batch_custom_id": custom_id, **out.get("metadata", {})}
        wrapped = inner["usage"]
    elif isinstance(wrapped, Mapping) and response_kind(wrapped) is not None:
        # A whole response given as the usage: keep its id and time, drop its content. What prices it
        # beside the usage (its tier, a Responses object's web and file searches) is kept as when posted as is.
        inner = event_from_response(wrapped, response_kind(wrapped) or "")
        for key in ("request_id", "timestamp", "model", "service_tier", "web_search_requests", "file_search_requests"):
            if out.get(key) is None and inner.get(key) is not None:
                out[key] = inner[key]
        if out.get("provider") is None:
            out["provider"] = inner["provider"]
        wrapped = inner["usage"]
    provider = out.get("provider")
    if isinstance(wrapped, Mapping) and isinstance(
        wrapped.get("usageMetadata", wrapped.get("usage_metadata")), Mapping
    ):
        # A whole Gemini response: its grounding searches are billed apart and its usage does not count them.
        version = wrapped.get("modelVersion", wrapped.get("model_version"))
        if out.get("model") is None and isinstance(version, str):
            out["model"] = version
        searches = grounded_searches(wrapped, out.get("model"))
        if searches and out.get("web_search_requests") is None:
            out["web_search_requests"] = searches
    usage, path, model = unwrap_usage(wrapped)
    token_fields = _tokens_for_shape(usage, path, provider if isinstance(provider, str) else "")
    cost = usage_cost(usage, path)
    out.update(token_fields)
    if cost is not None and out.get("cost_usd") is None:  # a cost the caller sent wins
        out["cost_usd"] = cost
    if model is not None and out.get("model") is None:
        out["model"] = model
    # Anthropic: service_tier standard, priority or batch, and speed fast (fast mode): priced apart.
    tier = "fast" if usage.get("speed") == "fast" else usage.get("service_tier")
    if isinstance(tier, str) and out.get("service_tier") is None:
        out["service_tier"] = tier
    metadata = out.get("metadata")
    if metadata is None:
        out["metadata"] = {"usage": usage}
    elif isinstance(metadata, dict):  # anything else is left for parse_event to reject
        out["metadata"] = {"usage": usage, **metadata}
    return out
