"""Several real `llmcost serve` processes on one real PostgreSQL: nothing lost, nothing doubled."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until
from tests.support.wall_clock import clear_of_period_end

pytestmark = pytest.mark.real_process


def stream(n: int, prefix: str = "s") -> list[dict[str, object]]:
    now = time.time()
    rng = random.Random(3)
    return [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": now - 600 + i * 0.01,
            "provider": "openai",
            "model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
            "input_tokens": rng.randrange(10, 5000),
            "cache_read_tokens": rng.randrange(0, 1000),
            "output_tokens": rng.randrange(1, 800),
            "project": rng.choice(["search", "chat", "eval"]),
            "service": "api",
        }
        for i in range(n)
    ]


def post_all(base: str, events: list[dict[str, object]], batch: int = 100) -> tuple[int, int]:
    accepted = duplicates = 0
    with httpx.Client(timeout=30) as client:
        for k in range(0, len(events), batch):
            body = client.post(f"{base}/v1/usage", json=events[k : k + batch]).json()
            accepted += body["accepted"]
            duplicates += body["duplicates"]
    return accepted, duplicates


METRICS = ("llm_requests_total", "llm_tokens_total", "llm_cost_usd_total", "llm_reasoning_tokens_total")


def test_three_processes_ingesting_overlapping_streams_match_one_process(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    events = stream(3000)
    reference = LlmcostProcess(pg_cluster.create_database(), role="ingest").start(tmp_path)
    try:
        post_all(reference.base, events)
        expected = httpx.get(f"{reference.base}/metrics").text
    finally:
        reference.stop()

    url = pg_cluster.create_database()
    procs = [LlmcostProcess(url, role="ingest").start(tmp_path) for _ in range(3)]
    try:
        # Each process gets two thirds of the stream, so every id is sent to two different processes.
        shares = [events[i::3] + events[(i + 1) % 3 :: 3] for i in range(3)]
        for share in shares:
            random.Random(len(share)).shuffle(share)
        results: list[tuple[int, int]] = []
        threads = [
            threading.Thread(target=lambda p=p, s=s: results.append(post_all(p.base, s)))
            for p, s in zip(procs, shares, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(a for a, _ in results) == 3000
        assert sum(d for _, d in results) == 3000
        for proc in procs:
            text = httpx.get(f"{proc.base}/metrics").text
            for name in METRICS:
                for label in ("search", "chat", "eval"):
                    assert total(text, name, project=label) == total(expected, name, project=label), (name, label)
            assert total(text, "llm_ingest_events_total", outcome="accepted") == 3000
    finally:
        for proc in procs:
            proc.stop()


def test_postgresql_restart_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database()
        procs = [LlmcostProcess(url, role="ingest").start(tmp_path) for _ in range(2)]
        acknowledged: set[str] = set()
        statuses: list[int] = []
        stop = threading.Event()

        def sender(proc: LlmcostProcess, prefix: str) -> None:
            k = 0
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    batch = stream(20, f"{prefix}{k}")
                    try:
                        response = client.post(f"{proc.base}/v1/usage", json=batch)
                    except httpx.HTTPError:
                        statuses.append(-1)
                        continue
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        acknowledged.update(str(e["request_id"]) for e in batch)
                    k += 1
                    time.sleep(0.01)  # pacing: a steady load of small batches (not a wait for anything)

        threads = [threading.Thread(target=sender, args=(p, f"p{i}-")) for i, p in enumerate(procs)]
        for t in threads:
            t.start()
        wait_until(lambda: statuses.count(200) >= 20, timeout=30, what="the load flowing")
        cluster.stop("fast")
        stopped_at = len(statuses)
        # Twenty answers given while the database is down, some of them telling the client to retry.
        wait_until(
            lambda: len(statuses) >= stopped_at + 20 and 503 in statuses[stopped_at:],
            timeout=30,
            what="answers while the database is down",
        )
        down = statuses[stopped_at:]
        cluster.restart()
        wait_until(lambda: statuses[-1] == 200, timeout=30, what="ingest acknowledged again after the restart")
        recovered_at = len(statuses)
        wait_until(lambda: statuses[recovered_at:].count(200) >= 20, timeout=30, what="the load flowing again")
        stop.set()
        for t in threads:
            t.join()

        assert 503 in statuses, "clients were told to retry while the database was down"
        assert all(s in (200, 503) for s in down)
        assert statuses[-1] == 200, "processes recovered by themselves"
        for proc in procs:
            text = httpx.get(f"{proc.base}/metrics").text
            stored = total(text, "llm_requests_total")
            assert stored >= len(acknowledged)
            assert stored - len(acknowledged) <= 2 * 20  # at most the in-flight batches, never fewer
        response = httpx.get(f"{procs[0].base}/readyz")
        assert response.status_code == 200
        for proc in procs:
            proc.stop()
    finally:
        cluster.destroy()


def _runs(base: str, job: str) -> float:
    return total(httpx.get(f"{base}/metrics", timeout=10).text, "llm_scheduler_runs_total", task=job, outcome="success")


def test_scheduler_runs_once_per_tick_and_fails_over_after_kill_9(tmp_path: Path, pg_cluster: PostgresCluster) -> None:
    import psycopg
    import yaml

    from tests.support.recording_servers import SlackAPIServer

    url = pg_cluster.create_database()
    with SlackAPIServer() as slack:
        config = tmp_path / "llmcost.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "budgets": {
                        "evaluate_seconds": 1,
                        "items": [{"name": "daily", "scope": "global", "period": "daily", "limit": 1.0}],
                    },
                    "notifications": {
                        "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                        "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
                    },
                }
            )
        )
        procs = [LlmcostProcess(url, config=config, role="scheduler").start(tmp_path) for _ in range(3)]
        try:
            first = wait_until(lambda: _runs(procs[0].base, "budgets"), timeout=30, what="a first budget run")
            started = time.monotonic()
            # One run per 1 s tick across all three processes (not three): five more runs need at least four
            # tick boundaries (three runs per tick would take two), and no tick is missed wholesale.
            wait_until(lambda: _runs(procs[1].base, "budgets") >= first + 5, timeout=30, what="five more runs")
            took = time.monotonic() - started
            assert 3.5 <= took <= 9, f"five runs took {took:.1f} s"

            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
                holder = conn.execute("SELECT holder FROM leader_leases WHERE name = 'scheduler'").fetchone()[0]
            leader = next(p for p in procs if p.proc is not None and f":{p.proc.pid}:" in holder)
            leader.kill9()
            survivors = [p for p in procs if p is not leader]
            killed_at = time.time()
            before = _runs(survivors[0].base, "budgets")
            wait_until(
                lambda: _runs(survivors[0].base, "budgets") > before,
                timeout=30,
                interval=0.5,
                what="a new leader's run",
            )
            took = time.time() - killed_at
            assert took <= 20 + 2, f"failover took {took:.1f} s (documented bound: ttl 15 s + ttl/3)"

            # An exceeded budget raised while several processes deliver: one Slack message, not three.
            # Stamped now, not 10 minutes back: from 00:00 to 00:10 UTC that is yesterday, outside the daily budget;
            # and clear of midnight: the day must not end before the budget counts it and its message is out.
            stamp = clear_of_period_end("daily", 30)
            post_all(survivors[0].base, [{**stream(1, "big")[0], "cost_usd": 5.0, "timestamp": stamp}])
            wait_until(lambda: slack.calls("chat.postMessage"), timeout=15, what="the budget message on Slack")
            time.sleep(2)  # on purpose: a second message (from another process) can only be ruled out over time
            posts = slack.calls("chat.postMessage")
            texts = sorted(str(p.payload.get("text", ""))[:80] for p in posts)
            assert len(posts) == 1, texts  # one alert for the budget, at the level reached (exceeded)
        finally:
            for proc in procs:
                proc.stop()


def test_gateway_across_processes_notifies_once_and_an_ack_anywhere_counts_everywhere(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    import yaml

    from tests.support.gateway_harness import am_alert, am_payload
    from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer

    url = pg_cluster.create_database()
    admin = "admin-token-0123456789abcdef"
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pagerduty:
        config = tmp_path / "llmcost.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "auth": {"admin_tokens": [admin]},
                    "notifications": {
                        "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                        "pagerduty": {"routing_key": "R" * 32, "events_url": pagerduty.events_url},
                        "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
                    },
                }
            )
        )
        procs = [LlmcostProcess(url, config=config, role="all").start(tmp_path) for _ in range(2)]
        try:
            payload = am_payload([am_alert("LLMCostExporterDown", severity="critical")])
            # The same group delivered to both processes, as two Alertmanager HA peers do, five times each.
            threads = [
                threading.Thread(
                    target=lambda p=p: [httpx.post(f"{p.base}/v1/alertmanager", json=payload) for _ in range(5)]
                )
                for p in procs
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wait_until(
                lambda: slack.calls("chat.postMessage") and pagerduty.events, timeout=15, what="the Slack and PD alert"
            )
            time.sleep(2)  # on purpose: a second message (from the other process) can only be ruled out over time
            assert len(slack.calls("chat.postMessage")) == 1
            assert [e["event_action"] for e in pagerduty.events] == ["trigger"]

            headers = {"Authorization": f"Bearer {admin}"}
            alert = httpx.get(f"{procs[1].base}/v1/alerts", headers=headers).json()[0]
            acked = httpx.post(f"{procs[0].base}/v1/alerts/{alert['id']}/ack", headers=headers, json={"by": "alice"})
            assert acked.status_code == 200
            seen = httpx.get(f"{procs[1].base}/v1/alerts?state=acknowledged", headers=headers).json()
            assert [(a["id"], a["acknowledged_by"]) for a in seen] == [(alert["id"], "alice")]
            wait_until(
                lambda: slack.calls("chat.update") and len(pagerduty.events) > 1, timeout=15, what="the ack's updates"
            )
            time.sleep(1)  # on purpose: a second update (from the other process) can only be ruled out over time
            assert len(slack.calls("chat.update")) == 1
            assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
            assert len(slack.calls("chat.postMessage")) == 1
        finally:
            for proc in procs:
                proc.stop()
