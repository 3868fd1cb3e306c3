"""A PostgreSQL that stops answering without closing its connections (paused, partitioned, host gone).

A stopped server refuses connections and is answered 503 at once (test_multiprocess.py); a hung one keeps
every pooled connection open and silent. Clients must still get a prompt 503 with Retry-After rather than
a request that never ends, and llmcost must carry on by itself once the database answers again.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total, usage_events
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

COMMIT_TIMEOUT = 2.0


def test_ingest_and_readyz_answer_503_promptly_while_postgresql_hangs_and_retries_count_once(tmp_path: Path) -> None:
    cluster = PostgresCluster().start()
    try:
        config = tmp_path / "llmcost.yml"
        config.write_text(f"ingest: {{commit_timeout_seconds: {COMMIT_TIMEOUT}}}\n")
        server = LlmcostProcess(cluster.create_database(), config=config, role="ingest").start(tmp_path)
        before, during = usage_events("before", 20), usage_events("during", 20)
        with httpx.Client(base_url=server.base, timeout=15) as client:
            assert client.post("/v1/usage", json=before).status_code == 200
            cluster.pause()
            try:
                for _ in range(2):  # the first waits on a hung connection, the second queues behind it
                    started = time.monotonic()
                    response = client.post("/v1/usage", json=during)
                    waited = time.monotonic() - started
                    assert response.status_code == 503, response.text
                    assert response.headers.get("retry-after") == "5"
                    assert waited < COMMIT_TIMEOUT + 3, f"answered after {waited:.1f} s"
                started = time.monotonic()
                assert client.get("/readyz").status_code == 503
                assert client.get("/readyz").status_code == 503  # shares the first probe's stuck ping
                assert time.monotonic() - started < 2 * 3 + 2, "/readyz answered promptly"
            finally:
                cluster.resume()
            # The client retries as told; the first attempt's commit may have landed late: counted once.
            wait_until(
                lambda: client.post("/v1/usage", json=during).status_code == 200,
                timeout=30,
                what="ingest acknowledged again once PostgreSQL answers",
            )
            text = client.get("/metrics").text
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=10, what="/readyz ready again")
        assert total(text, "llm_requests_total") == len(before) + len(during)
        server.stop()
    finally:
        cluster.destroy()
