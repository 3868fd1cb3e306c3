"""LiteLLM records: the `StandardLoggingPayload` its callbacks log and `LiteLLM_SpendLogs` rows.

Field names follow BerriAI/litellm `litellm/types/utils.py` (`StandardLoggingPayload`,
`StandardLoggingMetadata`, `StandardLoggingUserAPIKeyMetadata`) and `schema.prisma`
(`LiteLLM_SpendLogs`). LiteLLM's cost (`response_cost` / `spend`, USD) is kept as the event's
`cost_usd`: it already applied the deployment's prices and any custom pricing. A model LiteLLM cannot
price gets `response_cost` 0 with `response_cost_failure_debug_info`: that 0 is not a price, so the
event carries no cost and llmcost prices it from its own table, or counts it as unpriced.

Attribution: `project` is the LiteLLM project of the key, else its team (alias before id); `user` is
the end user (the `user` of the request), else the internal user owning the key, else the SDK's
`user=` argument (`model_parameters.user`). Only these and a
short list of routing fields are kept: the payloads also carry the full prompt and response, the
client IP and key hashes, which must not end up in metadata.

Tokens: LiteLLM's usage follows OpenAI's shape, with `prompt_tokens` including cached tokens, so the
full usage object (`hidden_params.usage_object`, `metadata.usage_object`, or the SpendLogs
`metadata.additional_usage_values` beside the token columns) goes through the Chat Completions
mapping. A LiteLLM cache hit never reached a provider: its tokens are not counted (the cost is 0).

Skipped: a StandardLoggingPayload of a failure that reached no provider (`reached_no_provider`: no
provider named, no tokens, no cost), which LiteLLM's proxy logs for every request it refused itself (a
wrong or missing key, a model it does not serve), raises `SkippedRecord`: no call was made and nothing
was spent, and storing them would let anyone who can reach the proxy fill llmcost with error calls of
provider `unknown` under models of their choosing. A provider's own failure (its 429) names the provider
and is an error call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from exporter.events import InvalidEvent, SkippedRecord
from exporter.normalize._fields import tokens
from exporter.normalize.openai_like import chat_tokens
from exporter.redaction import redact

# LiteLLM's payload status is success / failure; anything else leaves the default (success).
_STATUSES = {"success": "success", "failure": "error", "error": "error"}
_META_KEYS = (
    ("call_type", "call_type"),
    ("model_group", "model_group"),
    ("model_id", "model_id"),
    ("api_base", "api_base"),
    ("trace_id", "trace_id"),
    ("session_id", "session_id"),
    ("request_tags", "request_tags"),
    ("team_id", "team_id"),
    ("organization_id", "organization_id"),
    ("agent_id", "agent_id"),
    ("mcp_namespaced_tool_name", "mcp_tool"),
)
# The API routes LiteLLM's Bedrock model names may start with (`BedrockModelInfo.get_bedrock_route`): the same
# model through Converse or InvokeModel. Not the import specs (`llama/arn:…`), which name how an imported
# model is called, nor `agent/` and `agentcore/`, whose ids are agents rather than models.
_BEDROCK_ROUTES = ("converse/", "invoke/", "converse_like/", "async_invoke/")
_KEY_META_KEYS = (
    ("user_api_key_alias", "key_alias"),
    ("user_api_key_team_id", "team_id"),
    ("user_api_key_team_alias", "team_alias"),
    ("user_api_key_org_id", "organization_id"),
    ("user_api_key_project_id", "project_id"),
)


def litellm_model(provider: str, model: str) -> str:
    """The model a LiteLLM call reached, without LiteLLM's routing prefixes (`bedrock/converse/m` → `m`)."""
    # LiteLLM names one model several ways: a Router failure or a Bedrock call keeps the provider prefix
    # ("anthropic/claude-…", "bedrock/anthropic.claude-…") that its other payloads drop, and a Bedrock call
    # names the API it went through ("converse/anthropic.claude-…"). One model, one series.
    if model.startswith(f"{provider}/"):
        model = model[len(provider) + 1 :]
    if provider == "bedrock":
        route = next((r for r in _BEDROCK_ROUTES if model.startswith(r)), "")
        model = model[len(route) :]
    return model


def is_litellm(raw: Mapping[str, Any]) -> bool:
    """Tell whether `raw` is a StandardLoggingPayload (`response_cost`) or a SpendLogs row (`spend`)."""
    return "response_cost" in raw or "spend" in raw or "call_type" in raw


def reached_no_provider(payload: Mapping[str, Any]) -> bool:
    """Tell whether a StandardLoggingPayload is a failure LiteLLM never routed to a provider (the proxy refused it).

    LiteLLM names the provider of every call it routed (`custom_llm_provider`), and of a failure the provider
    that failed (`error_information.llm_provider`); a request its proxy refused before routing has neither, and
    no tokens or cost. A SpendLogs row is never one: older proxies left its `custom_llm_provider` empty for
    calls they did route.
    """
    if "spend" in payload or payload.get("status") != "failure":
        return False
    info = payload.get("error_information")
    named = info.get("llm_provider") if isinstance(info, Mapping) else None
    spent = any(payload.get(key) for key in ("response_cost", "prompt_tokens", "completion_tokens", "total_tokens"))
    return not payload.get("custom_llm_provider") and not named and not spent


