"""The store the first release wrote, upgraded by today's `llmcost serve` with the release's config unchanged.

An operator of the first release (15281b5) upgrades as docs/deployment.md says: the reading commands
refuse the old store and change nothing; `serve` migrates it and then loses and doubles nothing. The
counters `/metrics` showed go on from the same values (a reset would read as a spike to `rate()`), calls
sent again are duplicates, every alert keeps its id and its acknowledgement, and the alerts people were
told about stay in their Slack messages and PagerDuty incidents: nothing is posted or paged again, only
the Slack messages still waiting in the release's outbox are sent, once each. On SQLite and PostgreSQL.
The store is tests/data/first-release-store/ (how it was made is in its README).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from alerting.store import ALERTING_SCHEMA
from exporter import __version__
from exporter.store.engine import create_store_engine
from tests.support.first_release import (
    FIRST_RELEASE,
    first_release_config,
    first_release_rows,
    load_first_release_store,
)
from tests.support.helpers import samples
from tests.support.legacy_schema import version_rows
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

ADMIN = {"Authorization": "Bearer admin-token-0123456789"}
INGEST = {"Authorization": "Bearer ingest-token-0123456789"}
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-test",
    "SLACK_SIGNING": "signsecret",
    "PD_ROUTING_KEY": "R0123456789abcdef0123456789abcde",
    "PD_WEBHOOK_SECRET": "pdsecret",
}
COUNTERS = (
    "llm_requests_total",
    "llm_tokens_total",
    "llm_cost_usd_total",
    "llm_unpriced_requests_total",
    "llm_ingest_events_total",
)


def build_versions(metrics: str) -> set[str]:
    return {dict(labels)["version"] for (name, labels) in samples(metrics) if name == "llm_exporter_build_info"}


def schema_versions(url: str) -> list[str]:
    engine = create_store_engine(url)
    try:
        return version_rows(engine)
    finally:
        engine.dispose()


def counters(metrics: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: value for key, value in samples(metrics).items() if key[0] in COUNTERS}


def test_the_first_release_store_upgrades_with_nothing_lost_doubled_or_paged_again(db_url: str, tmp_path: Path) -> None:
    load_first_release_store(db_url)
    rows = first_release_rows()
    env = {**os.environ, **SECRETS, "LLMCOST_DB_URL": db_url}

    report = subprocess.run([*LLMCOST, "report", "--db", db_url], capture_output=True, text=True, env=env, timeout=60)
    assert report.returncode == 3, report.stderr
    assert "is at schema revision 0004_scheduler" in report.stderr
    assert "start `llmcost serve` of this version once to upgrade it" in report.stderr
    assert schema_versions(db_url) == ["0004_scheduler"]

    with SlackAPIServer() as slack, PagerDutyEventsServer() as pagerduty:
        config = first_release_config(tmp_path, slack.api_url, pagerduty.events_url)
        server = LlmcostProcess(db_url, config=config, env=env).start(tmp_path)
        try:
            assert schema_versions(db_url) == [ALERTING_SCHEMA.head]

            def outbox_settled() -> bool:
                listed = httpx.get(f"{server.base}/v1/notifications", headers=ADMIN).json()
                return not [n for n in listed if n["status"] in ("pending", "retrying")]

            wait_until(outbox_settled, timeout=60, what="the release's pending notifications sent")

            released = (FIRST_RELEASE / "metrics.txt").read_text(encoding="utf-8")
            upgraded = httpx.get(f"{server.base}/metrics").text
            assert counters(upgraded) == counters(released)
            # `count by (version) (llm_exporter_build_info)` is how an operator finds a process of the old
            # release still running beside the new one (docs/deployment.md, "Upgrading").
            assert build_versions(upgraded) == {__version__} != build_versions(released)

            call = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 10}
            calls = [{**call, "request_id": e["request_id"], "project": "search"} for e in rows["usage_events"][:50]]
            again = httpx.post(f"{server.base}/v1/usage", json=calls, headers=INGEST).json()
            assert (again["accepted"], again["duplicates"]) == (0, 50)

            alerts = {a["id"]: a for a in httpx.get(f"{server.base}/v1/alerts", headers=ADMIN).json()}
            assert set(alerts) == {row["id"] for row in rows["alerts"]}
            acked = alerts[3]
            assert acked["state"] in ("acknowledged", "resolved")
            assert acked["acknowledged_by"] == "alice"

            references = [json.loads(r["reference"]) for r in rows["alert_channels"] if r["reference"]]
            threads = {r["ts"] for r in references if "ts" in r}
            incidents = {r["dedup_key"] for r in references if "dedup_key" in r}
            waiting = {r["alert_id"] for r in rows["notification_outbox"] if r["status"] != "sent"}
            posted = slack.calls("chat.postMessage")
            # New messages are the waiting ones only; replies (the daily period's resolves, on a later day) go
            # to the release's threads, checked below.
            opened = [p.payload.get("text") for p in posted if not p.payload.get("thread_ts")]
            assert len(opened) == len(waiting), [(p.payload.get("text"), p.payload.get("thread_ts")) for p in posted]
            threads |= {p.payload.get("thread_ts") or "" for p in posted} | {m["ts"] for m in slack.posted}
            for update in slack.calls("chat.update"):
                assert update.payload["ts"] in threads
            for reply in slack.replies:
                assert reply["thread_ts"] in threads
            assert {e["dedup_key"] for e in pagerduty.events} <= incidents
            # The release notified its alerts at 20:33 UTC on 2026-12-07 and reminds every 4 h, so on a later day
            # their reminders are due at the upgrade; but their daily period ended at midnight, and the first
            # budgets pass resolves them. Nothing is reminded of before a pass has seen it still firing: the
            # first tick sent a "still firing" to Slack, a mail and a PagerDuty trigger for each, seconds
            # before the pass resolved them all.
            wait_until(
                lambda: not httpx.get(f"{server.base}/v1/alerts?state=firing", headers=ADMIN).json(),
                timeout=60,
                what="the first budgets pass resolving the ended daily period's alerts",
            )
            assert [r["text"] for r in slack.replies if "Still firing" in r["text"]] == []
            assert [e for e in pagerduty.events if e["event_action"] == "trigger"] == []
        finally:
            server.stop()
