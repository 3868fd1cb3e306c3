"""OpenTelemetry GenAI span attributes, flat, wrapped in a span record, or as OTLP key/value lists.

Forms: a flat dict of `gen_ai.*` attributes; `{"attributes": …}` with the span's ids and times
beside them (OTLP JSON or the SDK's `to_json`); attributes as OTLP `[{"key": …, "value": …}]`.

Per the GenAI semantic conventions `gen_ai.usage.input_tokens` INCLUDES the cached tokens, and
`gen_ai.usage.cache_read.input_tokens` / `gen_ai.usage.cache_creation.input_tokens` are parts of it,
so both are subtracted for the uncached input; an input smaller than its cached parts is rejected
rather than guessed at. Provider and token names from before the conventions settled
(`gen_ai.system`, `gen_ai.usage.prompt_tokens`, …) are read too, and so are the `llm.*` names OpenLLMetry
wrote before it took up `gen_ai.*` (`llm.vendor`, `llm.request.model`, `llm.usage.prompt_tokens`, …).

`request_id` is the span (trace id + span id, unique per call); without a span id the provider's
`gen_ai.response.id`. A trace id alone is not used: one trace holds many calls. Agent and tool spans
(`invoke_agent`, `execute_tool`, …) are rejected: an agent span's usage is the sum of the model-call
spans below it and would be counted twice. Message contents (`gen_ai.input.messages`, …) are not kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exporter.config import OtlpConfig
from exporter.events import InvalidEvent
from exporter.normalize import providers
from exporter.normalize._fields import check_reasoning, tokens, uncached

NOT_MODEL_CALLS = frozenset(
    (
        "invoke_agent",
        "create_agent",
        "execute_tool",
        "retrieval",
        "search_memory",
        "update_memory",
        "delete_memory",
    )
)
# Attribute names that mean "this span reports token usage" (conventions, old names, OpenLLMetry, OpenLIT).
USAGE_ATTRIBUTES = frozenset(
    (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
    )
)
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens")
_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.vendor")
_MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.response.model", "llm.request.model")
_CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens")
_REASONING = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
_META = (
    ("gen_ai.operation.name", "operation"),
    ("gen_ai.response.id", "response_id"),
    ("gen_ai.conversation.id", "conversation_id"),
    ("gen_ai.agent.name", "agent"),
    ("server.address", "server_address"),
)
_ERROR_CODES = (2, "2", "STATUS_CODE_ERROR", "ERROR", "error")
# End-user id: the conventions' `user.id` / `enduser.id`, OpenLIT's `gen_ai.request.user`, OpenLLMetry's `llm.user`.
_USER = ("user.id", "enduser.id", "gen_ai.request.user", "llm.user")
_SERVICE_TIER = ("openai.response.service_tier", "gen_ai.openai.response.service_tier")
# Canonical fields a caller may send beside the span attributes (validated like any event's); the optional
# billing counts among them (docs/events.md) were dropped here until they were listed.
_CALLER_FIELDS = (
    "request_id",
    "project",
    "service",
    "user",
    "timestamp",
    "cost_usd",
    "latency_ms",
    "service_tier",
    "web_search_requests",
    "file_search_requests",
    "inference_geo",
    "citation_tokens",
)


# OpenLLMetry's names from before it took up `gen_ai.*`: a flat dict of only these is a span's attributes too.
_OPENLLMETRY_NAMES = frozenset(
    (
        "llm.vendor",
        "llm.request.type",
        "llm.request.model",
        "llm.response.model",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
    )
)


def is_otel(raw: Mapping[str, Any]) -> bool:
    """Tell whether `raw` is a span record (`attributes`) or a flat dict of span attributes.

    Flat: a `gen_ai.*` key, or one of the `llm.*` names OpenLLMetry wrote before the GenAI conventions.
    """
    if "attributes" in raw:
        return True
    return any(type(key) is str and (key.startswith("gen_ai.") or key in _OPENLLMETRY_NAMES) for key in raw)


def span_counts(raw: Mapping[str, Any]) -> bool:
    """Tell whether a span record or flat attribute dict is a model call to count (`is_model_call_span`).

    Attributes that cannot be read count: the mapping then rejects the record, saying why.
    """
    if "attributes" not in raw:
        return is_model_call_span(raw, None)
    try:
        attrs = decode_attributes(raw["attributes"])
    except InvalidEvent:
        return True
    return is_model_call_span(attrs, raw.get("status"))


def is_model_call_span(attrs: Mapping[str, Any], status: Any) -> bool:
    """Tell whether a span (its attributes, its status record) is a model call to count: the spans that become events.

    A model call with token counts, or a failed one (status ERROR or `error.type`, a model named: it has no
    usage, and counts as an error with 0 tokens, as the LiteLLM callback records one). Skipped: spans of no
    model call (HTTP, database), agent and tool spans (their usage adds up the model calls below them), and a
    model call that ended without its usage recorded (a stream that did not ask for it). One rule for
    `POST /v1/traces` and `llmcost ingest` of an OTLP export.
    """
    if attrs.get("gen_ai.operation.name") in NOT_MODEL_CALLS:
        return False
    if not USAGE_ATTRIBUTES.isdisjoint(attrs):
        return True
    failed = bool(attrs.get("error.type")) or (
        isinstance(status, Mapping)
        and (status.get("code") in _ERROR_CODES or status.get("status_code") in _ERROR_CODES)
    )
    return failed and any(attrs.get(key) for key in _MODEL)


def decode_attributes(attributes: Any, path: str = "attributes") -> dict[str, Any]:
    """Attributes as a plain dict, whether given as one or as OTLP `[{"key": …, "value": {…}}]`."""
    if isinstance(attributes, Mapping):
        return dict(attributes)
    if not isinstance(attributes, Sequence) or isinstance(attributes, str):
        raise InvalidEvent(path, f"must be an object or an OTLP key/value list, got {type(attributes).__name__}")
    decoded: dict[str, Any] = {}
    for index, item in enumerate(attributes):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise InvalidEvent(f"{path}[{index}]", "must be an OTLP attribute {key, value}")
        decoded[item["key"]] = any_value(item.get("value"))
    return decoded


def any_value(value: Any) -> Any:
    """Return the Python value of an OTLP JSON `AnyValue` (int64 arrives as a decimal string)."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        number = value["intValue"]
        return int(number) if isinstance(number, str) and number.isascii() and number.lstrip("-").isdigit() else number
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(item) for item in (value["arrayValue"] or {}).get("values", ())]
    if "kvlistValue" in value:
        return decode_attributes((value["kvlistValue"] or {}).get("values", ()))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attribution(
    service_attributes: Sequence[str],
    project_attributes: Sequence[str],
    attrs: Mapping[str, Any],
    resource: Mapping[str, Any],
) -> dict[str, str]:
    """`service` and `project` by the `otlp:` rule: the first name present, on the span, else its resource.

    One rule for `POST /v1/traces` and `llmcost ingest` of an OTLP export, so a backfill is attributed
    as the live traffic was. A field none of whose names is present is left out.
    """
    found: dict[str, str] = {}
    for field, names in (("service", service_attributes), ("project", project_attributes)):
        for name in names:
            value = next((source[name] for source in (attrs, resource) if source.get(name) not in (None, "")), None)
            if value is not None:
                found[field] = value if isinstance(value, str) else str(value)
                break
    return found


