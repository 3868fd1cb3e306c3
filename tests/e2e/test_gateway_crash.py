"""`kill -9` of a gateway process in the middle of delivering: after a restart nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, gateway_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

CHILD = """
import json, os, sys, time
from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from alerting.store import open_store
from llmcost.config import parse_config

config = parse_config(json.loads(os.environ["GATEWAY_CONFIG"]))
config.database_url = os.environ["GATEWAY_DB"]
gateway = GatewayService(open_store(config.database_url), settings_from_config(config))
for i in range(3):  # not spikes, which would be grouped into one message when due together
    gateway.fire("LLMProviderErrors", {"project": f"p{i}"}, severity="critical")
print("fired", flush=True)
time.sleep(600)  # stays alive, its workers delivering, until the test kills it
"""


def sent_rows(engine: Engine) -> int:
    """Outbox rows the (other) gateway process has recorded as sent, read straight from the store."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM notification_outbox WHERE status = 'sent'")).scalar_one())


def test_kill_9_while_delivering_loses_nothing(db: str, rx: Receivers) -> None:
    for _ in range(3):  # Slack posts the messages and never answers before the kill
        rx.slack.answer_late(30)
    alerting = {"outbox": {"lease": "2s", "poll_interval": "50ms"}}
    raw = gateway_config(db, rx, alerting=alerting).raw
    env = {**os.environ, "GATEWAY_CONFIG": json.dumps(raw), "GATEWAY_DB": db}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, cwd=os.getcwd())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"fired"
        wait_until(lambda: rx.counts() == {"slack": 3, "email": 3, "pagerduty": 3})
        # Email and PagerDuty were delivered and recorded; the three Slack messages are in flight.
        engine = create_engine(db)
        try:
            wait_until(
                lambda: sent_rows(engine) == 6, timeout=10, what="the email and PagerDuty deliveries recorded as sent"
            )
        finally:
            engine.dispose()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()

    later = FakeClock(time.time() + 5)  # the dead process's leases have run out
    with Harness(db, rx, clock=later, start_workers=True, alerting=alerting) as restarted:
        wait_until(lambda: len(restarted.gateway.notifications(status="sent", channel="slack")) == 3)
        assert restarted.gateway.notifications(status="pending") == []
        # Slack had posted the three messages, only their answers were lost: the restarted gateway finds
        # them in the channel instead of posting them again. Email and PagerDuty, whose deliveries were
        # recorded, are not sent twice.
        assert len(rx.slack.calls("chat.postMessage")) == len(rx.slack.posted) == 3
        assert {r.path for r in rx.slack.requests[3:]} <= {"/api/conversations.list", "/api/conversations.history"}
        assert (len(rx.smtp.messages), len(rx.pagerduty.events)) == (3, 3)
        assert restarted.metric("llm_notifications_total", outcome="sent") == 9
