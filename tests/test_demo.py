"""`llmcost demo`: the README's main job, run as a newcomer runs it (a real process, loopback only)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.helpers import total
from tests.pg import free_port
from tests.procs import LLMCOST

pytestmark = pytest.mark.real_process


def test_demo_replays_the_bundled_trace_and_serves_metrics() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [LLMCOST, "demo", "--listen", f"127.0.0.1:{port}", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        text = ""
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if total(text, "llm_requests_total") >= 8819:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert total(text, "llm_requests_total") >= 8819
        assert total(text, "llm_cost_usd_total") > 1.0
        assert total(text, "llm_unpriced_requests_total", provider="self-hosted") > 0
        assert total(text, "llm_tokens_total", token_type="cache_read") > 0
        assert 'href="/metrics"' in httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "Replaying 8,819 real calls" in out
    assert "CC-BY-4.0" in out
    assert f"http://127.0.0.1:{port}/metrics" in out
