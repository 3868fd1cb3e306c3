"""`POST /v1/traces` against a running llmcost, fed by the real OpenTelemetry SDK and OTLP/HTTP exporter."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tests.support.helpers import total
from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess
from tests.support.stored import stored_events

pytestmark = pytest.mark.real_process

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}


def _serve(tmp_path: Path, url: str) -> AbstractContextManager[LlmcostProcess]:
    return running_llmcost(
        tmp_path,
        url,
        ingest={"max_body_bytes": 1_000_000},
        otlp={"project_attributes": ["llmcost.project", "service.namespace"]},
    )


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with _serve(tmp_path, sqlite_url) as running:
        yield running


def _spans(service: str = "chatbot", namespace: str = "search") -> tuple[list[ReadableSpan], dict[str, str]]:
    """Spans as instrumentations write them, captured by the SDK: name → span id (hex) of the usage spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service, "service.namespace": namespace}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("llmcost-tests")
    with tracer.start_as_current_span("POST /answer", attributes={"http.request.method": "POST"}):
        with tracer.start_as_current_span("invoke_agent helper") as agent:
            agent.set_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.usage.input_tokens": 5000,
                    "gen_ai.usage.output_tokens": 500,
                }
            )
            # The conventions as they stand: input includes the cached parts.
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.model": "gpt-4o-2024-08-06",
                        "gen_ai.usage.input_tokens": 1200,
                        "gen_ai.usage.cache_read.input_tokens": 1000,
                        "gen_ai.usage.output_tokens": 80,
                        "gen_ai.response.id": "chatcmpl-abc",
                        "user.id": "u-7",
                        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"secret"}]}]',
                    }
                )
            # OpenLLMetry: older names, capitalised system, Anthropic cache attributes beside the total input.
            with tracer.start_as_current_span("anthropic.chat") as span:
                span.set_attributes(
                    {
                        "gen_ai.system": "Anthropic",
                        "llm.request.type": "chat",
                        "gen_ai.request.model": "claude-sonnet-4-5",
                        "gen_ai.usage.prompt_tokens": 2300,
                        "gen_ai.usage.cache_read_input_tokens": 2000,
                        "gen_ai.usage.cache_creation_input_tokens": 100,
                        "gen_ai.usage.completion_tokens": 40,
                        "llm.usage.total_tokens": 2340,
                        "gen_ai.prompt.0.content": "secret prompt",
                    }
                )
            # OpenLIT: its own cost estimate and request user.
            with tracer.start_as_current_span("chat gpt-4o-mini") as span:
                span.set_attributes(
                    {
                        "gen_ai.system": "openai",
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 300,
                        "gen_ai.usage.output_tokens": 20,
                        "gen_ai.usage.total_tokens": 320,
                        "gen_ai.usage.cost": 0.000057,
                        "gen_ai.request.user": "u-9",
                        "llmcost.project": "override",  # a span attribute wins over the resource's
                    }
                )
            # A usage span that contradicts itself: rejected, and only it.
            with tracer.start_as_current_span("chat broken") as span:
                span.set_attributes(
                    {
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 10,
                        "gen_ai.usage.cache_read.input_tokens": 50,
                        "gen_ai.usage.output_tokens": 1,
                    }
                )
                span.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("SELECT users", attributes={"db.system.name": "postgresql"}):
            pass
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    ids = {s.name: f"{s.context.trace_id:032x}-{s.context.span_id:016x}" for s in spans}
    return spans, ids


