"""Writes on a PostgreSQL that stops answering without closing its connections (paused, partitioned).

An SRE's incident: PostgreSQL hung for minutes. Ingest, reads and `/metrics` answered promptly
(test_store_unresponsive.py), but an acknowledgement, a budget `PUT`, `DELETE` or reset, a Slack click
and a PagerDuty webhook hung for as long as the pause lasted: Slack, which waits 3 s, showed the on-call
person an error and retried; PagerDuty retried too. They are answered `503` with Retry-After within a few
seconds now, a bad signature still `401`, and once the database answers, each write retried (the click
again, the sender's redelivery) is applied exactly once, even though the first attempt, already sent to
the database when it paused, lands then too.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from alerting.signatures import sign_pagerduty, sign_slack
from tests.support.gateway_harness import am_alert, am_payload, pd_event, slack_action_body
from tests.support.pg import PostgresCluster
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.recording_servers import PagerDutyEventsServer, SlackAPIServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

SIGNING_SECRET = "slack-signing-secret-for-the-paused-store"
PD_SECRET = "pd-webhook-secret-for-the-paused-store"
PROMPT = 8.0
"""Seconds within which a write must be answered while the database is silent (3 s wait + 2 s probe)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    started = PostgresCluster().start()
    try:
        yield started
    finally:
        started.destroy()


def slack_click(base: str, body: bytes, secret: str = SIGNING_SECRET) -> httpx.Response:
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign_slack(secret, ts, body),
    }
    return httpx.post(f"{base}/v1/slack/interactions", content=body, headers=headers, timeout=30)


def pagerduty_webhook(base: str, event: dict[str, Any], secret: str = PD_SECRET) -> httpx.Response:
    body = orjson.dumps(event)
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(secret, body)}
    return httpx.post(f"{base}/v1/pagerduty/webhook", content=body, headers=headers, timeout=30)


def budget(name: str, limit: float) -> dict[str, Any]:
    return {"scope": "project", "key": name, "period": "monthly", "limit": limit, "unit": "usd", "mode": "soft"}


def budget_resets(db_url: str, name: str) -> list[dict[str, Any]]:
    """What `llmcost budgets show NAME` lists as the budget's resets."""
    shown = subprocess.run(
        [*LLMCOST, "budgets", "show", name, "--db", db_url], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(shown.stdout)["resets"])


