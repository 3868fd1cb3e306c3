"""Whole provider responses built around real recorded usage objects, with content that must never be stored.

The usage objects are the ones recorded from live provider APIs in tests/data/recorded-usage
(pydantic/pydantic-ai test cassettes, MIT licence, see the LICENSE file there). The content around
them (messages, output text, tool arguments, instructions) is made up and contains SECRET, which a
test then looks for in everything llmcost stored.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import orjson

from tests.support.paths import RECORDED_USAGE

RECORDED = RECORDED_USAGE
SECRET = "SECRET-7f3a"


def recorded(host: str, obj: str) -> list[dict[str, Any]]:
    """The recorded usage records of one API host and response object type."""
    with RECORDED.open("rb") as f:
        records = [orjson.loads(line) for line in f]
    return [r for r in records if r["host"] == host and r["object"] == obj]


def chat_completions() -> Iterator[dict[str, Any]]:
    """OpenAI Chat Completions objects (with a tool call) around every recorded OpenAI chat usage."""
    now = int(time.time()) - 120
    for i, record in enumerate(recorded("api.openai.com", "chat.completion")):
        yield {
            "id": f"chatcmpl-rec{i}",
            "object": "chat.completion",
            "created": now + i,
            "model": record["response_model"],
            "system_fingerprint": "fp_rec",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": f"{SECRET} answer",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": f'{{"q": "{SECRET}"}}'},
                            }
                        ],
                    },
                }
            ],
            "usage": copy.deepcopy(record["usage"]),
        }


def responses() -> Iterator[dict[str, Any]]:
    """OpenAI Responses objects around every recorded Responses API usage."""
    now = int(time.time()) - 120
    for i, record in enumerate(recorded("api.openai.com", "response")):
        usage = copy.deepcopy(record["usage"])
        # The current SDK's types require these; the recorded API answers predate them.
        usage.setdefault("input_tokens_details", {}).setdefault("cache_write_tokens", 0)
        usage["input_tokens_details"].setdefault("cached_tokens", 0)
        usage.setdefault("output_tokens_details", {}).setdefault("reasoning_tokens", 0)
        yield {
            "id": f"resp_rec{i}",
            "object": "response",
            "created_at": now + i,
            "model": record["response_model"],
            "status": "completed",
            "instructions": f"{SECRET} instructions",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": f"{SECRET} output", "annotations": []}],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_1",
                    "name": "lookup",
                    "arguments": f'{{"q": "{SECRET}"}}',
                    "status": "completed",
                },
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }


def anthropic_messages() -> Iterator[dict[str, Any]]:
    """Anthropic Message objects around every recorded Anthropic Messages usage."""
    for i, record in enumerate(recorded("api.anthropic.com", "message")):
        usage = copy.deepcopy(record["usage"])
        if isinstance(usage.get("server_tool_use"), dict):  # the current SDK's type requires both counts
            usage["server_tool_use"].setdefault("web_fetch_requests", 0)
            usage["server_tool_use"].setdefault("web_search_requests", 0)
        yield {
            "id": f"msg_rec{i}",
            "type": "message",
            "role": "assistant",
            "model": record["response_model"],
            "content": [
                {"type": "text", "text": f"{SECRET} text"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": SECRET}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": usage,
        }
