"""An event acknowledged with a 2xx survives `kill -9` of the server; replays change nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.helpers import total
from tests.support.helpers import usage_events as events
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


def test_acknowledged_events_survive_kill_9_and_restart(tmp_path: Path, sqlite_url: str) -> None:
    server = LlmcostProcess(sqlite_url).start(tmp_path)
    acknowledged: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        # Keeps posting until the server dies; only 2xx answers count as acknowledged.
        with httpx.Client(timeout=5) as client:
            k = 0
            while not stop.is_set():
                batch = events(f"b{k}", 50)
                try:
                    response = client.post(f"{server.base}/v1/usage", json=batch)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acknowledged.extend(e["request_id"] for e in batch)  # type: ignore[misc]
                k += 1

    thread = threading.Thread(target=sender)
    thread.start()
    wait_until(lambda: len(acknowledged) >= 600, timeout=30, what="600 events acknowledged")
    server.kill9()  # while the sender is still posting
    stop.set()
    thread.join()
    assert len(acknowledged) >= 500

    restarted = LlmcostProcess(sqlite_url).start(tmp_path)
    try:
        text = httpx.get(f"{restarted.base}/metrics").text
        stored = total(text, "llm_requests_total")
        # Everything acknowledged is there; an unacknowledged in-flight batch may be there too.
        assert stored >= len(acknowledged)
        assert stored - len(acknowledged) <= 50
        again = httpx.post(f"{restarted.base}/v1/usage", json=events("b0", 50)).json()
        assert again == {"accepted": 0, "duplicates": 50, "rejected": []}
    finally:
        restarted.stop()


def test_cli_replaying_a_file_twice_changes_no_metric(tmp_path: Path, sqlite_url: str) -> None:
    import subprocess

    from tests.support.procs import LLMCOST

    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events("f", 300)) + b"\n{broken\n")
    first = subprocess.run([*LLMCOST, "ingest", str(path), "--db", sqlite_url], capture_output=True, text=True)
    assert "300 accepted, 0 duplicates, 1 rejected" in first.stdout
    assert "record 301: line 301: not valid JSON" in first.stdout  # the 301st line
    assert first.returncode == 1  # some records were rejected
    server = LlmcostProcess(sqlite_url).start(tmp_path)
    try:
        before = httpx.get(f"{server.base}/metrics").text
        second = subprocess.run([*LLMCOST, "ingest", str(path), "--db", sqlite_url], capture_output=True, text=True)
        assert "0 accepted, 300 duplicates, 1 rejected" in second.stdout
        after = httpx.get(f"{server.base}/metrics").text
    finally:
        server.stop()
    for name in ("llm_requests_total", "llm_tokens_total", "llm_cost_usd_total"):
        assert total(before, name) == total(after, name) > 0
