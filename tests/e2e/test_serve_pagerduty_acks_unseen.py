"""Live: PagerDuty configured without `webhook_secret`, and an incident acknowledged in PagerDuty.

What runs: `llmcost serve` (SQLite), budgets evaluated every second, Slack and PagerDuty as recording servers
(`api_url`, `events_url`), critical routed to both, no `notifications.pagerduty.webhook_secret`.

Defect: the budget exceeded paged; on-call acknowledged the incident in PagerDuty, whose webhook llmcost
refuses unsigned (it cannot verify it), so llmcost went on counting the alert as unacknowledged (firing in
`GET /v1/alerts` and the console, reminded in Slack) and nothing at start had said this would happen. Now
`serve` logs a notice naming the key to set (`check-config` prints it:
tests/alerting/test_gateway_route_channels.py).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting.gateway.routing import PAGERDUTY_ACKS_UNSEEN
from tests.support import live_stack
from tests.support.procs import serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

ADMIN = "unseen-admin-token-0123456789abcdef"
INGEST = "unseen-ingest-token-0123456789abcdef"


def test_an_ack_in_pagerduty_without_webhook_secret_is_unseen_and_serve_says_so(tmp_path: Path) -> None:
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer())
        pd = cleanup.enter_context(PagerDutyEventsServer())
        [port] = live_stack.free_ports(1)
        config: dict[str, Any] = {
            "auth": {"ingest_tokens": [INGEST], "admin_tokens": [ADMIN]},
            "budgets": {"evaluate_seconds": 1, "items": []},
            "alerting": {"repeat_interval": "2s"},
            "notifications": {
                "slack": {"token": "xoxb-unseen-test", "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {"routing_key": "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32", "events_url": pd.events_url},
                "routes": {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(tmp_path, config, port, cleanup)
        [notice] = [line for line in llmcost.log().splitlines() if PAGERDUTY_ACKS_UNSEEN in line]
        assert " WARNING llmcost: " in notice

        admin = live_stack.bearer(ADMIN)
        budget = {"scope": "project", "key": "team-u", "period": "daily", "limit": 100}
        response = httpx.put(f"{llmcost.base}/v1/budgets/team-u", json=budget, headers=admin, timeout=10)
        assert response.status_code == 200, response.text
        live_stack.spend(llmcost.base, INGEST, "team-u", "unseen-1", 110.0)  # exceeded: paged
        wait_until(lambda: len(pd.pages) == 1, what="the page", timeout=45)

        webhook = pd.acknowledge_in_pagerduty(pd.events[0]["dedup_key"])
        # PagerDuty signs nothing without a subscription's secret; llmcost cannot tell it from a forgery.
        response = httpx.post(f"{llmcost.base}/v1/pagerduty/webhook", json=webhook, timeout=10)
        assert response.status_code == 401, response.text

        [alert] = httpx.get(f"{llmcost.base}/v1/alerts", headers=admin, timeout=10).json()
        assert (alert["state"], alert.get("acknowledged_by")) == ("firing", None)
        # On-call took it, yet Slack is reminded as of an alert nobody acknowledged.
        wait_until(
            lambda: [c for c in slack.calls("chat.postMessage") if c.payload.get("thread_ts")],
            what="a Slack reminder after the ack in PagerDuty",
            timeout=30,
        )
        assert pd.pages[0].status == "acknowledged" and len(pd.pages) == 1
