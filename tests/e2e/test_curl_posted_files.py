"""A file of calls posted with curl to a real `llmcost serve`, the ways a newcomer types it.

`curl -d @calls.jsonl` strips the file's newlines, so its JSON lines arrive run together on one line
(`{…}{…}`). llmcost refused them with the parser's words only (`line is not valid JSON: unexpected
content after document: line 1 column 75`), which named neither cause nor cure; the answer now says the
values are run together and how to send the file (`--data-binary @FILE`, an array, or NDJSON).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

CALLS = [
    {"request_id": f"curl-{n}", "provider": "openai", "model": "gpt-4o", "input_tokens": 100 + n, "output_tokens": 5}
    for n in range(2)
]
RUN_TOGETHER = "holds JSON values one after another with no newline between them"
CURE = "use --data-binary @FILE"


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[LlmcostProcess]:
    process = LlmcostProcess(sqlite_url)
    process.start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def curl(server: LlmcostProcess, tmp_path: Path, content_type: str, *data: str) -> dict[str, Any]:
    """POST /v1/usage with curl as written in a shell in `tmp_path`; the JSON answer."""
    command = ["curl", "-s", f"{server.base}/v1/usage", "-H", f"Content-Type: {content_type}", *data]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.fixture
def calls_file(tmp_path: Path) -> str:
    (tmp_path / "calls.jsonl").write_text("".join(json.dumps(call) + "\n" for call in CALLS), encoding="utf-8")
    return "@calls.jsonl"


def test_json_lines_posted_with_curl_d_are_refused_saying_how_to_send_them(
    server: LlmcostProcess, tmp_path: Path, calls_file: str
) -> None:
    as_ndjson = curl(server, tmp_path, "application/x-ndjson", "-d", calls_file)
    assert as_ndjson["accepted"] == 0
    [rejected] = as_ndjson["rejected"]
    assert rejected["index"] == 0
    assert rejected["error"].startswith("line is not valid JSON: unexpected content after document")
    assert RUN_TOGETHER in rejected["error"] and CURE in rejected["error"]

    as_json = curl(server, tmp_path, "application/json", "-d", calls_file)
    assert as_json["error"].startswith("body is not valid JSON: unexpected content after document")
    assert RUN_TOGETHER in as_json["error"] and CURE in as_json["error"]


def test_the_cure_the_answer_names_loads_the_file(server: LlmcostProcess, tmp_path: Path, calls_file: str) -> None:
    # The same lines twice: NDJSON as such, then as application/json (read as JSON lines), duplicates now.
    answer = curl(server, tmp_path, "application/x-ndjson", "--data-binary", calls_file)
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
    answer = curl(server, tmp_path, "application/json", "--data-binary", calls_file)
    assert answer == {"accepted": 0, "duplicates": 2, "rejected": []}


def test_other_bad_json_keeps_the_parser_words_alone(server: LlmcostProcess, tmp_path: Path) -> None:
    answer = curl(server, tmp_path, "application/json", "-d", '{"provider": "openai"} trailing')
    assert answer["error"].startswith("body is not valid JSON: unexpected content after document")
    assert RUN_TOGETHER not in answer["error"]