def event_from_litellm(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Map a LiteLLM StandardLoggingPayload or LiteLLM_SpendLogs row to a canonical event.

    Raises `SkippedRecord` for a failure that reached no provider, `InvalidEvent` for a malformed record.
    """
    spend_log = "spend" in raw
    if reached_no_provider(raw):
        raise SkippedRecord("reached_no_provider")
    meta = _object(raw.get("metadata"), "metadata")
    hidden = _object(raw.get("hidden_params"), "hidden_params")
    model = raw.get("model") or raw.get("model_group")
    custom = raw.get("custom_llm_provider")
    if custom is not None and not isinstance(custom, str):
        raise InvalidEvent("custom_llm_provider", f"must be a string, got {type(custom).__name__}")
    provider = custom or _model_prefix(model) or "unknown"
    if custom and isinstance(model, str):
        model = litellm_model(custom, model)
    out: dict[str, Any] = {"provider": provider, "model": model}

    request_id = raw.get("request_id") if spend_log else raw.get("id")
    if request_id is not None:
        out["request_id"] = request_id
    end, start = raw.get("endTime"), raw.get("startTime")
    if end is not None:
        out["timestamp"] = end
    latency = raw.get("request_duration_ms")
    out_latency = (
        latency if isinstance(latency, int | float) and not isinstance(latency, bool) else _latency(start, end)
    )
    if out_latency is not None:
        out["latency_ms"] = out_latency
    cost = raw.get("spend") if spend_log else raw.get("response_cost")
    if cost is not None and not (not cost and raw.get("response_cost_failure_debug_info")):
        out["cost_usd"] = cost
    status = raw.get("status") or meta.get("status")
    if status in _STATUSES:
        out["status"] = _STATUSES[status]

    cache_hit = raw.get("cache_hit") in (True, "True", "true")
    if cache_hit:
        out.update(tokens(0))
    else:
        out.update(_tokens(raw, meta, hidden, "metadata" if spend_log else "hidden_params", provider))

    project = (
        _first(meta, ("user_api_key_project_alias", "user_api_key_project_id", "user_api_key_team_alias", "team_alias"))
        or _first(raw, ("team_id",))
        or _first(meta, ("user_api_key_team_id", "team_id"))
    )
    if project:
        out["project"] = project
    user = _first(raw, ("end_user",)) or _first(meta, ("user_api_key_end_user_id", "user_api_key_user_id"))
    user = user or _first(raw, ("user",))
    params = raw.get("model_parameters")
    if not user and isinstance(params, Mapping):  # the SDK's `user=` argument, when no end user was resolved
        user = params.get("user") if isinstance(params.get("user"), str) else None
    if user:
        out["user"] = user
    out["metadata"] = _metadata(raw, meta, cache_hit)
    return out


def _tokens(
    raw: Mapping[str, Any], meta: Mapping[str, Any], hidden: Mapping[str, Any], where: str, provider: str
) -> dict[str, int]:
    usage = hidden.get("usage_object")
    path = "hidden_params.usage_object"
    if not isinstance(usage, Mapping):
        usage, path = meta.get("usage_object"), "metadata.usage_object"
    if not isinstance(usage, Mapping):
        # The token columns, plus the provider-specific extras LiteLLM files beside them.
        extra = meta.get("additional_usage_values")
        usage = {**extra} if isinstance(extra, Mapping) else {}
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if raw.get(key) is not None:
                usage[key] = raw[key]
        path = where if isinstance(extra, Mapping) else "record"
    return chat_tokens(usage, path, provider)


def _object(value: Any, name: str) -> Mapping[str, Any]:
    # Spend logs exported from PostgreSQL as CSV or text carry their JSON columns as strings.
    if isinstance(value, str | bytes) and value:
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidEvent(name, "is not valid JSON") from None
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise InvalidEvent(name, f"must be an object, got {type(value).__name__}")
    return value


def _first(obj: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value:
            return value
    return None


def _model_prefix(model: Any) -> str | None:
    # LiteLLM model names are often "provider/model".
    return model.split("/", 1)[0] if isinstance(model, str) and "/" in model else None


def _latency(start: Any, end: Any) -> float | None:
    start_s, end_s = _seconds(start), _seconds(end)
    if start_s is None or end_s is None or end_s < start_s:
        return None
    return round((end_s - start_s) * 1000.0, 3)


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def _metadata(raw: Mapping[str, Any], meta: Mapping[str, Any], cache_hit: bool) -> dict[str, Any]:
    kept: dict[str, Any] = {"source": "litellm"}
    if cache_hit:
        kept["cache_hit"] = True
    for key, name in _META_KEYS:
        value = raw.get(key)
        if value not in (None, "", [], {}, "[]"):
            kept[name] = value
    if isinstance(kept.get("api_base"), str):
        # The deployment's URL, without what authenticates to it: Google AI Studio takes its API key in the
        # query (LiteLLM's Gemini calls go to `…:generateContent?key=…`), a proxy may take `user:password@`.
        kept["api_base"] = redact(kept["api_base"])
    for key, name in _KEY_META_KEYS:
        value = meta.get(key)
        if value not in (None, ""):
            kept.setdefault(name, value)
    return kept
