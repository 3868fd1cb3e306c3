"""Usage that cannot be mapped is rejected, naming the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.events import InvalidEvent
from tests.support.normalizing import canonical, usage_event


@pytest.mark.parametrize(
    ("usage", "field", "reason"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 1}, "usage.prompt_tokens", "must be >= 0"),
        ({"prompt_tokens": "12", "completion_tokens": 1}, "usage.prompt_tokens", "got str"),
        ({"prompt_tokens": 12.5, "completion_tokens": 1}, "usage.prompt_tokens", "whole number"),
        ({"prompt_tokens": True, "completion_tokens": 1}, "usage.prompt_tokens", "got bool"),
        (
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
            "usage.prompt_tokens",
            "smaller than the cached tokens",
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": "lots"},
            "usage.prompt_tokens_details",
            "must be an object",
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 6}},
            "usage.completion_tokens_details.reasoning_tokens",
            "exceeds",
        ),
        (
            {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 20}, "output_tokens": 1},
            "usage.input_tokens",
            "smaller than the cached tokens",
        ),
        (
            {"input_tokens": 1, "output_tokens": 2, "output_tokens_details": {"thinking_tokens": 3}},
            "usage.output_tokens_details.thinking_tokens",
            "exceeds",
        ),
        ({"inputTokens": -1, "outputTokens": 2}, "usage.inputTokens", "must be >= 0"),
        ({"input_tokens": 1, "cache_read_input_tokens": 2, "input_tokens_details": {}}, "usage", "mixes"),
        ({"tokens_in": 1}, "usage", "unrecognised usage object"),
        ({}, "usage", "is empty"),
        ("10 tokens", "usage", "must be an object"),
        ([1, 2], "usage", "must be an object"),
        ({"prompt_tokens": 1, "cost": "0.1"}, "usage.cost", "must be a number"),
    ],
)
def test_malformed_usage_is_rejected_naming_the_field(usage: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        usage_event(usage)
    assert err.value.field == field
    assert reason in err.value.reason


def test_usage_cannot_be_combined_with_token_fields() -> None:
    with pytest.raises(InvalidEvent) as err:
        usage_event({"prompt_tokens": 1}, input_tokens=1)
    assert err.value.field == "usage"
    assert "input_tokens" in err.value.reason


def test_usage_without_provider_is_rejected_by_parse_event() -> None:
    with pytest.raises(InvalidEvent) as err:
        canonical({"model": "m", "usage": {"prompt_tokens": 1}})
    assert err.value.field == "provider"
