"""No prompt or completion text is stored, whichever field or path it arrives by (real process, SQLite).

docs/sending-data.md promises that prompts, messages, choices, output text and tool arguments are
dropped on the way in. Whole provider responses, LiteLLM payloads and OTel spans kept that promise, but a
canonical event (or one with a `usage` object) kept its unknown fields in `metadata`: a client sending
`{"provider", "model", "input_tokens", "messages": [...]}` had its prompts stored. Every table of the
store is read back here, metadata JSON included.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.llmcost_server import INGEST_TOKEN, running_llmcost
from tests.support.procs import LLMCOST

pytestmark = pytest.mark.real_process

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
CONTENT_KEYS = ("messages", "prompt", "completion", "input", "output", "choices", "content", "instructions")


def secret(tag: str) -> str:
    return f"SECRET-TEXT-{tag}"


def stored_secrets(db_path: Path) -> dict[str, list[str]]:
    """Every `SECRET-TEXT-…` found in any column of any table, with the tables it is in."""
    found: dict[str, list[str]] = {}
    with sqlite3.connect(db_path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for text in re.findall(r"SECRET-TEXT-[\w-]+", repr(row)):
                    found.setdefault(text, []).append(table)
    return found


def post_both_ways(tmp_path: Path, db: Path, events: list[dict[str, Any]], fast: dict[str, Any]) -> None:
    """POST `events` as one JSON batch, then `fast` as NDJSON (the canonical fast decoder), all accepted."""
    with running_llmcost(tmp_path, f"sqlite:///{db}") as server:
        answer = httpx.post(f"{server.base}/v1/usage", json=events, headers=AUTH, timeout=30)
        assert answer.json() == {"accepted": len(events), "duplicates": 0, "rejected": []}
        ndjson = {**AUTH, "Content-Type": "application/x-ndjson"}
        again = httpx.post(
            f"{server.base}/v1/usage", content=httpx.Request("POST", "/", json=fast).content, headers=ndjson
        )
        assert again.json() == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_content_fields_beside_the_usage_are_not_stored(tmp_path: Path) -> None:
    db = tmp_path / "llmcost.db"
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "project": "p"}
    events: list[dict[str, object]] = [
        {**base, "request_id": f"top-{key}", key: [{"role": "user", "content": secret(key)}]} for key in CONTENT_KEYS
    ]
    events.append(
        {**base, "request_id": "in-metadata", "metadata": {"team": "search", "prompt": secret("metadata-prompt")}}
    )
    events.append(
        {
            "request_id": "with-usage",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 5, "completion_tokens": 3},
            "messages": [{"role": "user", "content": secret("beside-usage")}],
        }
    )
    # A plain canonical event with metadata takes the fast decoder (exporter/canonical_lines.py).
    fast = {**base, "request_id": "fast", "timestamp": time.time() - 60, "metadata": {"prompt": secret("fast-path")}}
    post_both_ways(tmp_path, db, events, fast)

    assert stored_secrets(db) == {}
    with sqlite3.connect(db) as conn:
        kept = dict(conn.execute("SELECT request_id, meta_json FROM usage_events WHERE request_id = 'in-metadata'"))
    assert '"team":"search"' in kept["in-metadata"]  # the rest of the metadata stays


def test_the_same_events_through_llmcost_ingest_keep_no_content(tmp_path: Path) -> None:
    db = tmp_path / "llmcost.db"
    now = time.time() - 60
    path = tmp_path / "calls.jsonl"
    rows = [
        {
            "request_id": "f1",
            "timestamp": now,
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 3,
            "prompt": secret("file-prompt"),
            "completion": secret("file-completion"),
        },
    ]
    path.write_text("\n".join(httpx.Request("POST", "/", json=row).content.decode() for row in rows) + "\n")
    done = subprocess.run(
        [*LLMCOST, "ingest", "--db", f"sqlite:///{db}", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert stored_secrets(db) == {}


def test_content_nested_in_other_fields_or_metadata_is_not_stored(tmp_path: Path) -> None:
    # A client logging the request it made beside the usage (`"request": {"messages": …}`), a tracer's
    # metadata (`{"langfuse": {"trace": {"input": …}}}`): the content keys were dropped at the top level
    # only, and the prompts one level down were stored.
    db = tmp_path / "llmcost.db"
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "project": "p"}
    events: list[dict[str, object]] = [
        {
            **base,
            "request_id": "request-body",
            "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": secret("request-body")}]},
        },
        {
            "request_id": "usage-and-request",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 5, "completion_tokens": 3},
            "request": {"messages": [{"role": "user", "content": secret("usage-and-request")}]},
        },
        {
            **base,
            "request_id": "anthropic-body",
            "body": {
                "system": secret("system"),
                "messages": [{"role": "user", "content": [{"type": "text", "text": secret("anthropic-body")}]}],
            },
        },
        {
            **base,
            "request_id": "nested-metadata",
            "metadata": {
                "team": "search",
                "langfuse": {"trace": {"id": "t-1", "input": secret("trace-input"), "output": secret("trace-output")}},
            },
        },
        {**base, "request_id": "in-a-list", "metadata": {"steps": [{"name": "plan", "prompt": secret("step")}]}},
    ]
    # A plain canonical event with metadata takes the fast decoder (exporter/canonical_lines.py).
    fast = {
        **base,
        "request_id": "fast-nested",
        "timestamp": time.time() - 60,
        "metadata": {"agent": {"name": "a", "instructions": secret("fast-path-nested")}},
    }
    post_both_ways(tmp_path, db, events, fast)

    assert stored_secrets(db) == {}
    with sqlite3.connect(db) as conn:
        kept = dict(conn.execute("SELECT request_id, meta_json FROM usage_events"))
    # What is not content stays, at every level.
    assert '"team":"search"' in kept["nested-metadata"] and '"id":"t-1"' in kept["nested-metadata"]
    assert '"name":"plan"' in kept["in-a-list"]
    assert '"model":"gpt-4o"' in kept["request-body"]
    assert '"name":"a"' in kept["fast-nested"]
