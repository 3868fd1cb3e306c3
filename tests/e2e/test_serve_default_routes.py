"""`serve` logs the effective alert routing once at start, and warns of what the default routes leave out.

A config with Slack alone (no `routes:` written) starts, and its critical alerts, which the default route
pages, go to Slack only: `check-config` prints a notice (tests/alerting/test_gateway_route_channels.py),
and `serve` logs the same once, not once per worker, without refusing to start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import LlmcostProcess, children
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

SLACK_ONLY = "notifications:\n  slack: {token: xoxb-test, channel: '#llm-cost', api_url: 'http://127.0.0.1:9/api/'}\n"
PAGES_NOBODY = "critical alerts page nobody: notifications.pagerduty is not configured; they go to slack only"


def test_serve_with_slack_alone_warns_once_that_critical_alerts_page_nobody(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY)
    server = LlmcostProcess(sqlite_url, config=config, workers=2).start(tmp_path)
    try:
        assert server.proc is not None
        wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=10, what="two workers")  # type: ignore[union-attr]
        log = server.log()
        [warning] = [line for line in log.splitlines() if PAGES_NOBODY in line]
        assert " WARNING llmcost: " in warning
        [routing] = [line for line in log.splitlines() if "alert routing: " in line]
        assert "critical: slack (default route: slack, email, pagerduty)" in routing
    finally:
        server.stop()


def test_serve_with_every_channel_routed_says_nothing_more(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY + "  routes: {warning: [slack], critical: [slack]}\n")
    server = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        assert "alert routing: info: nobody (default route); warning: slack (notifications.routes.warning)" in (
            server.log()
        )
        assert "notifications.pagerduty is not configured" not in server.log()
    finally:
        server.stop()


def test_an_ingest_process_logs_no_routing_and_no_channel_warnings(tmp_path: Path, sqlite_url: str) -> None:
    # A `--role ingest` process delivers nothing, yet it logged the routing and warned that critical
    # alerts page nobody: beside a scheduler, every ingest replica repeated the scheduler's warnings.
    config = tmp_path / "llmcost.yml"
    config.write_text(SLACK_ONLY)
    server = LlmcostProcess(sqlite_url, config=config, role="ingest").start(tmp_path)
    try:
        log = server.log()
        assert "alert routing: " not in log and PAGES_NOBODY not in log, log
        assert "alert routing is logged by the processes that deliver notifications (roles all, scheduler)" in log
    finally:
        server.stop()
