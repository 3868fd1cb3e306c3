"""Live: with `alertmanager:` configured, one burst is still one Slack message and one PagerDuty incident.

What runs: `llmcost serve` (SQLite, five days of usual spend already in its store) with `alertmanager:
{url: …}` and spike detection every second; one real Alertmanager with the shipped `alertmanager.yml`
(its webhook on llmcost's port) and short group timings; Slack and PagerDuty as recording servers.

The story: a burst in project a on gpt-4o raises three `LLMCostSpike` alerts in one detection pass (the
total, the project, the model). llmcost pushes them to Alertmanager, whose shipped route grouped by
`project`, `provider` and `model`: three groups, three webhook deliveries, each applied on its own by
the gateway, which then sent each as its own Slack message and PagerDuty incident. The shipped route now
keeps llmcost's spikes in one group (`group_by: [alertname, cluster]`), so they come back in one delivery and the
gateway groups them by the pass that started them, as on the direct path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting.store import open_store
from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, RecordedRequest, SlackAPIServer
from tests.support.spikes import BUCKET, DAY, PROJECTS, call

pytestmark = pytest.mark.real_process

ADMIN_TOKEN = "spike-thread-admin-token-0123456789abcdef"
WEBHOOK_TOKEN = "spike-thread-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-spike-thread-test-token"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
TIMEOUT = 60.0


@dataclass
class SpikeStack:
    llmcost: LlmcostProcess
    alertmanager: str
    slack: SlackAPIServer
    pagerduty: PagerDutyEventsServer
    workdir: Path

    def firing(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.llmcost.base}/v1/alerts", headers=live_stack.bearer(ADMIN_TOKEN), timeout=5).json()
        return [a for a in body if a["alertname"] == "LLMCostSpike" and a["state"] == "firing"]

    def slack_posts(self) -> list[RecordedRequest]:
        return [r for r in self.slack.calls("chat.postMessage") if not r.payload.get("thread_ts")]

    def diagnostics(self) -> str:
        sources = (
            ("Alertmanager", lambda: httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()),
            ("gateway alerts", lambda: self.firing()),
            ("Slack calls", lambda: [(r.path, r.payload.get("text")) for r in self.slack.requests]),
            ("PagerDuty events", lambda: [(e["event_action"], e["dedup_key"]) for e in self.pagerduty.events]),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=3000, log_chars=3000)


def history_with_a_burst(url: str, now: float) -> None:
    """Five days of usual spend for projects a, b, c and, over the last 30 minutes, project a at ~100x."""
    rng = random.Random(11)
    end = int(now // BUCKET) * BUCKET
    events = [
        call(f"{project}-{bucket}", bucket + 10, project, provider, model, usd * rng.uniform(0.8, 1.2))
        for bucket in range(end - 5 * DAY, end, BUCKET)
        for project, (provider, model, usd) in PROJECTS.items()
    ]
    provider, model, _ = PROJECTS["a"]
    events += [call(f"burst-{b}", b + 20, "a", provider, model, 5.0) for b in range(end - 1800, end + BUCKET, BUCKET)]
    store = open_store(url)
    try:
        store.write_events([e for e in events if e.timestamp < now])
    finally:
        store.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpikeStack]:
    workdir = tmp_path_factory.mktemp("alertmanager-spike-thread")
    history_with_a_burst(f"sqlite:///{workdir / 'llmcost.db'}", time.time())
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        pagerduty = cleanup.enter_context(PagerDutyEventsServer())
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am_port = live_stack.free_ports(2)
        alertmanager = f"http://127.0.0.1:{am_port}"
        config: dict[str, Any] = {
            "auth": {"admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "external_url": "http://llmcost.test:9800",
            "alertmanager": {"url": alertmanager, "resend_interval": "1s", "retries": 1, "timeout": "2s"},
            "detection": {"interval_seconds": 1},
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url},
                "routes": {"info": [], "warning": ["slack", "pagerduty"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)
        ports = live_stack.Ports(llmcost_port, 0, am_port)
        live_stack.start_alertmanager(cleanup, workdir / "am", ports, credentials_file=token_file, timings=TIMINGS)
        yield SpikeStack(llmcost, alertmanager, slack, pagerduty, workdir)


def test_one_burst_through_alertmanager_is_one_slack_message_and_one_incident(stack: SpikeStack) -> None:
    arrived = live_stack.wait_until(lambda: len(stack.firing()) == 3 and bool(stack.slack_posts()), TIMEOUT)
    assert arrived, stack.diagnostics()
    time.sleep(5)  # what is awaited is that nothing more arrives: Alertmanager flushes every second
    posts = [r.payload["text"] for r in stack.slack_posts()]
    assert len(posts) == 1, stack.diagnostics()
    assert posts[0].startswith("3 series of total, project and model,provider firing (LLMCostSpike, warning)"), posts
    assert len({e["dedup_key"] for e in stack.pagerduty.events}) == 1, stack.diagnostics()
