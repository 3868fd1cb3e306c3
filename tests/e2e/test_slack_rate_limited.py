"""Slack rate-limits a real `llmcost serve` on PostgreSQL for a while: the alert still reaches the channel, once.

Defect: the outbox waited exactly what Slack's `Retry-After` asked (1 s, as Slack often answers) and
counted each of those tries against `alerting.outbox.max_attempts` (10): a rate limit of about ten
seconds used up every attempt and dead-lettered the alert, which never reached Slack, though the same
ten attempts span about 13 minutes of a Slack answering `500`. Now `Retry-After` is the least wait and
the backoff still grows, so a rate-limited notification gets the same time to go out as a failing one.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.helpers import total
from tests.support.procs import LlmcostProcess
from tests.support.recording_base import RecordedRequest, Response
from tests.support.recording_servers import SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

LIMITED_FOR = 13.0  # seconds: past ten 1-second retries (the old dead letter), well short of a minute


class RateLimitedSlack(SlackAPIServer):
    """Slack answering `429` with `Retry-After: 1` to every call until `limited_until`, then as usual."""

    limited_until = 0.0

    def default_response(self, request: RecordedRequest) -> Response:
        if time.monotonic() < self.limited_until:
            return Response(429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})
        return super().default_response(request)


def test_an_alert_rate_limited_by_slack_for_longer_than_ten_retry_afters_reaches_the_channel_once(
    tmp_path: Path, pg_url: str
) -> None:
    with RateLimitedSlack() as slack:
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
                    # Shorter than the defaults (2 s, 1 s), so the retries fit the test; the rule is the same.
                    "alerting": {"outbox": {"initial_backoff": "250ms", "poll_interval": "100ms"}},
                }
            )
        )
        server = LlmcostProcess(pg_url, config=config, role="all").start(tmp_path)
        try:
            slack.limited_until = time.monotonic() + LIMITED_FOR
            spend = {"request_id": "big", "timestamp": time.time(), "provider": "openai", "model": "gpt-4o"}
            spend |= {"input_tokens": 100, "output_tokens": 10, "cost_usd": 1.5, "project": "search"}
            assert httpx.post(f"{server.base}/v1/usage", json=[spend], timeout=10).status_code == 200
            wait_until(lambda: slack.posted, timeout=LIMITED_FOR + 25, interval=0.5, what="the alert posted on Slack")
            time.sleep(2)  # on purpose: a second post can only be ruled out over time
            metrics = httpx.get(f"{server.base}/metrics", timeout=10).text
        finally:
            server.stop()
        assert [m["text"][:40] for m in slack.posted] == ["[CRITICAL] LLMBudgetExceeded: Budget dai"]
        assert total(metrics, "llm_notification_dead_letters", channel="slack") == 0
        assert total(metrics, "llm_notifications_total", channel="slack", outcome="sent") == 1
        assert total(metrics, "llm_notifications_total", channel="slack", outcome="retried") >= 4
