"""`llmcost serve --workers N`: several processes on one socket and one store act as one server."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total, usage_events
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


def _children(pid: int) -> set[int]:
    """PIDs whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_workers_count_every_event_once_and_scrape_the_same(tmp_path: Path, store: str, request) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "pg_url")
    server = LlmcostProcess(url, workers=2).start(tmp_path)
    try:
        wait_until(lambda: len(_children(server.proc.pid)) == 2, timeout=10, what="two workers")  # type: ignore[union-attr]
        statuses: list[int] = []
        sent: set[object] = set()

        def client(k: int) -> None:
            # Fresh connections, so the kernel hands them to both workers; each batch half overlaps the last.
            for r in range(10):
                body = usage_events("w", 50, start=(k * 10 + r) * 25)
                sent.update(event["request_id"] for event in body)
                statuses.append(httpx.post(f"{server.base}/v1/usage", json=body, timeout=30).status_code)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 60
        distinct = len(sent)
        scrapes = [httpx.get(f"{server.base}/metrics", timeout=30).text for _ in range(6)]
        for text in scrapes:
            assert total(text, "llm_requests_total") == distinct
            assert total(text, "llm_ingest_events_total", outcome="accepted") == distinct
            assert total(text, "llm_ingest_events_total", outcome="duplicate") == 60 * 50 - distinct
        assert len({total(text, "llm_cost_usd_total") for text in scrapes}) == 1
    finally:
        server.stop()


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("budgets:\n  items: []\n")
    server = LlmcostProcess(sqlite_url, workers=2, config=config).start(tmp_path)
    assert server.proc is not None
    supervisor = server.proc.pid
    try:
        wait_until(lambda: len(_children(supervisor)) == 2, timeout=10, what="two workers")
        first = _children(supervisor)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(now := _children(supervisor)) == 2 and victim not in now, timeout=15, what="a new worker"
        )
        # A reload signal reaches the workers and kills none of them.
        os.kill(supervisor, signal.SIGHUP)
        # The survivor reloads (the new worker may still be starting, when SIGHUP is ignored); a worker the
        # signal killed would have died on delivery, before that line, and the supervisor would say so.
        wait_until(lambda: "config reloaded from" in server.log(), timeout=10, what="a worker reloading its config")
        assert "killed by signal 1)" not in server.log()
        workers = _children(supervisor)
        assert len(workers) == 2
        for k in range(10):  # both the survivor and the new worker answer
            response = httpx.post(f"{server.base}/v1/usage", json=usage_events(f"after{k}", 5), timeout=30)
            assert response.status_code == 200
        assert total(httpx.get(f"{server.base}/metrics").text, "llm_requests_total") == 50
        assert "exited (killed by signal 9); starting another" in server.log()
    finally:
        server.proc.terminate()
        assert server.proc.wait(timeout=20) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
