"""Live: silences in an Alertmanager HA cluster are followed whichever replica answers.

What runs: `llmcost serve` (SQLite) with `alertmanager: {urls: [am1, am2]}` (no `alerting.alertmanager.url`,
so the gateway follows the silences of the configured replicas), reminders every 3 s, a gateway tick
every second and `resolve_after: 3s`; two real Alertmanager replicas clustered over loopback gossip, with
the shipped `alertmanager.yml` (webhook to llmcost); Slack and PagerDuty as recording servers. The rule
alert is posted to both replicas, as Prometheus's notifier does with two Alertmanagers configured.

Defect: the gateway asked only the first configured replica which alerts were silenced. With that replica
down (the case HA is for), a silence made on the second one (`amtool silence add`) was never seen: llmcost
listed the alert as plainly firing and kept reminding Slack and PagerDuty of it every `repeat_interval`,
although Alertmanager had been told to keep quiet. Now every replica is asked and their answers joined:
the alert is shown silenced by its author while the first replica is down, and once that replica is back
(it learns the silence from its peer) an expiry made there ends the mark everywhere.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support.procs import LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.rule_alerts import RuleEvaluator

pytestmark = pytest.mark.real_process

ADMIN_TOKEN = "replica-silence-admin-token-0123456789abcdef"
WEBHOOK_TOKEN = "replica-silence-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-replica-silence-test-token"
ROUTING_KEY = "R0123456789ABCDEF0123456789ABCD0"
REPEAT = 3.0
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
TIMEOUT = 45.0
RULE_LABELS = {
    "alertname": "LLMCostIngestStalled",
    "severity": "warning",
    "job": "llmcost",
    "instance": "llmcost:9800",
}


@dataclass
class Cluster:
    """llmcost, the two clustered replicas (their servers and URLs) and the Slack recorder."""

    llmcost: LlmcostProcess
    servers: list[Any]
    replicas: list[str]
    workdir: Path
    slack: SlackAPIServer

    def alert(self, job: str = "llmcost") -> dict[str, Any] | None:
        body = httpx.get(
            f"{self.llmcost.base}/v1/alerts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        ).json()
        found = [a for a in body if a["labels"].get("job") == job]
        return found[0] if found else None

    def admin(self, path: str, body: dict[str, Any]) -> int:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.post(f"{self.llmcost.base}{path}", json=body, headers=headers, timeout=10).status_code

    def silenced(self) -> dict[str, Any] | None:
        return (self.alert() or {}).get("silenced")

    def reminders(self, alert_id: int) -> int:
        # `/v1/notifications` filters by status and channel only (another parameter is a 400): filter here.
        response = httpx.get(
            f"{self.llmcost.base}/v1/notifications", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        )
        assert response.status_code == 200, response.text
        return sum(1 for n in response.json() if n["alert_id"] == alert_id and n["kind"] == "repeat")

    def amtool(self, replica: str, *argv: str) -> str:
        done = subprocess.run(
            ["amtool", f"--alertmanager.url={replica}", *argv], capture_output=True, text=True, timeout=20, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def am_silenced(self, replica: str, job: str = "llmcost") -> bool:
        found = httpx.get(f"{replica}/api/v2/alerts", timeout=5).json()
        return any(a["labels"].get("job") == job and a["status"]["silencedBy"] for a in found)

    def silence_states(self, replica: str, by: str) -> list[str]:
        found = httpx.get(f"{replica}/api/v2/silences", timeout=5).json()
        return sorted(s["status"]["state"] for s in found if s["createdBy"].startswith(by))

    def diagnostics(self) -> str:
        sources = (
            *(
                (f"Alertmanager {r} alerts", lambda r=r: httpx.get(f"{r}/api/v2/alerts", timeout=5).json())
                for r in self.replicas
            ),
            *(
                (f"Alertmanager {r} silences", lambda r=r: httpx.get(f"{r}/api/v2/silences", timeout=5).json())
                for r in self.replicas
            ),
            ("gateway alert", self.alert),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=3000, log_chars=3000)


def clustered(server: Any, gossip_port: int, peer_port: int) -> Any:
    """The shipped-config replica, gossiping with its peer on loopback (HA clustering on, as in production)."""
    server.argv = [a for a in server.argv if not a.startswith("--cluster.")] + [
        f"--cluster.listen-address=127.0.0.1:{gossip_port}",
        f"--cluster.advertise-address=127.0.0.1:{gossip_port}",
        f"--cluster.peer=127.0.0.1:{peer_port}",
        "--cluster.gossip-interval=100ms",
        "--cluster.pushpull-interval=1s",
        "--cluster.settle-timeout=2s",
    ]
    return server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("alertmanager-replica-silences")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        pagerduty = cleanup.enter_context(PagerDutyEventsServer())
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am1, am2, gossip1, gossip2 = live_stack.free_ports(5)
        replicas = [f"http://127.0.0.1:{am1}", f"http://127.0.0.1:{am2}"]
        config = {
            "auth": {"admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "alertmanager": {"urls": replicas, "timeout": "2s", "retries": 0},
            "alerting": {
                "tick_interval": "1s",
                "repeat_interval": f"{REPEAT:g}s",
                "alertmanager": {"resolve_after": "3s", "silence_on_ack": True},
            },
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url},
                "routes": {"info": [], "warning": ["slack", "pagerduty"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)
        servers = []
        for i, (port, gossip, peer) in enumerate(((am1, gossip1, gossip2), (am2, gossip2, gossip1)), start=1):
            server = live_stack.alertmanager_server(
                workdir / f"am{i}",
                live_stack.Ports(llmcost_port, 0, port),
                credentials_file=token_file,
                timings=TIMINGS,
            )
            servers.append(clustered(server, gossip, peer))
            cleanup.callback(server.stop)
        for server in servers:
            server.start()
        yield Cluster(llmcost, servers, replicas, workdir, slack)


def test_a_silence_made_on_the_second_replica_while_the_first_is_down_is_followed(cluster: Cluster) -> None:
    first, second = cluster.replicas
    rules = [RuleEvaluator(replica, RULE_LABELS).start() for replica in cluster.replicas]
    try:
        assert live_stack.wait_until(lambda: cluster.alert() is not None, TIMEOUT), cluster.diagnostics()
        alert = cluster.alert()
        assert alert is not None and alert["state"] == "firing"
        alert_id = alert["id"]

        # The first replica goes down; the operator silences the alert on the one still up.
        cluster.servers[0].stop()
        silence_id = cluster.amtool(
            second, "silence", "add", "alertname=LLMCostIngestStalled", "job=llmcost",
            "--author=alice", "--comment=ingest maintenance", "--duration=1h",
        )  # fmt: skip
        assert live_stack.wait_until(lambda: cluster.am_silenced(second), TIMEOUT), cluster.diagnostics()

        assert live_stack.wait_until(cluster.silenced, TIMEOUT), cluster.diagnostics()
        shown = cluster.silenced()
        assert shown is not None
        assert (shown["silence_id"], shown["by"], shown["comment"]) == (silence_id, "alice", "ingest maintenance")
        current = cluster.alert()
        assert current is not None and current["state"] == "firing"

        # No reminder while silenced. (Passing time is the subject.)
        before = cluster.reminders(alert_id)
        time.sleep(3 * REPEAT)
        assert cluster.reminders(alert_id) == before, cluster.diagnostics()

        # The first replica comes back and learns the silence from its peer; expired there, it ends everywhere.
        cluster.servers[0].start()
        assert live_stack.wait_until(lambda: cluster.am_silenced(first), TIMEOUT), cluster.diagnostics()
        cluster.amtool(first, "silence", "expire", silence_id)
        assert live_stack.wait_until(lambda: not cluster.silenced(), TIMEOUT), cluster.diagnostics()
        current = cluster.alert()
        assert current is not None and current["state"] == "firing"
        assert live_stack.wait_until(lambda: cluster.reminders(alert_id) > before, TIMEOUT), cluster.diagnostics()
        # Read-only towards Alertmanager: the one silence is the operator's, expired by the operator.
        assert cluster.silence_states(second, "alice") == ["expired"]
    finally:
        for rule in rules:
            rule.stop()


def test_an_acknowledgement_while_the_first_replica_is_down_silences_the_alert_on_the_second(
    cluster: Cluster,
) -> None:
    """Defect: `silence_on_ack` made its silence on the first replica only. With it down, the ack's silence
    was retried there until the notification was dead-lettered (and `LLMCostNotificationsDeadLettered`
    fired): the replica that was up never held the acknowledged alert back. Now the silence is made on the
    first replica that answers (the cluster spreads it) and expired the same way on unack.
    """
    second = cluster.replicas[1]
    labels = {**RULE_LABELS, "alertname": "LLMCostSchedulerStalled", "job": "llmcost-scheduler"}
    rules = [RuleEvaluator(replica, labels).start() for replica in cluster.replicas]
    try:
        assert live_stack.wait_until(lambda: cluster.alert("llmcost-scheduler"), TIMEOUT), cluster.diagnostics()
        alert = cluster.alert("llmcost-scheduler")
        assert alert is not None

        cluster.servers[0].stop()
        assert cluster.admin(f"/v1/alerts/{alert['id']}/ack", {"by": "bob", "comment": "on it"}) == 200
        assert live_stack.wait_until(lambda: cluster.am_silenced(second, "llmcost-scheduler"), TIMEOUT), (
            cluster.diagnostics()
        )
        assert cluster.silence_states(second, "llmcost") == ["active"]

        # Unacknowledged: the silence is expired, on the replica that is up.
        assert cluster.admin(f"/v1/alerts/{alert['id']}/unack", {"by": "bob"}) == 200
        assert live_stack.wait_until(lambda: cluster.silence_states(second, "llmcost") == ["expired"], TIMEOUT), (
            cluster.diagnostics()
        )
        assert not cluster.am_silenced(second, "llmcost-scheduler")
        current = cluster.alert("llmcost-scheduler")
        assert current is not None and current["state"] == "firing"
    finally:
        for rule in rules:
            rule.stop()
        cluster.servers[0].start()