def _otlp_json(spans: list[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON form of an export: protobuf's JSON mapping with hex ids, as the spec writes them."""
    doc = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in doc["resourceSpans"]:
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    return doc


def test_the_sdk_exporter_delivers_genai_spans_as_usage_events(tmp_path: Path, db_url: str) -> None:
    with _serve(tmp_path, db_url) as server:
        _export_and_check(server, db_url)


def _export_and_check(server: LlmcostProcess, db_url: str) -> None:
    spans, ids = _spans()
    exporter = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", headers=AUTH, compression=Compression.Gzip)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    # The exporter's retry of the same spans is a duplicate, not a second call.
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    stored = stored_events(db_url)
    assert set(stored) == {ids["chat gpt-4o"], ids["anthropic.chat"], ids["chat gpt-4o-mini"]}
    openai = stored[ids["chat gpt-4o"]]
    assert (openai["provider"], openai["model"]) == ("openai", "gpt-4o-2024-08-06")
    assert (openai["input_tokens"], openai["cache_read_tokens"], openai["output_tokens"]) == (200, 1000, 80)
    assert (openai["service"], openai["project"], openai["user"]) == ("chatbot", "search", "u-7")
    assert openai["cost_source"] == "priced" and openai["cost_usd"] > 0
    anthropic = stored[ids["anthropic.chat"]]
    assert anthropic["provider"] == "anthropic"
    assert (anthropic["input_tokens"], anthropic["cache_read_tokens"], anthropic["cache_write_tokens"]) == (
        200,
        2000,
        100,
    )
    assert anthropic["output_tokens"] == 40
    openlit = stored[ids["chat gpt-4o-mini"]]
    assert (openlit["project"], openlit["user"]) == ("override", "u-9")
    assert openlit["metadata"]["reported_cost_usd"] == pytest.approx(0.000057)
    # No message content anywhere.
    for event in stored.values():
        assert "secret" not in str(event)

    metrics = httpx.get(f"{server.base}/metrics").text
    assert total(metrics, "llm_requests_total") == 3
    assert total(metrics, "llm_ingest_events_total", outcome="duplicate") == 3
    assert total(metrics, "llm_ingest_events_total", outcome="rejected") == 2
    # Per export: the HTTP, agent and database spans.
    assert total(metrics, "llm_otlp_spans_skipped_total") == 6


def test_protobuf_answer_reports_the_rejected_span(server: LlmcostProcess) -> None:
    spans, _ids = _spans()
    body = encode_spans(spans).SerializeToString()
    response = httpx.post(
        f"{server.base}/v1/traces", content=body, headers={**AUTH, "Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "gen_ai.usage.input_tokens" in answer.partial_success.error_message


def test_json_export_is_read_like_protobuf(server: LlmcostProcess, sqlite_url: str) -> None:
    spans, ids = _spans(service="batch", namespace="reports")
    doc = _otlp_json(spans)
    response = httpx.post(f"{server.base}/v1/traces", json=doc, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["partialSuccess"]["rejectedSpans"] == 1
    # gzip-encoded JSON, again: duplicates.
    again = httpx.post(
        f"{server.base}/v1/traces",
        content=gzip.compress(httpx.Request("POST", "/", json=doc).content),
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert again.status_code == 200
    stored = stored_events(sqlite_url)
    assert set(stored) == {ids["chat gpt-4o"], ids["anthropic.chat"], ids["chat gpt-4o-mini"]}
    assert stored[ids["chat gpt-4o"]]["service"] == "batch"
    assert stored[ids["chat gpt-4o"]]["project"] == "reports"


def test_refusals_follow_otlp(server: LlmcostProcess) -> None:
    spans, _ = _spans()
    body = encode_spans(spans).SerializeToString()
    proto = {"Content-Type": "application/x-protobuf"}
    # No token: 401 (the SDK exporter sends it through `headers`).
    assert httpx.post(f"{server.base}/v1/traces", content=body, headers=proto).status_code == 401
    # A zip bomb: 50 MB of zeros in ~50 kB, against a 1 MB limit, is refused without inflating it all.
    bomb = gzip.compress(b"\0" * 50_000_000)
    refused = httpx.post(
        f"{server.base}/v1/traces", content=bomb, headers={**AUTH, **proto, "Content-Encoding": "gzip"}
    )
    assert refused.status_code == 413
    assert b"inflates past the limit" in refused.content
    garbage = httpx.post(f"{server.base}/v1/traces", content=b"\xff\xff\xff", headers={**AUTH, **proto})
    assert garbage.status_code == 400
    wrong_type = httpx.post(f"{server.base}/v1/traces", content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    # A request that is not protobuf is answered in JSON: a google.rpc.Status that is also the API's error
    # shape, `{"error", "detail"}` (an OTLP client reads `code` and `message` and ignores the rest).
    assert wrong_type.headers["content-type"] == "application/json"
    assert wrong_type.json() == {"code": 3, "message": wrong_type.json()["error"], "error": ANY, "detail": None}
    assert "text/plain" in wrong_type.json()["error"]
    unauthorised = httpx.post(f"{server.base}/v1/traces", json={"resourceSpans": []})
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"] == unauthorised.json()["message"]
    assert unauthorised.json()["error"].startswith(
        "missing or invalid bearer token: this endpoint takes one of auth.ingest"
    )
    assert unauthorised.json()["code"] == 16 and "detail" in unauthorised.json()
    bad_json = httpx.post(
        f"{server.base}/v1/traces",
        json={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]},
        headers=AUTH,
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["code"] == 3
    assert bad_json.json()["error"] == bad_json.json()["message"] and "detail" in bad_json.json()


def test_otlp_config_rule_is_validated() -> None:
    from exporter.config import ConfigError, parse_config

    config = parse_config({"otlp": {"project_attributes": ["team", "service.namespace"]}})
    assert config.otlp.project_attributes == ["team", "service.namespace"]
    assert config.otlp.service_attributes == ["service.name"]
    with pytest.raises(ConfigError) as bad:
        parse_config({"otlp": {"project_attributes": "team", "services": ["x"]}})
    assert any(p.startswith("otlp.project_attributes:") for p in bad.value.problems)
    assert any(p.startswith("otlp.services:") for p in bad.value.problems)


def test_bounded_gunzip() -> None:
    from exporter.otlp import DecompressedTooLarge, MalformedExport, gunzip_limited

    data = b"x" * 1000
    assert gunzip_limited(gzip.compress(data), 1000) == data
    with pytest.raises(DecompressedTooLarge):
        gunzip_limited(gzip.compress(data), 999)
    with pytest.raises(MalformedExport, match="truncated"):
        gunzip_limited(gzip.compress(data)[:-12], 10_000)
    with pytest.raises(MalformedExport):
        gunzip_limited(b"not gzip", 10_000)


def test_an_export_without_genai_spans_is_taken_and_counted(server: LlmcostProcess, sqlite_url: str) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("GET /", attributes={"http.request.method": "GET"}):
        pass
    provider.shutdown()
    body = encode_spans(list(memory.get_finished_spans())).SerializeToString()
    response = httpx.post(
        f"{server.base}/v1/traces", content=body, headers={**AUTH, "Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    metrics = httpx.get(f"{server.base}/metrics").text
    assert total(metrics, "llm_otlp_spans_skipped_total") == 1
    assert total(metrics, "llm_ingest_events_total") == 0
    assert stored_events(sqlite_url) == {}


def test_spans_of_openllmetrys_first_llm_names_are_counted(server: LlmcostProcess, sqlite_url: str) -> None:
    """OpenLLMetry before the GenAI conventions wrote `llm.vendor`, `llm.request.model`/`llm.response.model` and
    `llm.usage.prompt_tokens`/`completion_tokens`: an application on such a version is counted, not skipped."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "legacy-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("llmcost-tests").start_as_current_span("openai.chat") as span:
        span.set_attributes(
            {
                "llm.vendor": "OpenAI",
                "llm.request.type": "chat",
                "llm.request.model": "gpt-4o",
                "llm.response.model": "gpt-4o-2024-08-06",
                "llm.usage.prompt_tokens": 1200,
                "llm.usage.completion_tokens": 80,
                "llm.usage.total_tokens": 1280,
                "llm.user": "u-3",
                "llm.prompts.0.content": "secret prompt",
            }
        )
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    exporter = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", headers=AUTH)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    stored = stored_events(sqlite_url)
    event = stored[f"{spans[0].context.trace_id:032x}-{spans[0].context.span_id:016x}"]
    assert (event["provider"], event["model"], event["service"], event["user"]) == (
        "openai",
        "gpt-4o-2024-08-06",
        "legacy-bot",
        "u-3",
    )
    assert (event["input_tokens"], event["output_tokens"]) == (1200, 80)
    assert event["cost_source"] == "priced" and event["cost_usd"] > 0
    assert "secret" not in str(event)


def test_the_sdk_exporters_deflate_compression_is_taken(server: LlmcostProcess, sqlite_url: str) -> None:
    """`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=deflate` is one of the SDK's choices: its spans arrive, not a 415."""
    spans, ids = _spans()
    exporter = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", headers=AUTH, compression=Compression.Deflate)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert set(stored_events(sqlite_url)) == {ids["chat gpt-4o"], ids["anthropic.chat"], ids["chat gpt-4o-mini"]}
    response = httpx.post(
        f"{server.base}/v1/traces",
        content=b"not deflate data",
        headers={**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "deflate"},
    )
    assert response.status_code == 400
