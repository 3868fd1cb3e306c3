"""A PostgreSQL that stops answering without closing its connections (paused, partitioned, host gone).

A stopped server refuses connections and is answered 503 at once (test_multiprocess.py); a hung one keeps
every pooled connection open and silent. Clients must still get a prompt 503 with Retry-After rather than
a request that never ends, and llmcost must carry on by itself once the database answers again. A
database that is only slow (a commit waiting on a lock, a large batch ahead) still answers, and its
requests must keep waiting and succeed: load alone never turns a request away.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.support.gateway_harness import am_alert, am_payload
from tests.support.helpers import total, usage_events
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

COMMIT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    started = PostgresCluster().start()
    try:
        yield started
    finally:
        started.destroy()


def test_a_slow_commit_on_a_database_that_answers_is_waited_for_not_refused(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    url = cluster.create_database()
    config = tmp_path / "llmcost.yml"
    config.write_text(f"ingest: {{commit_timeout_seconds: {COMMIT_TIMEOUT}}}\n")
    server = LlmcostProcess(url, config=config, role="ingest").start(tmp_path)
    try:
        held = 3 * COMMIT_TIMEOUT
        with httpx.Client(base_url=server.base, timeout=30) as client:
            assert client.post("/v1/usage", json=usage_events("first", 5)).status_code == 200
            # Another session holds the events table: the commit waits on the lock, SELECT 1 still answers.
            with psycopg.connect(cluster.dsn(url.rpartition("/")[2])) as locker:
                locker.execute("LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with ThreadPoolExecutor(1) as pool:
                    pending = pool.submit(client.post, "/v1/usage", json=usage_events("slow", 5))
                    time.sleep(held)
                    assert not pending.done(), "the request waits while the commit is blocked"
                    locker.rollback()
                    response = pending.result()
            waited = time.monotonic() - started
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 5
            assert waited >= held, f"answered after {waited:.1f} s, before the lock was released"
            assert total(client.get("/metrics").text, "llm_requests_total") == 10
    finally:
        server.stop()


def test_ingest_and_readyz_answer_503_promptly_while_postgresql_hangs_and_retries_count_once(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(f"ingest: {{commit_timeout_seconds: {COMMIT_TIMEOUT}}}\n")
    server = LlmcostProcess(cluster.create_database(), config=config, role="ingest").start(tmp_path)
    try:
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
    finally:
        server.stop()


def test_a_burst_of_requests_while_postgresql_hangs_does_not_exhaust_the_threads_ingest_needs(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """Eighty budget checks during a pause (clients check before every LLM call) were each answered 503,
    but each left a worker thread waiting on a silent connection or for the pool: the thread pool ran
    out, and `POST /v1/usage`, which needs a thread to parse, was answered after 13 s instead of
    within its commit timeout. Requests that start once the store is known silent no longer take one.
    Each request left unanswered also logged its own warning; the outage is one warning now."""
    config = tmp_path / "llmcost.yml"
    config.write_text(f"ingest: {{commit_timeout_seconds: {COMMIT_TIMEOUT}}}\n")
    server = LlmcostProcess(cluster.create_database(), config=config).start(tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            assert client.post("/v1/usage", json=usage_events("before", 3)).status_code == 200
            cluster.pause()
            try:

                def check(project: int) -> float:
                    started = time.monotonic()
                    answer = client.post("/v1/budgets/check", json={"project": f"p{project}", "estimated_cost_usd": 1})
                    assert answer.status_code in (200, 503), answer.text  # 200: no budget needs the store
                    return time.monotonic() - started

                with ThreadPoolExecutor(80) as pool:
                    waits = list(pool.map(check, range(80)))
                assert max(waits) < 8, f"a budget check answered after {max(waits):.1f} s"
                started = time.monotonic()
                response = client.post("/v1/usage", json=usage_events("during", 3))
                waited = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert waited < COMMIT_TIMEOUT + 3, f"ingest answered after {waited:.1f} s"
                assert client.get("/healthz").status_code == 200
            finally:
                cluster.resume()
            wait_until(
                lambda: client.post("/v1/usage", json=usage_events("during", 3)).status_code == 200,
                timeout=30,
                what="ingest acknowledged once PostgreSQL answers",
            )
            wait_until(lambda: client.get("/v1/alerts").status_code == 200, timeout=30, what="reads answered again")
        # One warning for the outage, not one per request it left unanswered (each logged `GET /path: the
        # store does not answer; answered 503`), and one line at its end.
        log = server.log()
        warned = [line for line in log.splitlines() if " WARNING " in line and "503" in line]
        assert len(warned) == 1 and "store unavailable: " in warned[0], warned
        assert log.count("store answers again") == 1, log[-4000:]
    finally:
        server.stop()


def test_metrics_answers_within_the_scrape_timeout_while_postgresql_hangs_and_says_the_store_is_down(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """A scrape of a process whose PostgreSQL is paused hung until Prometheus gave up: the target showed
    down with no reason and every series went stale. It now answers before the scrape timeout Prometheus
    sends, with `llm_store_up 0` (the families read from the store left out), and `1` again after."""
    server = LlmcostProcess(cluster.create_database(), role="all").start(tmp_path)
    scrape = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}
    try:
        with httpx.Client(base_url=server.base, timeout=15) as client:
            assert client.post("/v1/usage", json=usage_events("before", 7)).status_code == 200
            text = client.get("/metrics", headers=scrape).text
            assert total(text, "llm_store_up") == 1
            cluster.pause()
            try:
                for _ in range(3):  # the later scrapes find the first one's collection still stuck
                    started = time.monotonic()
                    response = client.get("/metrics", headers=scrape)
                    waited = time.monotonic() - started
                    assert response.status_code == 200, response.text
                    assert waited < 3, f"answered after {waited:.1f} s, past the scrape timeout"
                    assert total(response.text, "llm_store_up") == 0
                    assert "llm_exporter_build_info" in response.text
                    assert "llm_requests_total" not in response.text, "no stale or partial totals"
                assert client.get("/healthz").status_code == 200  # alive: restarting it would not help
            finally:
                cluster.resume()

            def back() -> bool:
                text = client.get("/metrics", headers=scrape).text
                return total(text, "llm_store_up") == 1 and total(text, "llm_requests_total") == 7

            wait_until(back, timeout=15, what="the store's totals and llm_store_up 1 once PostgreSQL answers")
    finally:
        server.stop()


def test_reads_answer_503_promptly_while_postgresql_hangs_and_200_once_it_answers(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """`GET /v1/budgets`, `GET /v1/alerts` and `POST /v1/budgets/check` on a paused PostgreSQL hung for as
    long as the pause lasted (the query waited on an open, silent pooled connection). They now answer 503
    with Retry-After."""
    server = LlmcostProcess(cluster.create_database(), role="all").start(tmp_path)
    reads = ["/v1/budgets", "/v1/alerts"]
    try:
        with httpx.Client(base_url=server.base, timeout=20) as client:
            assert client.post("/v1/usage", json=usage_events("before", 3)).status_code == 200
            assert [client.get(path).status_code for path in reads] == [200, 200]
            cluster.pause()
            try:
                for path in reads:
                    started = time.monotonic()
                    response = client.get(path)
                    waited = time.monotonic() - started
                    assert response.status_code == 503, f"{path}: {response.text}"
                    assert response.headers.get("retry-after") == "5"
                    assert waited < 8, f"{path} answered after {waited:.1f} s"
                # A check only asks: the same bound (the client's fail_mode reads a 503 as "unreachable"),
                # unless it is answered from the checks' cache, also at once.
                for _ in range(2):
                    started = time.monotonic()
                    response = client.post("/v1/budgets/check", json={"project": "p", "estimated_cost_usd": 0.1})
                    waited = time.monotonic() - started
                    assert response.status_code in (200, 503), response.text
                    assert waited < 8, f"the budget check answered after {waited:.1f} s"
            finally:
                cluster.resume()
            wait_until(
                lambda: [client.get(path).status_code for path in reads] == [200, 200],
                timeout=20,
                what="the reads answered again once PostgreSQL answers",
            )
    finally:
        server.stop()


def test_reads_of_a_locked_database_that_hold_every_pooled_connection_keep_waiting_and_readyz_stays_ready(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """A database that is only busy answers; llmcost must not say it does not.

    An operator's `LOCK TABLE` (or a long migration) blocked 18 summary reads, which held every pooled
    connection (8 + 8 overflow). The store probe asked "does the database answer at all?" on a pooled
    connection too, waited for one past its 2 s, and took the busy database for a silent one: the reads got
    `503 store not answering` and `/readyz` failed (a load balancer would take the process out). The probe
    now connects afresh when the pool is full.
    """
    url = cluster.create_database()
    server = LlmcostProcess(url, role="ingest").start(tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            assert client.post("/v1/usage", json=usage_events("before", 3)).status_code == 200
            with psycopg.connect(cluster.dsn(url.rpartition("/")[2])) as locker:
                locker.execute("LOCK TABLE usage_series IN ACCESS EXCLUSIVE MODE")
                with ThreadPoolExecutor(18) as pool:
                    reads = [pool.submit(client.get, "/v1/usage/summary?by=project") for _ in range(18)]
                    # Past the reads' 3 s wait and the probe's 2 s: the probe has been asked, and answered.
                    time.sleep(7)  # passing time is the subject: nothing may be refused meanwhile
                    assert not any(read.done() for read in reads), [r.result().text for r in reads if r.done()]
                    ready = httpx.get(f"{server.base}/readyz", timeout=10)
                    assert ready.status_code == 200, ready.text
                    locker.rollback()
                    answers = [read.result() for read in reads]
            assert [answer.status_code for answer in answers] == [200] * 18, {a.text for a in answers}
    finally:
        server.stop()


def test_an_alertmanager_webhook_is_answered_503_while_postgresql_hangs_and_its_retry_notifies_once(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """Alertmanager's POST /v1/alertmanager hung for as long as PostgreSQL was paused (its notification
    then timed out with no reason given). It is answered 503 now; Alertmanager retries, and the alert
    is notified once, whether or not the first attempt's write landed when the database came back."""
    alert = am_payload([am_alert("LLMCostSpike")])
    with SlackAPIServer() as slack:
        config = tmp_path / "llmcost.yml"
        slack_channel = {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url}
        config.write_text(
            yaml.safe_dump(
                {
                    "alerting": {"outbox": {"poll_interval": "100ms"}},
                    "notifications": {"slack": slack_channel, "routes": {"warning": ["slack"]}},
                }
            )
        )
        server = LlmcostProcess(cluster.create_database(), config=config).start(tmp_path)
        try:
            with httpx.Client(base_url=server.base, timeout=20) as client:
                assert client.get("/v1/alerts").status_code == 200  # the pool holds idle connections
                cluster.pause()
                try:
                    started = time.monotonic()
                    response = client.post("/v1/alertmanager", json=alert)
                    waited = time.monotonic() - started
                    assert response.status_code == 503, response.text
                    assert waited < 8, f"answered after {waited:.1f} s"
                finally:
                    cluster.resume()
                wait_until(
                    lambda: client.post("/v1/alertmanager", json=alert).status_code == 200,
                    timeout=20,
                    what="the webhook accepted once PostgreSQL answers",
                )
                wait_until(lambda: slack.calls("chat.postMessage"), timeout=15, what="the Slack message")
                time.sleep(2)  # on purpose: a second message can only be ruled out over time (outbox polls 100 ms)
                assert len(slack.calls("chat.postMessage")) == 1
                assert len(client.get("/v1/alerts").json()) == 1
        finally:
            server.stop()
