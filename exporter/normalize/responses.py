"""Whole provider responses posted as they are: an OpenAI Chat Completions or Responses object, an Anthropic Message.

The shape names the provider when the record does not (`object: "chat.completion"` or `"response"`
is OpenAI's, `type: "message"` Anthropic's; a `provider` the caller gives wins, since OpenAI-compatible
APIs return the same shape). The response `id` becomes the request id, so a retried post is a
duplicate; `created` (Chat Completions) or `created_at` (Responses) the timestamp.

Only what a cost record needs is kept: the usage, ids, model and the caller's own attribution fields,
and from a Responses object's output the number of its `web_search_call` and `file_search_call` items
(both tools are billed per call and its usage does not count them).
Everything else — messages, choices, output text, tool calls and their arguments, instructions — is
dropped here, before validation, so none of it can reach `metadata` or the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Canonical fields the caller may set beside (or inside) a posted response; these win over the response's.
_CALLER_FIELDS = (
    "provider",
    "request_id",
    "timestamp",
    "cost_usd",
    "latency_ms",
    "status",
    "project",
    "user",
    "service",
    "service_tier",  # the tier that served the call: it has its own price (flex, priority)
)
# Small, content-free facts worth keeping in metadata.
_KEPT = ("system_fingerprint", "stop_reason")

CHAT_COMPLETION = "openai.chat.completion"
RESPONSES = "openai.response"
ANTHROPIC_MESSAGE = "anthropic.message"


# The events that end an OpenAI Responses stream (`stream=True`): each carries the whole response, usage
# included (`response.completed`; `response.incomplete` when cut short, `response.failed`). The events
# before them carry no usage, or none that is final.
STREAM_END_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def stream_final_response(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The response carried by the event that ends an OpenAI Responses stream; anything else as it is."""
    response = raw.get("response")
    if raw.get("type") in STREAM_END_EVENTS and isinstance(response, Mapping):
        return response
    return raw


def response_kind(raw: Mapping[str, Any]) -> str | None:
    """Name the response shape of `raw`, or None when it is not a whole provider response."""
    obj = raw.get("object")
    if obj in ("chat.completion", "chat.completion.chunk"):
        return CHAT_COMPLETION
    if obj == "response" and "output" in raw:
        return RESPONSES
    if raw.get("type") == "message" and raw.get("role") == "assistant":
        return ANTHROPIC_MESSAGE
    return None


def event_from_response(raw: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A canonical-with-usage record (`event_from_usage`'s input) holding nothing of the response's content."""
    out: dict[str, Any] = {"provider": "anthropic" if kind == ANTHROPIC_MESSAGE else "openai"}
    response_id = raw.get("id")
    if isinstance(response_id, str) and response_id:
        out["request_id"] = response_id
    created = raw.get("created_at") if kind == RESPONSES else raw.get("created")
    if created is not None and kind != ANTHROPIC_MESSAGE:
        out["timestamp"] = created
    if raw.get("model") is not None:
        out["model"] = raw["model"]
    if kind == RESPONSES and raw.get("status") in ("failed", "incomplete") and raw.get("error"):
        out["status"] = "error"
    for name in _CALLER_FIELDS:
        if raw.get(name) is not None and (name != "status" or raw[name] in ("success", "error")):
            out[name] = raw[name]  # a Responses object's own status ("completed") is not ours
    if not isinstance(out.get("service_tier"), str):  # a tier the response does not name as text prices nothing
        out.pop("service_tier", None)
    out["usage"] = raw.get("usage")
    if kind == RESPONSES:
        for field, item_type in (
            ("web_search_requests", "web_search_call"),
            ("file_search_requests", "file_search_call"),
        ):
            if raw.get(field) is None:
                calls = _tool_calls(raw.get("output"), item_type)
                if calls:
                    out[field] = calls
    metadata: dict[str, Any] = {"source": kind}
    metadata.update((key, raw[key]) for key in _KEPT if isinstance(raw.get(key), str | int | float))
    caller_metadata = raw.get("metadata")
    if kind == RESPONSES:
        # A Responses object's `metadata` is the request's own key/value tags: kept, as strings only.
        if isinstance(caller_metadata, Mapping):
            metadata.update((str(k), v) for k, v in caller_metadata.items() if isinstance(v, str))
    elif caller_metadata is not None:
        out["metadata"] = caller_metadata  # the caller's own metadata beside an Anthropic / Chat response
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {**metadata, **out["metadata"]}
    elif "metadata" not in out:
        out["metadata"] = metadata
    return out


def _tool_calls(output: Any, item_type: str) -> int:
    """How many `item_type` items (`web_search_call`, `file_search_call`) a Responses object's output holds.

    Both tools are billed per call, one output item each, whatever the item holds (a file search call
    may list several queries: still one call). The usage object does not count them.
    """
    if not isinstance(output, list):
        return 0
    return sum(1 for item in output if isinstance(item, Mapping) and item.get("type") == item_type)
