"""Span records from the real OpenTelemetry SDK posted to `POST /v1/usage` (its `to_json` form, flat attributes) and
written by its `ConsoleSpanExporter` to a file for `llmcost ingest`: the span rule of `POST /v1/traces` applies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from llmcost.cli import main
from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess
from tests.support.stored import stored_events

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 80,
}


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    with running_llmcost(
        tmp_path, sqlite_url, otlp={"project_attributes": ["llmcost.project", "service.namespace"]}
    ) as running:
        yield running


def _span(name: str, attributes: dict[str, Any], *, failed: bool = False, **resource: str) -> ReadableSpan:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "chatbot", **resource}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("llmcost-tests").start_as_current_span(name, attributes=attributes) as span:
        if failed:
            span.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    (finished,) = memory.get_finished_spans()
    return finished


def _post(server: LlmcostProcess, body: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.base}/v1/usage", json=body, headers=AUTH)
    assert response.status_code in (200, 422), response.text
    answer: dict[str, Any] = response.json()
    return answer


def _request_id(span: ReadableSpan) -> str:
    """The request id of a span posted in the SDK's `to_json` form (its ids are written `0x…`)."""
    return f"0x{span.context.trace_id:032x}-0x{span.context.span_id:016x}"


@pytest.mark.real_process
def test_a_posted_span_without_usage_is_refused_not_stored_as_a_free_call(
    server: LlmcostProcess, sqlite_url: str
) -> None:
    """An HTTP span (the SDK's `to_json`) posted on its own was stored as a 0-token, $0 call; it is refused, saying
    why, while a failed model call naming its model still counts as an error."""
    http_span = _span("GET /health", {"http.request.method": "GET"})
    answer = _post(server, orjson.loads(http_span.to_json()))
    assert answer["accepted"] == 0
    assert "not a model call" in answer["rejected"][0]["error"]

    # A model call that ended without its usage recorded (a stream that did not ask for it): not a $0 call.
    chat_without_usage = _span(
        "chat gpt-4o",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"},
    )
    answer = _post(server, orjson.loads(chat_without_usage.to_json()))
    assert answer["accepted"] == 0 and "not a model call" in answer["rejected"][0]["error"]

    failed = _span(
        "chat gpt-4o",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"},
        failed=True,
    )
    assert _post(server, orjson.loads(failed.to_json()))["accepted"] == 1
    stored = stored_events(sqlite_url)
    assert set(stored) == {_request_id(failed)}
    assert stored[_request_id(failed)]["status"] == "error"


@pytest.mark.real_process
def test_openllmetrys_first_llm_attributes_posted_flat_are_a_span(server: LlmcostProcess, sqlite_url: str) -> None:
    """A span's attributes posted as they are, from an OpenLLMetry version that wrote only `llm.*` names."""
    span = _span(
        "openai.chat",
        {
            "llm.vendor": "OpenAI",
            "llm.request.type": "chat",
            "llm.request.model": "gpt-4o",
            "llm.usage.prompt_tokens": 1200,
            "llm.usage.completion_tokens": 80,
            "llm.prompts.0.content": "secret prompt",
        },
    )
    flat = dict(span.attributes or {})
    answer = _post(server, {**flat, "request_id": "legacy-flat"})
    assert answer["accepted"] == 1, answer
    event = stored_events(sqlite_url)["legacy-flat"]
    assert (event["provider"], event["model"], event["input_tokens"], event["output_tokens"]) == (
        "openai",
        "gpt-4o",
        1200,
        80,
    )
    assert "secret" not in str(event)


