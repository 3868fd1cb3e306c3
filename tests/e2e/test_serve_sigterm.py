"""`kill -TERM` of a real `llmcost serve` (the stop of systemd, Docker and Kubernetes) on PostgreSQL.

Defect: uvicorn, having stopped serving HTTP on SIGTERM, raises the signal again with the handler that was
there before it, the default one, which ends the process at once. So the closing steps after serving never
ran: a Slack message being delivered was abandoned unrecorded and sent a second time by whichever process
took the row over once its outbox lease ran out, and the scheduler lease was not handed over (a follower
waited for it to expire). Now a SIGTERM stops the process cleanly: the delivery in flight finishes and is
recorded, the lease is released, and the process exits with status 0.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.support.gateway_harness import am_alert, am_payload
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import SlackAPIServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

OUTBOX_LEASE = 2.0  # short, so a delivery abandoned by the stopped process would be sent again soon
STOP_GRACE = 30.0  # docker-compose.yml's stop_grace_period for llmcost: SIGKILL after this


def test_sigterm_finishes_the_delivery_in_flight_and_hands_the_scheduler_lease_over(
    tmp_path: Path, pg_url: str
) -> None:
    dsn = pg_url.replace("postgresql+psycopg", "postgresql")
    with SlackAPIServer() as slack:
        slack.enqueue(200, body={"ok": True, "channel": "C123", "ts": "1.1"}, delay=3)  # in flight at SIGTERM
        config = tmp_path / "llmcost.yml"
        slack_channel = {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url}
        config.write_text(
            yaml.safe_dump(
                {
                    "alerting": {"outbox": {"lease": f"{OUTBOX_LEASE:g}s", "poll_interval": "100ms"}},
                    "notifications": {
                        "slack": slack_channel,
                        "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
                    },
                }
            )
        )
        first = LlmcostProcess(pg_url, config=config, role="all").start(tmp_path)
        successor: LlmcostProcess | None = None
        try:
            payload = am_payload([am_alert("LLMCostExporterDown", severity="critical")])
            assert httpx.post(f"{first.base}/v1/alertmanager", json=payload, timeout=10).status_code == 200
            wait_until(lambda: slack.calls("chat.postMessage"), timeout=15, what="the Slack message in flight")
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            code = first.proc.wait(timeout=30)
            with psycopg.connect(dsn) as conn:
                (lease_ends,) = conn.execute("SELECT expires_at FROM leader_leases WHERE name = 'scheduler'").fetchone()
            stopped_at = time.time()

            successor = LlmcostProcess(pg_url, config=config, role="all").start(tmp_path)
            time.sleep(OUTBOX_LEASE + 3)  # on purpose: a second message can only be ruled out over time
            assert len(slack.calls("chat.postMessage")) == 1, first.log()[-3000:]
            with psycopg.connect(dsn) as conn:
                statuses = [r[0] for r in conn.execute("SELECT status FROM notification_outbox")]
            assert statuses == ["sent"]
            assert code == 0, first.log()[-3000:]
            assert lease_ends <= stopped_at, "the scheduler lease was handed over, not left to expire"
        finally:
            first.stop()
            if successor is not None:
                successor.stop()


def test_sigterm_stops_within_the_grace_period_while_postgresql_hangs(tmp_path: Path) -> None:
    """A stop must not wait on a store that does not answer (paused, partitioned): the closing steps are
    bounded, then the process ends as a SIGTERM would have ended it before. (It hung for minutes.)"""
    cluster = PostgresCluster().start()  # its own: paused below
    try:
        url = cluster.create_database()
        config = tmp_path / "llmcost.yml"
        budget = {"name": "daily", "scope": "global", "period": "daily", "limit": 1.0}
        config.write_text(yaml.safe_dump({"budgets": {"evaluate_seconds": 1, "items": [budget]}}))
        server = LlmcostProcess(url, config=config, role="all").start(tmp_path)
        try:
            wait_until(lambda: "took leadership" in server.log(), timeout=15, what="the scheduler leading")
            cluster.pause()
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            code = server.proc.wait(timeout=STOP_GRACE)  # raises TimeoutExpired if it hangs
            assert code == -signal.SIGTERM, server.log()[-3000:]
            assert "stopping without finishing" in server.log()
        finally:
            cluster.resume()
            server.stop()
    finally:
        cluster.destroy()
