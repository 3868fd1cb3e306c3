"""Two `llmcost serve` replicas on one PostgreSQL behind a load balancer, each scraped by Prometheus.

Every process reads its counters from the shared store, so two scraped replicas used to expose the same
totals twice: `sum(llm_cost_usd_total)` over the job, and every shipped recording rule (`sum by (…)
(rate(…))`), read twice the spend. With `metrics.store_series: leader` only the scheduler's leader exposes
the store's series; the other replica answers its build info. A hand-over (SIGTERM, a
rolling deploy) moves them to the other replica, and no sum ever counts a call twice.

A hard budget's check on one replica used to answer from its cache for 250 ms after a call recorded through
the other one: the call that put the budget past its limit, then a check on the other replica, allowed.

An acknowledgement clicked in Slack reaches whichever replica the balancer picks; it already held (kept as
a check: one ack, one Slack update, one PagerDuty acknowledge), as did a replica killed in the middle of a
Slack post: the other one recorded the message without posting it again.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.helpers import samples, total
from tests.support.pg import PostgresCluster, free_port
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

STORE_FAMILIES = ("llm_cost_usd_total", "llm_requests_total", "llm_budget_spent", "llm_ingest_events_total")


def _event(request_id: str, cost: float) -> dict[str, object]:
    return {
        "request_id": request_id,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": cost,
        "project": "search",
    }


def _scrape(proc: LlmcostProcess) -> str:
    """/metrics of a replica, or "" when it is down (Prometheus then has no samples of it)."""
    if proc.proc is None or proc.proc.poll() is not None:
        return ""
    return httpx.get(f"{proc.base}/metrics", timeout=10).text


def _summed(procs: list[LlmcostProcess], name: str) -> float:
    """What `sum(name)` over the job reads: every scraped replica's samples added up."""
    return sum(total(_scrape(p), name) for p in procs)


def _exposing(procs: list[LlmcostProcess]) -> list[LlmcostProcess]:
    return [p for p in procs if total(_scrape(p), "llm_cost_usd_total") > 0]


@pytest.mark.within_period("daily")  # a daily budget: its spend must stay in one day
def test_sums_over_both_scraped_replicas_count_each_call_once_across_a_hand_over(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    url = pg_cluster.create_database()
    config = tmp_path / "llmcost.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "metrics": {"store_series": "leader"},
                "budgets": {"items": [{"name": "daily", "scope": "global", "period": "daily", "limit": 100.0}]},
            }
        )
    )
    a = LlmcostProcess(url, config=config).start(tmp_path)
    b = LlmcostProcess(url, config=config).start(tmp_path)
    procs = [a, b]
    try:
        # Through both, and each call retried on the other replica (a client retrying through the balancer).
        for i, (first, second) in enumerate([(a, b), (b, a), (a, b)]):
            event = _event(f"call-{i}", 1.25)
            assert httpx.post(f"{first.base}/v1/usage", json=event).json()["accepted"] == 1
            assert httpx.post(f"{second.base}/v1/usage", json=event).json()["duplicates"] == 1

        # One replica (the leader, a: it started first) exposes the store's series; the other only itself.
        assert _exposing(procs) == [a]
        assert {name for name, _labels in samples(_scrape(b))} == {"llm_exporter_build_info"}
        assert _summed(procs, "llm_cost_usd_total") == pytest.approx(3.75)
        assert _summed(procs, "llm_requests_total") == 3
        assert _summed(procs, "llm_budget_spent") == pytest.approx(3.75)
        assert _summed(procs, "llm_store_up") == 1

        # A rolling deploy: the leader stops (SIGTERM hands the lease over), calls keep arriving at b,
        # then a comes back as a follower. No moment has the totals exposed twice, and nothing is lost.
        a.stop()
        assert httpx.post(f"{b.base}/v1/usage", json=_event("during-restart", 2.0)).json()["accepted"] == 1
        wait_until(lambda: _exposing(procs) == [b], timeout=10, interval=0.2, what="b exposing the totals")
        assert _summed(procs, "llm_cost_usd_total") == pytest.approx(5.75)
        a.start(tmp_path)
        assert httpx.post(f"{a.base}/v1/usage", json=_event("during-restart", 2.0)).json()["duplicates"] == 1
        assert _exposing(procs) == [b]
        assert _summed(procs, "llm_cost_usd_total") == pytest.approx(5.75)
        assert _summed(procs, "llm_budget_spent") == pytest.approx(5.75)
        assert _summed(procs, "llm_ingest_events_total") == pytest.approx(4 + 4)  # accepted 4, duplicates 4
    finally:
        for proc in procs:
            proc.stop()