@pytest.mark.real_process
def test_a_posted_span_is_attributed_by_the_otlp_rule(server: LlmcostProcess, sqlite_url: str) -> None:
    """`llmcost.project` on the span (or the configured `service.namespace` on its resource) names the project,
    as on `POST /v1/traces`; a `project` given beside the span still wins."""
    on_span = _span("chat gpt-4o", {**CHAT, "llmcost.project": "search"})
    on_resource = _span("chat gpt-4o", CHAT, **{"service.namespace": "billing"})
    given = _span("chat gpt-4o", {**CHAT, "llmcost.project": "search"})
    answer = _post(
        server,
        [
            orjson.loads(on_span.to_json()),
            orjson.loads(on_resource.to_json()),
            {**orjson.loads(given.to_json()), "project": "given"},
        ],
    )
    assert answer["accepted"] == 3, answer
    stored = stored_events(sqlite_url)
    assert stored[_request_id(on_span)]["project"] == "search"
    assert stored[_request_id(on_resource)]["project"] == "billing"
    assert stored[_request_id(given)]["project"] == "given"
    assert stored[_request_id(on_span)]["service"] == "chatbot"


def test_console_span_exporter_output_is_ingested(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the SDK's `ConsoleSpanExporter` prints (pretty-printed `to_json` objects one after another), redirected
    to a file: its model-call spans are ingested, its other spans skipped as in an OTLP export."""
    out = io.StringIO()
    provider = TracerProvider(resource=Resource({"service.name": "chatbot", "service.namespace": "search"}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    tracer = provider.get_tracer("llmcost-tests")
    with tracer.start_as_current_span("POST /answer", attributes={"http.request.method": "POST"}):
        for model in ("gpt-4o", "gpt-4o-mini"):
            with tracer.start_as_current_span(f"chat {model}", attributes={**CHAT, "gen_ai.request.model": model}):
                pass
    provider.shutdown()
    spans_file = tmp_path / "spans.txt"
    spans_file.write_text(out.getvalue())
    assert out.getvalue().startswith("{\n")  # the console form, not JSON lines

    db_url = f"sqlite:///{tmp_path / 'console.db'}"
    assert main(["ingest", "--db", db_url, str(spans_file)]) == 0, capsys.readouterr()
    stored = stored_events(db_url)
    assert sorted(event["model"] for event in stored.values()) == ["gpt-4o", "gpt-4o-mini"]
    assert {(event["service"], event["input_tokens"]) for event in stored.values()} == {("chatbot", 1200)}
    # Read again: the same spans, each once.
    assert main(["ingest", "--db", db_url, str(spans_file)]) == 0
    assert len(stored_events(db_url)) == 2


def test_a_corrupt_span_in_console_output_is_rejected_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Console output with a NUL byte in a span (a file damaged on disk, or in a copy) lost every span after it,
    as one rejection `not valid JSON after object 2`; a byte that is not UTF-8 was rejected as a model with
    control characters, or a metadata string not valid Unicode. Each bad span is rejected alone, saying why."""
    out = io.StringIO()
    provider = TracerProvider(resource=Resource({"service.name": "chatbot"}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    tracer = provider.get_tracer("llmcost-tests")
    for model in ("gpt-4o", "gpt-4o-nul", "gpt-4o-latin1", "gpt-4o-mini"):
        with tracer.start_as_current_span(f"chat {model}", attributes={**CHAT, "gen_ai.request.model": model}):
            pass
    provider.shutdown()
    text = out.getvalue().encode()
    spans_file = tmp_path / "spans.txt"
    spans_file.write_bytes(text.replace(b"chat gpt-4o-nul", b"chat gpt-4o\0nul").replace(b"-latin1", b"-latin\xe9"))

    db_url = f"sqlite:///{tmp_path / 'console.db'}"
    assert main(["ingest", "--db", db_url, str(spans_file)]) == 1
    printed = capsys.readouterr().out
    assert "2 accepted, 0 duplicates, 2 rejected" in printed
    rejected = [line.strip() for line in printed.splitlines() if line.strip().startswith("record ")]
    assert len(rejected) == 2
    assert rejected[0].startswith("record 2: not valid JSON (Invalid control character at: line ")
    assert rejected[1] == "record 3: not UTF-8 text (save the file as UTF-8)"
    assert sorted(event["model"] for event in stored_events(db_url).values()) == ["gpt-4o", "gpt-4o-mini"]