def test_writes_answer_503_promptly_while_postgresql_hangs_and_their_retries_apply_once(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    with SlackAPIServer() as slack, PagerDutyEventsServer() as pagerduty:
        notifications = {
            "slack": {
                "token": "xoxb-test-token",
                "channel": "#llm-cost",
                "api_url": slack.api_url,
                "signing_secret": SIGNING_SECRET,
            },
            "pagerduty": {"routing_key": "R" * 32, "events_url": pagerduty.events_url, "webhook_secret": PD_SECRET},
            "routes": {"critical": ["slack", "pagerduty"]},
        }
        config = tmp_path / "llmcost.yml"
        config.write_text(
            yaml.safe_dump({"alerting": {"outbox": {"poll_interval": "100ms"}}, "notifications": notifications})
        )
        db_url = cluster.create_database()
        server = LlmcostProcess(db_url, config=config).start(tmp_path)
        base = server.base
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                payload = am_payload(
                    [am_alert(name, severity="critical") for name in ("ByApi", "BySlack", "ByPagerDuty")]
                )
                assert client.post("/v1/alertmanager", json=payload).status_code == 200
                alerts = {a["alertname"]: a for a in client.get("/v1/alerts").json()}
                by_api, by_slack, by_pd = (alerts[name] for name in ("ByApi", "BySlack", "ByPagerDuty"))
                for name in ("kept", "gone", "fresh"):
                    assert client.put(f"/v1/budgets/{name}", json=budget(name, 100)).status_code == 200

                writes: dict[str, Callable[[], httpx.Response]] = {
                    "ack": lambda: client.post(f"/v1/alerts/{by_api['id']}/ack", json={"by": "sre", "comment": "ok"}),
                    "put": lambda: client.put("/v1/budgets/kept", json=budget("kept", 250)),
                    "delete": lambda: client.delete("/v1/budgets/gone"),
                    "reset": lambda: client.post("/v1/budgets/fresh/reset", json={"by": "sre", "reason": "new quota"}),
                    "slack": lambda: slack_click(base, slack_action_body(by_slack["id"], user="carol")),
                    "pagerduty": lambda: pagerduty_webhook(
                        base, pd_event("incident.acknowledged", by_pd["fingerprint"], agent="Bob Oncall")
                    ),
                }
                forged = {
                    "slack": lambda: slack_click(base, slack_action_body(by_slack["id"]), secret="not-the-secret"),
                    "pagerduty": lambda: pagerduty_webhook(
                        base, pd_event("incident.resolved", by_pd["fingerprint"]), secret="not-the-secret"
                    ),
                }

                def timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
                    started = time.monotonic()
                    response = send()
                    return response, time.monotonic() - started

                cluster.pause()
                try:
                    # All at once, as during an incident: several hang on pooled connections, none for long.
                    with ThreadPoolExecutor(len(writes) + len(forged)) as pool:
                        pending = {name: pool.submit(timed, send) for name, send in writes.items()}
                        refused = {name: pool.submit(timed, send) for name, send in forged.items()}
                        answered = {name: future.result() for name, future in pending.items()}
                        for name, future in refused.items():
                            response, waited = future.result()
                            assert response.status_code == 401, f"forged {name}: {response.text}"
                            assert waited < 1, f"forged {name} answered after {waited:.1f} s"
                    for name, (response, waited) in answered.items():
                        assert response.status_code == 503, f"{name}: {response.status_code} {response.text}"
                        assert response.headers.get("retry-after") == "5", name
                        assert waited < PROMPT, f"{name} answered after {waited:.1f} s"
                    # Clicked again while it still does not answer: known silent now, refused at once (within
                    # Slack's 3 s), a forged signature still 401 first.
                    for name in ("slack", "ack"):
                        response, waited = timed(writes[name])
                        assert response.status_code == 503, f"{name}: {response.text}"
                        assert waited < 1, f"{name} answered after {waited:.1f} s the second time"
                    assert forged["slack"]().status_code == 401
                finally:
                    cluster.resume()

                # Clicked again, redelivered: each retried until it is answered, as its sender does.
                retried: dict[str, httpx.Response] = {}

                def applied() -> bool:
                    for name, send in writes.items():
                        if name not in retried:
                            response = send()
                            if response.status_code != 503:
                                retried[name] = response
                    return len(retried) == len(writes)

                wait_until(applied, timeout=30, what="every write answered once PostgreSQL answers")
                # 404 when the first DELETE, sent on a pooled connection, landed as the database came back
                # (the budget is gone); 204 when it had waited for a new connection, failed and changed nothing.
                assert retried.pop("delete").status_code in (204, 404)
                assert {name: r.status_code for name, r in retried.items()} == {
                    "ack": 200,
                    "put": 200,
                    "reset": 200,
                    "slack": 200,
                    "pagerduty": 200,
                }

                def acknowledgements(alert_id: int) -> list[dict[str, Any]]:
                    history = client.get(f"/v1/alerts/{alert_id}").json()["history"]
                    return [event for event in history if event["to_state"] == "acknowledged"]

                for alert, by in ((by_api, "sre"), (by_slack, "carol"), (by_pd, "Bob Oncall")):
                    acks = acknowledgements(alert["id"])
                    assert [event["by"] for event in acks] == [by], acks
                assert client.get("/v1/budgets/kept").json()["limit"] == 250
                assert client.get("/v1/budgets/gone").status_code == 404
                assert [(r["reset_by"], r["reason"]) for r in budget_resets(db_url, "fresh")] == [("sre", "new quota")]

                # One acknowledge event per alert llmcost acknowledged, none for the one acknowledged in
                # PagerDuty itself.
                def pd_acks() -> dict[str, int]:
                    keys = [e["dedup_key"] for e in pagerduty.events if e.get("event_action") == "acknowledge"]
                    return {key: keys.count(key) for key in keys}

                expected = {f"llmcost-{by_api['fingerprint']}": 1, f"llmcost-{by_slack['fingerprint']}": 1}
                wait_until(lambda: pd_acks() == expected, timeout=15, what=f"PagerDuty acknowledged {expected}")
        finally:
            server.stop()
