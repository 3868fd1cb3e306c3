"""A PostgreSQL restart under `llmcost serve --role scheduler`: the delivery workers wait it out calmly.

docs/deployment.md: while the database is unreachable the scheduler "logs the outage calmly, with no
traceback" (one warning when it starts, one line when it ends). Its delivery workers, one per channel,
poll the outbox every second; they must log the same way and deliver what is due once it is back, and a
notification one process sent just before the outage is not sent again by another after it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.helpers import usage_events
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess
from tests.support.recording_servers import SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


@pytest.mark.within_period("daily", 60)  # the daily budget's alert must not end with the day
def test_delivery_workers_log_a_postgresql_restart_without_tracebacks_and_deliver_after_it(tmp_path: Path) -> None:
    """Defect: each delivery worker logged a full traceback (~40 lines) for every failed poll while the
    database was down, one per channel and process, burying the one fact that mattered. Now a worker logs
    one warning naming its channel and the driver's error, and one line when the store answers again.

    Defect: the gateway's tick (repeats, receipts, outbox upkeep, every `alerting.tick_interval`) logged
    `ERROR gateway tick failed; will try again` with a traceback on each tick of the outage (four for a
    two-minute restart at the default 30 s); it now logs the outage as the workers do.
    """
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database()
        with SlackAPIServer() as slack:
            config = tmp_path / "llmcost.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "budgets": [{"name": "daily", "scope": "global", "period": "daily", "limit": 1.0}],
                        "notifications": {
                            "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                            "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
                        },
                        "alerting": {"tick_interval": "1s"},  # so that ticks fall inside the outage
                    }
                )
            )
            server = LlmcostProcess(url, config=config, role="all").start(tmp_path)
            try:
                cluster.stop("fast")
                for what in ("outbox worker slack", "gateway tick"):
                    wait_until(lambda what=what: f"{what}: store unreachable" in server.log(), timeout=15, what=what)
                cluster.restart()
                for what in ("outbox worker slack", "gateway tick"):
                    wait_until(
                        lambda what=what: f"{what}: store reachable again" in server.log(), timeout=40, what=what
                    )
                # Delivery carries on: a crossing after the restart reaches Slack once.
                events = [{**event, "cost_usd": 0.5} for event in usage_events("after", 3)]
                wait_until(
                    lambda: httpx.post(f"{server.base}/v1/usage", json=events, timeout=10).status_code == 200,
                    timeout=20,
                    what="ingest acknowledged",
                )
                wait_until(lambda: slack.calls("chat.postMessage"), timeout=15, what="the budget message on Slack")
            finally:
                server.stop()
            log = server.log()
            assert "Traceback" not in log, log[-4000:]
            assert log.count("outbox worker slack: store unreachable") == 1, log[-4000:]
            assert log.count("gateway tick: store unreachable") == 1 and "gateway tick failed" not in log, log[-4000:]
            assert len(slack.calls("chat.postMessage")) == 1
    finally:
        cluster.destroy()


@pytest.mark.within_period("daily", 60)  # the daily budget's alert must not end with the day
def test_a_notification_sent_just_before_an_outage_longer_than_its_lease_is_not_sent_again_by_another_process(
    tmp_path: Path,
) -> None:
    """Defect: a process sent a Slack message, then could not record it while the database was down. The
    outage outlasted the row's lease (`outbox.lease`), so when the database came back another process
    claimed the row as if its sender had crashed, and sent it again (Slack: a second message unless the bot
    may read the channel's history; email: a second mail). Now a worker back from an outage leaves rows
    other processes had claimed for one more lease, so their senders record what they sent first.
    """
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database()
        with SlackAPIServer() as slack:
            config = tmp_path / "llmcost.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "alerting": {"outbox": {"lease": "3s", "poll_interval": "200ms"}},
                        "budgets": [{"name": "daily", "scope": "global", "period": "daily", "limit": 1.0}],
                        "notifications": {
                            "slack": {"token": "xoxb-test-token", "channel": "#llm-cost", "api_url": slack.api_url},
                            "routes": {"info": [], "warning": ["slack"], "critical": ["slack"]},
                        },
                    }
                )
            )
            procs = [LlmcostProcess(url, config=config, role="all").start(tmp_path) for _ in range(2)]
            try:
                slack.answer_late(3)  # posted at once, answered while the database is down
                events = [{**event, "cost_usd": 0.5} for event in usage_events("k", 3)]
                assert httpx.post(f"{procs[0].base}/v1/usage", json=events, timeout=10).status_code == 200
                wait_until(lambda: slack.calls("chat.postMessage"), timeout=10, what="the budget message on Slack")
                cluster.stop("fast")
                wait_until(
                    lambda: all("outbox worker slack: store unreachable" in p.log() for p in procs),
                    timeout=10,
                    what="both processes' workers waiting for the store",
                )
                time.sleep(6)  # on purpose: the outage's length is the subject (twice the 3 s lease)
                cluster.restart()
                wait_until(
                    lambda: all("outbox worker slack: store reachable again" in p.log() for p in procs),
                    timeout=40,
                    what="both workers back",
                )
                # On purpose: a second delivery (by the other process) can only be ruled out over time.
                time.sleep(5)
            finally:
                for proc in procs:
                    proc.stop()
            assert [r.path for r in slack.requests] == ["/api/chat.postMessage"], "sent once, never looked for again"
            assert all("lease lost" not in p.log() for p in procs)
    finally:
        cluster.destroy()
