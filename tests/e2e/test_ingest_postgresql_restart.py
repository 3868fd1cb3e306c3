"""Clients posting usage without pause while PostgreSQL restarts (`pg_ctl -m fast`), retrying what is refused.

What the SRE checks (docs/deployment.md): every refusal is a `503` with `Retry-After`, every `request_id`
retried until acknowledged is counted exactly once in `/metrics` and in the usage summary, and the log
tells the outage calmly.

Defect: a batch being written when PostgreSQL stopped left its connection to the pool with the transaction
still open (its rollback failed on the closed socket); the pool's own rollback failed again and SQLAlchemy
logged `ERROR Exception during reset or similar` with three chained tracebacks, once per write in flight
(and the failed rollback's `the connection is lost` hid the batch's own error). Now a connection whose
rollback fails is discarded, and the pool opens a new one once the database is back.

Defect: every refused request logged `WARNING store unavailable: …`: one line per request, so a fleet of
clients retrying every few hundred milliseconds wrote thousands of identical lines a minute of outage,
and nothing said when it ended. Now the first refusal logs one warning, a reminder every 5 minutes counts
the refusals, and one line says when the store answers again.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

BATCH = 25
SENDERS = 3


def _batch(prefix: str) -> list[dict[str, object]]:
    now = time.time()
    return [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": now,
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 100,
            "output_tokens": 10,
            "project": "search",
        }
        for i in range(BATCH)
    ]


def test_clients_retrying_through_a_postgresql_restart_are_counted_once_and_the_log_stays_calm(
    tmp_path: Path,
) -> None:
    cluster = PostgresCluster().start()  # its own: restarted below
    try:
        server = LlmcostProcess(cluster.create_database(), role="ingest").start(tmp_path)
        acknowledged: set[str] = set()
        refusals: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def sender(n: int) -> None:
            # A client as docs/sending-data.md asks: a refused batch is sent again, same request_ids.
            with httpx.Client(timeout=15) as client:
                k = 0
                while not stop.is_set():
                    batch = _batch(f"c{n}-{k}")
                    while True:
                        try:
                            response = client.post(f"{server.base}/v1/usage", json=batch)
                        except httpx.HTTPError:
                            refusals.append((-1, None))
                        else:
                            if response.status_code == 200:
                                acknowledged.update(str(e["request_id"]) for e in batch)
                                break
                            refusals.append((response.status_code, response.headers.get("retry-after")))
                        time.sleep(0.1)  # pacing a retry (a real client waits Retry-After; shortened here)
                    k += 1

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: len(acknowledged) >= 40 * BATCH, timeout=20, what="the load flowing")
            cluster.stop("fast")  # while batches are being written
            wait_until(lambda: len(refusals) >= 20, timeout=20, what="requests refused while PostgreSQL is down")
            cluster.restart()
            back = len(acknowledged)
            wait_until(lambda: len(acknowledged) >= back + 20 * BATCH, timeout=30, what="the load flowing again")
        finally:
            stop.set()
            for thread in threads:
                thread.join()

        assert {status for status, _ in refusals} == {503}, refusals[:10]
        assert all(retry_after == "5" for _, retry_after in refusals), refusals[:10]
        text = httpx.get(f"{server.base}/metrics", timeout=10).text
        assert total(text, "llm_requests_total") == len(acknowledged)
        assert total(text, "llm_ingest_events_total", outcome="accepted") == len(acknowledged)
        summary = httpx.get(f"{server.base}/v1/usage/summary?by=project", timeout=10).json()
        assert [(row["project"], row["requests"]) for row in summary["rows"]] == [("search", len(acknowledged))]
        server.stop()

        log = server.log()
        assert "Traceback" not in log and "Exception during reset" not in log, log[-4000:]
        assert log.count("store unavailable") == 1, log[-4000:]
        assert log.count("store answers again") == 1, log[-4000:]
    finally:
        cluster.destroy()
