"""OpenTelemetry GenAI spans (current and deprecated attribute names, OTLP and SDK JSON) mapped to the
canonical event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.events import InvalidEvent, parse_event
from exporter.normalize import to_canonical
from tests.support.normalizing import NOW, canonical, tokens_of


def test_otel_current_attribute_names() -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.id": "msg_01",
        # Per the conventions input_tokens includes both cache counts.
        "gen_ai.usage.input_tokens": 12_000,
        "gen_ai.usage.cache_read.input_tokens": 10_000,
        "gen_ai.usage.cache_creation.input_tokens": 1_500,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.input.messages": '[{"role": "user"}]',
        "user.id": "u-7",
    }
    mapped = to_canonical(attrs)
    event = parse_event(mapped, now=NOW)
    assert (event.provider, event.model, event.request_id, event.user) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "msg_01",
        "u-7",
    )
    assert tokens_of(event) == (500, 10_000, 1_500, 300, 0)
    assert "gen_ai.input.messages" not in orjson.dumps(event.metadata).decode()


def test_otel_deprecated_attribute_names() -> None:
    attrs = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 100,
        "gen_ai.usage.completion_tokens": 20,
    }
    event = canonical(attrs)
    assert (event.provider, event.model) == ("openai", "gpt-4o")
    assert tokens_of(event) == (100, 0, 0, 20, 0)


def test_otel_provider_names_use_llmcost_vocabulary() -> None:
    for otel_name, name in [("aws.bedrock", "bedrock"), ("gcp.vertex_ai", "vertex_ai"), ("az.ai.openai", "azure")]:
        event = canonical(
            {"gen_ai.provider.name": otel_name, "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1}
        )
        assert event.provider == name


def test_otel_otlp_list_form_span_record() -> None:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1735689600000000000",
        "endTimeUnixNano": "1735689601250000000",
        "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1349"}},
            {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": 1024}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
            {"key": "gen_ai.usage.reasoning.output_tokens", "value": {"intValue": "4"}},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
        ],
        "status": {"code": 2},
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
    }
    event = canonical(span)
    assert event.request_id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (event.timestamp, event.latency_ms) == (1735689601.25, 1250.0)
    assert (event.status, event.service) == ("error", "checkout")
    assert tokens_of(event) == (325, 1024, 0, 10, 4)
    assert event.metadata is not None and event.metadata["trace_id"] == "5b8efff798038103d269b633813fc60c"


def test_otel_sdk_json_span() -> None:
    span = {
        "name": "chat",
        "context": {"trace_id": "0xabc", "span_id": "0xdef"},
        "end_time": "2025-01-01T00:00:02.000000Z",
        "status": {"status_code": "ERROR"},
        "attributes": {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3},
    }
    event = canonical(span)
    assert (event.request_id, event.timestamp, event.status) == ("0xabc-0xdef", 1735689602.0, "error")


def test_otel_trace_id_alone_is_not_a_request_id() -> None:
    attributes = {"gen_ai.system": "openai", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1}
    mapped = to_canonical({"traceId": "t1", "attributes": attributes})
    assert "request_id" not in mapped


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 20}, "gen_ai.usage.input_tokens"),
        ({"gen_ai.usage.input_tokens": -1}, "gen_ai.usage.input_tokens"),
        ({"gen_ai.usage.output_tokens": "many"}, "gen_ai.usage.output_tokens"),
        (
            {"gen_ai.usage.output_tokens": 5, "gen_ai.usage.reasoning.output_tokens": 6},
            "gen_ai.usage.reasoning.output_tokens",
        ),
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10}, "gen_ai.operation.name"),
    ],
)
def test_otel_bad_spans_are_rejected_naming_the_attribute(attrs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        to_canonical({"gen_ai.provider.name": "openai", "gen_ai.request.model": "m", **attrs})
    assert err.value.field == field


def test_otel_bad_attribute_list() -> None:
    with pytest.raises(InvalidEvent) as err:
        to_canonical({"attributes": [{"value": {"intValue": "1"}}]})
    assert err.value.field == "attributes[0]"


def test_a_whole_otlp_export_posted_as_an_event_says_where_it_goes() -> None:
    """An OTLP/JSON export posted to `/v1/usage` as if it were one event is refused naming `/v1/traces`."""
    export = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [{"name": "chat gpt-4o"}]}]}]}
    with pytest.raises(InvalidEvent, match="POST /v1/traces"):
        to_canonical(export)


def test_billing_counts_sent_beside_span_attributes_are_kept() -> None:
    """A span posted with `web_search_requests` (or the other optional billing counts) beside its
    attributes was charged without them: the counts were dropped while mapping the span."""
    record = {
        "attributes": {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-opus-4-6",
            "gen_ai.usage.input_tokens": 671,
            "gen_ai.usage.output_tokens": 55,
        },
        "web_search_requests": 2,
        "inference_geo": "us",
    }
    mapped = to_canonical(record)
    assert (mapped["web_search_requests"], mapped["inference_geo"]) == (2, "us")
    event = parse_event(mapped, now=NOW)
    assert event.provider == "anthropic"