def event_from_span(raw: Mapping[str, Any], rule: OtlpConfig | None = None) -> dict[str, Any]:
    """Map GenAI span attributes (flat, wrapped, or OTLP list form) to a canonical event.

    A span that is not a model call to count (`is_model_call_span`: no usage, and not a failed call naming a
    model) is rejected, as `POST /v1/traces` skips it, rather than stored as a free call. `rule` (the `otlp:`
    section) names `service` and `project` from the span's or its resource's attributes, as on
    `POST /v1/traces`; fields given beside the span win.
    """
    wrapped = "attributes" in raw
    attrs = decode_attributes(raw["attributes"]) if wrapped else raw
    operation = attrs.get("gen_ai.operation.name")
    if operation in NOT_MODEL_CALLS:
        raise InvalidEvent(
            "gen_ai.operation.name",
            f"{operation!r} spans add up the model calls below them; only model-call spans are ingested",
        )
    if not is_model_call_span(attrs, raw.get("status") if wrapped else None):
        raise InvalidEvent(
            "attributes",
            "no token usage (gen_ai.usage.*) and not a failed call naming its model: not a model call to count",
        )
    out: dict[str, Any] = {}
    provider = next((attrs[key] for key in _PROVIDER if attrs.get(key)), None)
    if isinstance(provider, str):
        out["provider"] = providers.from_otel(provider)
    elif isinstance(attrs.get("server.address"), str):
        out["provider"] = providers.from_host(attrs["server.address"])
    model = next((attrs[key] for key in _MODEL if attrs.get(key)), None)
    if model is not None:
        out["model"] = model
    out.update(_tokens(attrs))
    span = _span_fields(raw) if wrapped else {}
    request_id = span.get("request_id") or attrs.get("gen_ai.response.id")
    if request_id is not None:
        out["request_id"] = request_id
    for key in ("timestamp", "latency_ms"):
        if key in span:
            out[key] = span[key]
    if span.get("error") or attrs.get("error.type"):
        out["status"] = "error"
    # The tier that served the call has its own price (flex, priority): the conventions' OpenAI attribute.
    tier = next((attrs[key] for key in _SERVICE_TIER if isinstance(attrs.get(key), str) and attrs[key]), None)
    if tier is not None:
        out["service_tier"] = tier
    user = next((attrs[key] for key in _USER if attrs.get(key)), None)
    if user:
        out["user"] = user
    service = span.get("service")
    if service:
        out["service"] = service
    if rule is not None:
        resource = _resource_attributes(raw) if wrapped else {}
        out.update(attribution(rule.service_attributes, rule.project_attributes, attrs, resource))
    metadata = {name: attrs[key] for key, name in _META if attrs.get(key) is not None}
    if span.get("trace_id"):
        metadata["trace_id"] = span["trace_id"]
    if span.get("name"):
        metadata["span_name"] = span["name"]
    reported_cost = attrs.get("gen_ai.usage.cost")  # OpenLIT's own estimate; llmcost prices the call itself
    if isinstance(reported_cost, int | float) and not isinstance(reported_cost, bool):
        metadata["reported_cost_usd"] = reported_cost
    out["metadata"] = {"source": "otel", **metadata}
    # Canonical fields given beside the attributes (the README's promise) win over what the span implies.
    for key in _CALLER_FIELDS:
        if raw.get(key) is not None:
            out[key] = raw[key]
    if isinstance(raw.get("metadata"), Mapping):
        out["metadata"] = {**out["metadata"], **raw["metadata"]}
    return out


