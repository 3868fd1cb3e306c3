"""Validation of the canonical usage event: every bad field is named with its reason."""

from __future__ import annotations

import math

import pytest

from exporter.events import InvalidEvent, parse_event, usd_to_nanos

NOW = 1_800_000_000.0


def event(**fields):  # type: ignore[no-untyped-def]
    base = {"request_id": "r1", "timestamp": NOW - 60, "provider": "openai", "model": "gpt-4o"}
    base.update(fields)
    return base


def reason(raw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, now=NOW)
    return str(info.value)


def test_minimal_event_defaults() -> None:
    ev = parse_event({"provider": "openai", "model": "gpt-4o"}, now=NOW)
    assert ev.timestamp == NOW
    assert ev.status == "success"
    assert (ev.project, ev.user, ev.service) == ("", "", "")
    assert ev.request_id.startswith("auto-")
    assert ev.cost_nanousd is None


def test_missing_request_id_is_derived_from_content_so_replays_are_idempotent() -> None:
    a = parse_event({"provider": "openai", "model": "m", "input_tokens": 3}, now=NOW)
    b = parse_event({"input_tokens": 3, "model": "m", "provider": "openai"}, now=NOW + 100)
    c = parse_event({"provider": "openai", "model": "m", "input_tokens": 4}, now=NOW)
    assert a.request_id == b.request_id != c.request_id


def test_rfc3339_and_epoch_timestamps() -> None:
    assert parse_event(event(timestamp="2026-11-23T10:00:00Z"), now=NOW).timestamp == 1795428000.0
    assert parse_event(event(timestamp="2026-11-23T11:00:00+01:00"), now=NOW).timestamp == 1795428000.0
    assert parse_event(event(timestamp=1795428000), now=NOW).timestamp == 1795428000.0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"provider": None}, "provider: is required"),
        ({"model": ""}, "model: must not be empty"),
        ({"model": 5}, "model: must be a string, got int"),
        ({"input_tokens": -1}, "input_tokens: must be >= 0"),
        ({"output_tokens": "12"}, "output_tokens: must be a non-negative integer, got str"),
        ({"output_tokens": 1.5}, "output_tokens: must be a whole number"),
        ({"cache_read_tokens": True}, "cache_read_tokens: must be a non-negative integer, got bool"),
        (
            {"output_tokens": 5, "reasoning_tokens": 6},
            "reasoning_tokens: (6) cannot exceed output_tokens (5)",
        ),
        ({"cost_usd": -0.1}, "cost_usd: must be >= 0"),
        ({"cost_usd": math.nan}, "cost_usd: must be a finite number"),
        ({"cost_usd": math.inf}, "cost_usd: must be a finite number"),
        ({"latency_ms": math.inf}, "latency_ms: must be a finite number"),
        ({"timestamp": NOW + 3600}, "timestamp: is 3600 s in the future"),
        ({"timestamp": "yesterday"}, "timestamp: is not RFC 3339"),
        # Epoch seconds in a JSON string (a CSV cell is read as a number; a JSON value is taken as sent).
        ({"timestamp": "1796608577"}, "timestamp: is not RFC 3339: '1796608577' (epoch seconds go as a number"),
        ({"timestamp": NOW * 1000}, "timestamp: 1800000000000.0 looks like milliseconds"),
        ({"status": "ok"}, "status: must be 'success' or 'error'"),
        ({"project": "x" * 10_000}, "project: is 10000 characters long; the limit is 256"),
        ({"service": "a\nb"}, "service: contains control characters"),
        ({"user": "\x1b[31m"}, "user: contains control characters"),
        ({"metadata": [1]}, "metadata: must be an object, got list"),
        ({"request_id": ""}, "request_id: must be a non-empty string"),
    ],
)
def test_bad_fields_are_named(fields, expected) -> None:  # type: ignore[no-untyped-def]
    assert expected in reason(event(**fields))


def test_non_object_is_rejected() -> None:
    assert "an event must be a JSON object, got list" in reason([1, 2])


def test_unknown_fields_are_kept_in_metadata() -> None:
    ev = parse_event(event(team="core", metadata={"trace": "abc"}), now=NOW)
    assert ev.metadata == {"team": "core", "trace": "abc"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # An OpenAI usage flattened into the event: the call would be stored at 0 tokens and $0.
        (
            {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
            "prompt_tokens: is a provider usage field, not an event field: its 1000 tokens would not be counted; "
            'send the provider\'s usage object as "usage"',
        ),
        # Anthropic's cache reads beside canonical input and output: only the cache reads would be lost.
        (
            {"input_tokens": 100, "output_tokens": 5, "cache_read_input_tokens": 8000},
            "cache_read_input_tokens: is a provider usage field, not an event field: its 8000 tokens",
        ),
        ({"inputTokens": 10, "outputTokens": 5}, "inputTokens: is a provider usage field"),
        ({"promptTokenCount": "10"}, "promptTokenCount: is a provider usage field"),  # a CSV cell is text
        ({"total_tokens": 1100}, "total_tokens: (1100) is a total, which cannot be priced"),
        (
            {"usage_metadata": {"prompt_token_count": 10, "candidates_token_count": 5}},
            'usage_metadata: is a usage object under its own name, not counted: send it as "usage"',
        ),
        (
            {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80},
            'gen_ai.usage.input_tokens: is a GenAI span attribute: beside "provider" the record is read as a '
            "canonical event and its 1200 tokens would not be counted; name the provider as gen_ai.provider.name",
        ),
    ],
)
def test_token_counts_under_a_provider_name_are_rejected_not_stored_free(fields, expected) -> None:  # type: ignore[no-untyped-def]
    assert expected in reason(event(**fields))


def test_a_provider_count_beside_its_canonical_field_is_a_note_kept_in_metadata() -> None:
    ev = parse_event(event(input_tokens=100, output_tokens=20, total_tokens=120, prompt_tokens=100), now=NOW)
    assert (ev.input_tokens, ev.output_tokens) == (100, 20)
    assert ev.metadata == {"total_tokens": 120, "prompt_tokens": 100}
    # A zero count loses nothing.
    assert parse_event(event(prompt_tokens=0), now=NOW).metadata == {"prompt_tokens": 0}


def test_supplied_cost_is_exact_in_nano_dollars() -> None:
    assert parse_event(event(cost_usd=0.1), now=NOW).cost_nanousd == 100_000_000
    assert parse_event(event(cost_usd="0.000000001"), now=NOW).cost_nanousd == 1
    assert usd_to_nanos(0.1) * 3 == usd_to_nanos("0.3")