def test_leader_only_series_are_refused_with_workers_sharing_one_address(tmp_path: Path, pg_url: str) -> None:
    """A scrape of `--workers N` reaches any worker, mostly a follower: the start is refused, naming the key."""
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"metrics": {"store_series": "leader"}}))
    done = subprocess.run(
        [
            *LLMCOST,
            "serve",
            "--db",
            pg_url,
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "metrics.store_series: leader needs one process per scraped address" in done.stderr


def test_a_check_on_one_replica_sees_the_call_just_recorded_through_the_other(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    """Check, call, record, check again, through a balancer that alternates: refused as one replica refuses."""
    url = pg_cluster.create_database()
    a = LlmcostProcess(url, role="ingest").start(tmp_path)
    b = LlmcostProcess(url, role="ingest").start(tmp_path)
    try:
        with httpx.Client(timeout=10) as client:
            budget = {"scope": "project", "key": "*", "period": "total", "limit": 1.0, "mode": "hard"}
            assert client.put(f"{a.base}/v1/budgets/cap", json=budget).status_code in (200, 201)
            for i in range(5):  # five projects: each a fresh instance, its first answer cached on b
                check = {"project": f"p{i}", "estimated_cost_usd": 0.1}
                assert client.post(f"{b.base}/v1/budgets/check", json=check).json()["allowed"] is True
                recorded = client.post(f"{a.base}/v1/usage", json={**_event(f"r{i}", 0.95), "project": f"p{i}"})
                assert recorded.json()["accepted"] == 1
                on_b = client.post(f"{b.base}/v1/budgets/check", json=check).json()
                on_a = client.post(f"{a.base}/v1/budgets/check", json=check).json()
                assert (on_b["allowed"], on_a["allowed"]) == (False, False), on_b
                assert on_b["budgets"][0]["spent"] == pytest.approx(0.95)
    finally:
        for proc in (a, b):
            proc.stop()


def test_prometheus_scraping_both_replicas_sums_each_call_once_through_a_rolling_restart(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    """A real Prometheus: the old leader's series end (stale) as the new leader's start, so no sum doubles."""
    from tests.support import live_stack

    url = pg_cluster.create_database()
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"metrics": {"store_series": "leader"}}))
    a = LlmcostProcess(url, config=config).start(tmp_path)
    b = LlmcostProcess(url, config=config).start(tmp_path)
    prometheus_yml = tmp_path / "prometheus.yml"
    prometheus_yml.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in live_stack.fast_rule_files(tmp_path / "rules", {})],
                "scrape_configs": [
                    {
                        "job_name": "llmcost",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    prometheus = live_stack.stack.prometheus_server(prometheus_yml, tmp_path / "tsdb", port, tmp_path / "prom.log")
    base = f"http://127.0.0.1:{port}"

    def value(expr: str) -> float | None:
        result = live_stack.instant_query(base, expr)
        return float(result[0]["value"][1]) if result else None

    total_cost = 'sum(llm_cost_usd_total{job="llmcost"})'

    def steadily(expected: float) -> None:
        wait_until(lambda: value(total_cost) == pytest.approx(expected), timeout=15, what=f"{expected} summed")
        seen = []
        for _ in range(4):  # 2 s: two scrapes of each replica (every 1 s)
            seen.append(value(total_cost))
            time.sleep(0.5)  # on purpose: a doubled sum could only show over several scrapes of both replicas
        assert seen == [pytest.approx(expected)] * 4, seen

    try:
        prometheus.start()
        wait_until(lambda: value('count(up{job="llmcost"} == 1)') == 2, timeout=15, what="both replicas up")
        for i, proc in enumerate([a, b, a]):
            assert httpx.post(f"{proc.base}/v1/usage", json=_event(f"call-{i}", 1.25)).json()["accepted"] == 1
        steadily(3.75)

        a.stop()  # SIGTERM: b takes over within 5 s
        assert httpx.post(f"{b.base}/v1/usage", json=_event("during-restart", 2.0)).json()["accepted"] == 1
        steadily(5.75)
        a.start(tmp_path)  # back as a follower, scraped again
        wait_until(lambda: value('count(up{job="llmcost"} == 1)') == 2, timeout=15, what="both replicas up again")
        steadily(5.75)
        assert value('count(llm_cost_usd_total{job="llmcost"})') == 1  # one series, on one target
    finally:
        prometheus.stop()
        for proc in (a, b):
            proc.stop()


def test_the_ack_button_clicked_through_one_replica_acknowledges_what_the_other_sent(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    """Slack's interactivity request lands on whichever replica the balancer picks: one ack, one update each."""
    from urllib.parse import urlencode

    import orjson

    from alerting.signatures import sign_slack
    from tests.support.gateway_harness import am_alert, am_payload
    from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer

    secret = "slack-signing-secret-0123456789"
    url = pg_cluster.create_database()
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pagerduty:
        config = tmp_path / "llmcost.yml"
        slack_config = {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url}
        pagerduty_config = {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32", "events_url": pagerduty.events_url}
        config.write_text(
            yaml.safe_dump(
                {
                    "notifications": {
                        "slack": {**slack_config, "signing_secret": secret},
                        "pagerduty": pagerduty_config,
                        "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
                    }
                }
            )
        )
        a = LlmcostProcess(url, config=config).start(tmp_path)
        b = LlmcostProcess(url, config=config).start(tmp_path)
        try:
            alert = am_alert("LLMCostExporterDown", severity="critical")
            assert httpx.post(f"{a.base}/v1/alertmanager", json=am_payload([alert])).status_code == 200
            wait_until(lambda: slack.calls("chat.postMessage") and pagerduty.events, timeout=15, what="the page")
            [post] = slack.calls("chat.postMessage")
            [button] = [
                element
                for block in post.payload.get("blocks", [])
                for element in block.get("elements", []) or []
                if isinstance(element, dict) and element.get("action_id") == "llmcost_ack"
            ]
            click = {
                "type": "block_actions",
                "user": {"id": "U123", "username": "alice", "name": "alice"},
                "actions": [{"action_id": "llmcost_ack", "value": button["value"], "type": "button"}],
            }
            body = urlencode({"payload": orjson.dumps(click).decode()}).encode()
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": sign_slack(secret, stamp, body),
            }
            assert httpx.post(f"{b.base}/v1/slack/interactions", content=body, headers=headers).status_code == 200
            alerts = httpx.get(f"{a.base}/v1/alerts").json()
            assert [(x["state"], x["acknowledged_by"]) for x in alerts] == [("acknowledged", "alice")]
            wait_until(
                lambda: slack.calls("chat.update") and len(pagerduty.events) > 1, timeout=15, what="the ack's updates"
            )
            time.sleep(1)  # on purpose: a second update (from the other replica) can only be ruled out over time
            assert len(slack.calls("chat.update")) == 1
            assert [e["event_action"] for e in pagerduty.events] == ["trigger", "acknowledge"]
            assert len(slack.calls("chat.postMessage")) == 1
        finally:
            for proc in (a, b):
                proc.stop()


def test_a_replica_killed_while_posting_to_slack_leaves_one_message_which_the_other_records(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    """kill -9 in the middle of a Slack post: the other replica takes the row when its lease ends and finds
    the message already in the channel (conversations.history), so it records it sent without a second post."""
    import psycopg

    from tests.support.gateway_harness import am_alert, am_payload
    from tests.support.recording_servers import SlackAPIServer

    url = pg_cluster.create_database()
    with SlackAPIServer() as slack:
        config = tmp_path / "llmcost.yml"
        slack_config = {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url}
        config.write_text(
            yaml.safe_dump(
                {
                    "alerting": {"outbox": {"lease": "3s"}},
                    "notifications": {
                        "slack": slack_config,
                        "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
                    },
                }
            )
        )
        procs = [LlmcostProcess(url, config=config).start(tmp_path) for _ in range(2)]
        try:
            slack.answer_late(5)  # the post is made, its answer never reaches the replica that sent it
            alert = am_alert("LLMCostExporterDown", severity="critical")
            assert httpx.post(f"{procs[0].base}/v1/alertmanager", json=am_payload([alert])).status_code == 200
            wait_until(lambda: slack.calls("chat.postMessage"), timeout=15, what="the Slack post under way")
            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
                [(owner,)] = conn.execute("SELECT lease_owner FROM notification_outbox").fetchall()
            sender = next(p for p in procs if p.proc is not None and f":{p.proc.pid}:" in owner)
            sender.kill9()
            survivor = next(p for p in procs if p is not sender)

            def sent() -> bool:
                with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
                    return conn.execute("SELECT status FROM notification_outbox").fetchall() == [("sent",)]

            wait_until(sent, timeout=20, interval=0.2, what="the row recorded sent by the other replica")
            assert len(slack.calls("chat.postMessage")) == 1
            assert slack.calls("conversations.history")  # it looked before posting again
            assert total(_scrape(survivor), "llm_notifications_total", channel="slack", outcome="sent") == 1
        finally:
            for proc in procs:
                proc.stop()