def _count(attrs: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, int]:
    for name in names:
        value = attrs.get(name)
        if value is None:
            continue
        # OTLP JSON encodes int64 as strings; exporters that flatten attributes may keep them so.
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return name, int(value)
        if type(value) is int and value >= 0:
            return name, value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return name, int(value)
        raise InvalidEvent(name, f"must be a non-negative integer, got {value!r}"[:120])
    return names[0], 0


def _tokens(attrs: Mapping[str, Any]) -> dict[str, int]:
    input_name, total_input = _count(attrs, _INPUT)
    cache_read_name, cache_read = _count(attrs, _CACHE_READ)
    cache_write_name, cache_write = _count(attrs, _CACHE_WRITE)
    output_name, output = _count(attrs, _OUTPUT)
    reasoning_name, reasoning = _count(attrs, _REASONING)
    input_tokens = uncached(total_input, input_name, ((cache_read_name, cache_read), (cache_write_name, cache_write)))
    check_reasoning(reasoning, output, reasoning_name, output_name)
    return tokens(input_tokens, cache_read, cache_write, output, reasoning)


def _span_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Read ids, times, status and service of a span record (OTLP JSON or the SDK's `to_json`)."""
    context = raw.get("context")
    if not isinstance(context, Mapping):
        context = {}
    trace_id = raw.get("traceId") or raw.get("trace_id") or context.get("trace_id")
    span_id = raw.get("spanId") or raw.get("span_id") or context.get("span_id")
    fields: dict[str, Any] = {"trace_id": trace_id, "name": raw.get("name")}
    if span_id:
        fields["request_id"] = f"{trace_id}-{span_id}" if trace_id else span_id
    start = _nanos(raw.get("startTimeUnixNano"))
    end = _nanos(raw.get("endTimeUnixNano"))
    if end is not None:
        # Whole seconds apart from the fraction: a float cannot hold 19 digits of nanoseconds.
        fields["timestamp"] = end // 1_000_000_000 + (end % 1_000_000_000) / 1e9
        if start is not None and end >= start:
            fields["latency_ms"] = (end - start) / 1e6
    elif raw.get("end_time") is not None:  # SDK JSON: RFC 3339 strings
        fields["timestamp"] = raw["end_time"]
    status = raw.get("status")
    if isinstance(status, Mapping):
        fields["error"] = status.get("code") in _ERROR_CODES or status.get("status_code") in _ERROR_CODES
    resource = _resource_attributes(raw)
    if resource:
        fields["service"] = resource.get("service.name")
    return fields


def _resource_attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a span record's `resource` (the SDK's `to_json` and the readers' OTLP records carry one)."""
    resource = raw.get("resource")
    if not isinstance(resource, Mapping):
        return {}
    return decode_attributes(resource.get("attributes", resource), "resource.attributes")


def _nanos(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if type(value) is int:
        return value
    return None
