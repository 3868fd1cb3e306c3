"""Live: a rule alert silenced by hand in a real Alertmanager (`amtool silence add`) is silenced in llmcost too.

What runs: `llmcost serve` (SQLite) with `alerting.alertmanager.url` (no `silence_on_ack`), reminders every
3 s (`alerting.repeat_interval`), a gateway tick every second and `resolve_after: 3s`; one real Alertmanager
with the shipped `alertmanager.yml` (webhook to llmcost); Slack and PagerDuty as recording servers. The rule
alert is posted as Prometheus's notifier does (`RuleEvaluator`).

Defect: once someone silenced the alert in Alertmanager, Alertmanager sent nothing more about it, its
resolve included, so llmcost kept it open for good, listed it as plainly firing and reminded Slack and
PagerDuty of it every `repeat_interval`. Now llmcost asks Alertmanager about the open alerts it received
from it: a silenced one is shown as silenced (by whom, with the silence's comment, until when) and is not
reminded of; when the silence expires while it still fires it is firing again, reminders resume; and one
that ends while silenced is resolved once `resolve_after` has shown it gone.

Defect: `llm_alerts_active{state="firing"}` went on counting the silenced alert, so the Spikes and alerts
dashboard's "Firing alerts" (and, for a critical one, "Critical alerts firing", in red) still showed what
the team had deliberately silenced, as Alertmanager's own UI does not. It is counted as
`state="acknowledged"` (the public contract's two values: someone has taken it) while the silence holds
it, and as firing again once the silence ends.

Defect: the same with an inhibition instead of a silence. A warning llmcost had received and that the
shipped inhibit rule then muted (a critical alert about the same instance fired) stayed open as firing,
reminded of, and waited for a resolve Alertmanager would not send. Now it is held as a silenced one is.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import live_stack
from tests.support.procs import LLMCOST, LlmcostProcess, serve_with_config
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.rule_alerts import RuleEvaluator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

ADMIN_TOKEN = "hand-silence-admin-token-0123456789abcdef"
WEBHOOK_TOKEN = "hand-silence-webhook-token-0123456789abcdef"
SLACK_TOKEN = "xoxb-hand-silence-test-token"
ROUTING_KEY = "R0123456789ABCDEF0123456789ABCDF"
REPEAT = 3.0
RESOLVE_AFTER = 3.0
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
TIMEOUT = 45.0
RULE_LABELS = {
    "alertname": "LLMCostIngestStalled",
    "severity": "warning",
    "job": "llmcost",
    "instance": "llmcost:9800",
}


class Stack:
    def __init__(self, llmcost: LlmcostProcess, am: str, workdir: Path, slack: SlackAPIServer) -> None:
        self.llmcost = llmcost
        self.am = am
        self.workdir = workdir
        self.slack = slack

    def alert(self, alertname: str = RULE_LABELS["alertname"]) -> dict[str, Any] | None:
        """The newest alert of this name llmcost holds (the tests of this module share one llmcost)."""
        found = [a for a in self.alerts() if a["labels"].get("job") == "llmcost" and a["alertname"] == alertname]
        return found[0] if found else None

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert llmcost holds, newest first."""
        return list(
            httpx.get(
                f"{self.llmcost.base}/v1/alerts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
            ).json()
        )

    def reminders(self, alert_id: int, kind: str = "repeat") -> int:
        """Repeat notifications (or those of another `kind`) enqueued for the alert, sent or not."""
        rows = httpx.get(
            f"{self.llmcost.base}/v1/notifications",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=5,
        ).json()
        return sum(1 for n in rows if n["alert_id"] == alert_id and n["kind"] == kind)

    def amtool(self, *argv: str) -> str:
        done = subprocess.run(
            ["amtool", f"--alertmanager.url={self.am}", *argv], capture_output=True, text=True, timeout=20, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def am_silenced(self) -> bool:
        found = httpx.get(f"{self.am}/api/v2/alerts", timeout=5).json()
        return any(a["labels"] == RULE_LABELS and a["status"]["silencedBy"] for a in found)

    def active_states(self, alertname: str = RULE_LABELS["alertname"]) -> dict[str, float]:
        """`llm_alerts_active` for the rule alert, by `state`, as Prometheus would scrape it."""
        text = httpx.get(f"{self.llmcost.base}/metrics", timeout=10).text
        return {
            sample.labels["state"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "llm_alerts_active"
            for sample in family.samples
            if sample.labels["alertname"] == alertname
        }

    def cli_list(self) -> str:
        db = f"sqlite:///{self.workdir / 'llmcost.db'}"
        done = subprocess.run(
            [*LLMCOST, "alerts", "list", "--db", db, "--config", str(self.workdir / "llmcost.yml")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def diagnostics(self) -> str:
        sources = (
            ("Alertmanager alerts", lambda: httpx.get(f"{self.am}/api/v2/alerts", timeout=5).json()),
            ("Alertmanager silences", lambda: httpx.get(f"{self.am}/api/v2/silences", timeout=5).json()),
            ("gateway alerts", self.alerts),
        )
        return live_stack.diagnostics(sources, self.workdir, answer_chars=4000, log_chars=3000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("alertmanager-hand-silence")
    with ExitStack() as cleanup:
        slack = cleanup.enter_context(SlackAPIServer(token=SLACK_TOKEN))
        pagerduty = cleanup.enter_context(PagerDutyEventsServer())
        token_file = live_stack.webhook_token_file(workdir, WEBHOOK_TOKEN)
        llmcost_port, am_port = live_stack.free_ports(2)
        am = f"http://127.0.0.1:{am_port}"
        config = {
            "auth": {"admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
            "alerting": {
                "tick_interval": "1s",
                "repeat_interval": f"{REPEAT:g}s",
                "alertmanager": {"url": am, "resolve_after": f"{RESOLVE_AFTER:g}s"},
            },
            "notifications": {
                "slack": {"token": SLACK_TOKEN, "channel": "#llm-cost", "api_url": slack.api_url},
                "pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url},
                "routes": {"info": [], "warning": ["slack", "pagerduty"], "critical": ["slack", "pagerduty"]},
            },
        }
        llmcost = serve_with_config(workdir, config, llmcost_port, cleanup)
        ports = live_stack.Ports(llmcost_port, 0, am_port)
        live_stack.start_alertmanager(cleanup, workdir / "am", ports, credentials_file=token_file, timings=TIMINGS)
        yield Stack(llmcost, am, workdir, slack)


def test_a_rule_alert_silenced_by_hand_in_alertmanager_is_silenced_in_llmcost_until_the_silence_ends(
    stack: Stack,
) -> None:
    rule = RuleEvaluator(stack.am, RULE_LABELS).start()
    try:
        assert live_stack.wait_until(lambda: stack.alert() is not None, TIMEOUT), stack.diagnostics()
        alert = stack.alert()
        assert alert is not None
        alert_id = alert["id"]
        # Unsilenced, the alert is reminded of every repeat_interval.
        assert live_stack.wait_until(lambda: stack.reminders(alert_id) >= 1, TIMEOUT), stack.diagnostics()

        silence_id = stack.amtool(
            "silence", "add", "alertname=LLMCostIngestStalled", "job=llmcost",
            "--author=alice", "--comment=ingest maintenance", "--duration=1h",
        )  # fmt: skip
        assert live_stack.wait_until(stack.am_silenced, TIMEOUT), stack.diagnostics()

        def silenced() -> dict[str, Any] | None:
            current = stack.alert() or {}
            return current.get("silenced")

        assert live_stack.wait_until(silenced, TIMEOUT), stack.diagnostics()
        shown = silenced()
        assert shown is not None
        assert (shown["silence_id"], shown["by"], shown["comment"]) == (silence_id, "alice", "ingest maintenance")
        current = stack.alert()
        assert current is not None and current["state"] == "firing"  # still firing in Alertmanager too
        listed = stack.cli_list()
        assert "silenced" in listed and "alice" in listed and "ingest maintenance" in listed, listed
        # Counted as taken, not firing: the dashboards' firing counts leave it out.
        assert stack.active_states() == {"acknowledged": 1.0}, stack.diagnostics()

        # No reminder while silenced. (Passing time is the subject.)
        before = stack.reminders(alert_id)
        time.sleep(3 * REPEAT)
        assert stack.reminders(alert_id) == before, stack.diagnostics()

        # The silence ends while the alert still fires: it is firing again in llmcost, and reminded of.
        stack.amtool("silence", "expire", silence_id)
        assert live_stack.wait_until(lambda: not silenced(), TIMEOUT), stack.diagnostics()
        assert live_stack.wait_until(lambda: stack.reminders(alert_id) > before, TIMEOUT), stack.diagnostics()
        current = stack.alert()
        assert current is not None and current["state"] == "firing"
        assert stack.active_states() == {"firing": 1.0}, stack.diagnostics()

        # Silenced again, then the rule stops firing: Alertmanager tells nobody; llmcost resolves it once.
        stack.amtool(
            "silence", "add", "alertname=LLMCostIngestStalled", "job=llmcost",
            "--author=bob", "--comment=again", "--duration=1h",
        )  # fmt: skip
        assert live_stack.wait_until(silenced, TIMEOUT), stack.diagnostics()
        rule.resolve()
        rule.stop()

        def resolved() -> bool:
            current = stack.alert()
            return current is not None and current["state"] == "resolved"

        assert live_stack.wait_until(resolved, TIMEOUT), stack.diagnostics()
        # Read-only towards Alertmanager: the silences people made are theirs, left as they were.
        silences = httpx.get(f"{stack.am}/api/v2/silences", timeout=5).json()
        assert sorted(s["status"]["state"] for s in silences) == ["active", "expired"], silences
    finally:
        rule.stop()


# Another instance than RULE_LABELS': the shipped inhibit rule mutes an instance's alerts while it is
# down (`equal: [job, instance]`), and the tests of this module share one Alertmanager.
INHIBITED_INSTANCE = {"job": "llmcost", "instance": "llmcost-b:9800"}
EXPORTER_DOWN = {"alertname": "LLMCostExporterDown", "severity": "critical", **INHIBITED_INSTANCE}
WARNINGS = {
    name: {"alertname": name, "severity": "warning", **INHIBITED_INSTANCE}
    for name in ("LLMCostSchedulerFailing", "LLMCostNotificationsFailing")
}


def test_a_rule_alert_inhibited_in_alertmanager_is_held_in_llmcost_until_the_inhibition_ends(stack: Stack) -> None:
    """Defect: a warning llmcost had received, then muted by the shipped inhibit rule when a critical
    alert about the same instance fired, was kept open in llmcost as plainly firing and reminded of every
    `repeat_interval`: Alertmanager sends nothing about an inhibited alert, its resolve included. Now it
    is held as a silenced one is: shown held by the critical alert, counted as taken, not reminded of;
    live again when the inhibition ends while it fires; resolved once when it ends while held.
    """
    first, second = WARNINGS
    warnings = {name: RuleEvaluator(stack.am, labels).start() for name, labels in WARNINGS.items()}
    critical = RuleEvaluator(stack.am, EXPORTER_DOWN)
    try:
        ids = {
            name: wait_until(lambda name=name: stack.alert(name), timeout=TIMEOUT, what=stack.diagnostics)["id"]
            for name in WARNINGS
        }

        critical.start()  # the instance is down: Alertmanager inhibits both warnings about it

        def held(name: str) -> dict[str, Any] | None:
            current = stack.alert(name) or {}
            return current.get("silenced") if current.get("state") == "firing" else None

        for name in WARNINGS:
            shown = wait_until(lambda name=name: held(name), timeout=TIMEOUT, what=stack.diagnostics)
            assert shown["by"] == "LLMCostExporterDown", shown
            assert shown["silence_id"].startswith("inhibited:"), shown
        down = stack.alert("LLMCostExporterDown")
        assert down is not None and down["state"] == "firing" and down["silenced"] is None
        listed = stack.cli_list()
        assert "inhibited" in listed and "by LLMCostExporterDown" in listed, listed
        assert stack.active_states(first) == {"acknowledged": 1.0}, stack.diagnostics()

        before = {name: stack.reminders(ids[name]) for name in WARNINGS}
        held_since = time.monotonic()

        # The first ends while inhibited: Alertmanager tells nobody; llmcost resolves it, once per channel.
        warnings[first].resolve()
        warnings[first].stop()
        wait_until(
            lambda: (stack.alert(first) or {}).get("state") == "resolved", timeout=TIMEOUT, what=stack.diagnostics
        )

        # No reminder while inhibited. (Passing time is the subject: the wait above, and what is left of
        # one and a half repeat intervals.)
        time.sleep(max(0.0, held_since + 1.5 * REPEAT - time.monotonic()))
        assert stack.reminders(ids[second]) == before[second], stack.diagnostics()
        assert stack.reminders(ids[first]) == before[first], stack.diagnostics()

        # The instance is back: the second, still firing, is live again in llmcost and reminded of.
        critical.resolve()
        critical.stop()
        wait_until(lambda: not held(second), timeout=TIMEOUT, what=stack.diagnostics)
        wait_until(lambda: stack.reminders(ids[second]) > before[second], timeout=TIMEOUT, what=stack.diagnostics)
        assert stack.active_states(second) == {"firing": 1.0}, stack.diagnostics()
        assert stack.reminders(ids[first], "resolved") == 2, stack.diagnostics()  # Slack and PagerDuty, once
    finally:
        critical.stop()
        for rule in warnings.values():
            rule.resolve()
            rule.stop()
