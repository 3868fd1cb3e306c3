"""Shared pieces of the gateway tests (no tests here): receivers, a harness, payload builders, timing.

`measure_fire_to_slack` is the latency probe the benchmark reuses: time from `fire` to the recorded
Slack request, per alert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import uvicorn
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from alerting.gateway.config import settings_from_config
from alerting.gateway.http import gateway_routes
from alerting.gateway.service import GatewayService
from alerting.signatures import sign_pagerduty, sign_slack
from alerting.store import open_store
from exporter.config import Config
from exporter.http.app import build_app
from llmcost.services import open_services
from tests.support.clock import FakeClock
from tests.support.helpers import make_config, total
from tests.support.pg import PostgresCluster, free_port
from tests.support.recording_servers import PagerDutyEventsServer, RecordedRequest, Response, SlackAPIServer, SMTPServer
from tests.support.waiting import wait_until

ADMIN = "admin-token-0123456789ab"
WEBHOOK = "webhook-token-0123456789"
SLACK_TOKEN = "xoxb-111-222-gatewaytest"
SIGNING_SECRET = "slack-signing-secret-0123456789"
PD_SECRET = "pd-webhook-secret-0123456789"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as PagerDuty requires
BUDGET_LABELS = {"budget": "team-a-monthly", "scope": "project", "key": "team-a"}


class TimedSlackServer(SlackAPIServer):
    """The Slack stand-in, also noting when each request arrived (perf_counter)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[tuple[float, RecordedRequest]] = []

    def default_response(self, request: RecordedRequest) -> Response:
        self.arrivals.append((time.perf_counter(), request))
        return super().default_response(request)


@dataclass
class Receivers:
    """Loopback stand-ins for Slack, PagerDuty and an SMTP relay."""

    slack: TimedSlackServer
    pagerduty: PagerDutyEventsServer
    smtp: SMTPServer

    def counts(self) -> dict[str, int]:
        """Requests received per channel (Slack: every Web API call)."""
        return {
            "slack": len(self.slack.requests),
            "email": len(self.smtp.messages),
            "pagerduty": len(self.pagerduty.events),
        }


@contextmanager
def receivers() -> Iterator[Receivers]:
    """Start the three receivers; stop them afterwards."""
    with TimedSlackServer(token=SLACK_TOKEN) as slack, PagerDutyEventsServer() as pagerduty, SMTPServer() as smtp:
        yield Receivers(slack, pagerduty, smtp)


def gateway_config(
    db_url: str,
    rx: Receivers,
    *,
    channels: Sequence[str] = ("slack", "email", "pagerduty"),
    routes: dict[str, list[str]] | None = None,
    alerting: dict[str, Any] | None = None,
    auth: bool = True,
    channel_extra: dict[str, dict[str, Any]] | None = None,
    **sections: Any,
) -> Config:
    """A validated config pointing every channel at the receivers (`channel_extra`: more keys per channel;
    `sections`: more top-level sections, such as `budgets`)."""
    notifications: dict[str, Any] = {}
    if "slack" in channels:
        notifications["slack"] = {
            "token": SLACK_TOKEN,
            "channel": "#llm-cost",
            "api_url": rx.slack.api_url,
            "signing_secret": SIGNING_SECRET,
            "timeout_seconds": 5,
        }
    if "email" in channels:
        notifications["email"] = {
            "smtp_host": rx.smtp.host,
            "smtp_port": rx.smtp.port,
            "starttls": False,
            "from": "llmcost@example.com",
            "to": ["oncall@example.com"],
            "timeout_seconds": 5,
        }
    if "pagerduty" in channels:
        notifications["pagerduty"] = {
            "routing_key": ROUTING_KEY,
            "events_url": rx.pagerduty.events_url,
            "webhook_secret": PD_SECRET,
            "timeout_seconds": 5,
        }
    for channel, extra in (channel_extra or {}).items():
        notifications[channel].update(extra)
    if routes is not None:
        notifications["routes"] = routes
    raw: dict[str, Any] = {"notifications": notifications, **sections}
    raw["alerting"] = {"tick_interval": 0, "outbox": {"poll_interval": "100ms"}, **(alerting or {})}
    if auth:
        raw["auth"] = {"admin_tokens": [ADMIN], "webhook_tokens": [WEBHOOK]}
    return make_config(db_url, **raw)


class Harness:
    """One gateway process: services, `GatewayService`, its ASGI app and a test client."""

    def __init__(
        self,
        db_url: str,
        rx: Receivers,
        *,
        clock: Callable[[], float] | None = None,
        start_workers: bool = False,
        **config: Any,
    ) -> None:
        self.rx = rx
        self.clock = clock or FakeClock()
        self.config = gateway_config(db_url, rx, **config)
        self.services = open_services(self.config, clock=self.clock, start_writer=False)
        self.gateway = GatewayService(
            self.services.store, settings_from_config(self.config), clock=self.clock, start_workers=start_workers
        )
        for collector in self.gateway.collectors():
            self.services.registry.register(collector)
        self.app: Starlette = build_app(self.services, gateway_routes(self.gateway, self.config.auth))
        self.client = TestClient(self.app)

    def close(self) -> None:
        self.client.close()
        self.gateway.close()
        self.services.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------------------

    def post_alertmanager(self, payload: Any, **headers: str) -> Any:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return self.client.post(
            "/v1/alertmanager",
            content=body,
            headers={"Authorization": f"Bearer {WEBHOOK}", "Content-Type": "application/json", **headers},
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN}", **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def slack_click(self, body: bytes, *, timestamp: float | None = None, secret: str = SIGNING_SECRET) -> Any:
        ts = str(int(self.clock() if timestamp is None else timestamp))
        return self.client.post(
            "/v1/slack/interactions",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign_slack(secret, ts, body),
            },
        )

    def pagerduty_webhook(self, payload: Any, *, secrets: Sequence[str] = (PD_SECRET,)) -> Any:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return self.client.post(
            "/v1/pagerduty/webhook",
            content=body,
            headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(list(secrets), body)},
        )

    def metric(self, name: str, **labels: str) -> float:
        return total(generate_latest(self.services.registry).decode(), name, **labels)

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        response = self.admin("GET", "/v1/alerts", params=params)
        assert response.status_code == 200, response.text
        return list(response.json())


# --- databases ------------------------------------------------------------------------------------

_SHARED: dict[int, str] = {}


def gateway_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Like the `db_url` fixture (SQLite or PostgreSQL per `request.param`), but on PostgreSQL every test
    gets the same migrated database, emptied first (TRUNCATE … RESTART IDENTITY): creating one per test
    costs a migration each and leaves the session's cluster slow to delete."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmcost.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = _SHARED.get(id(cluster))
    if url is None:
        url = _SHARED[id(cluster)] = cluster.create_database()
        open_store(url).close()  # migrate
        return url
    with psycopg.connect(cluster.dsn(url.rsplit("/", 1)[1]), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")  # names from the catalogue
    return url


# --- payloads ---------------------------------------------------------------------------------------


def am_alert(
    alertname: str = "LLMCostSpike",
    *,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    starts_at: str = "2026-11-23T10:00:00.123456789Z",
    severity: str = "warning",
) -> dict[str, Any]:
    """One alert of an Alertmanager webhook payload."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": severity, "project": "search", **(labels or {})},
        "annotations": {"summary": f"{alertname} for search", **(annotations or {})},
        "startsAt": starts_at,
        "endsAt": "2026-11-23T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "abc123",
    }


def am_payload(
    alerts: list[dict[str, Any]], *, truncated: int = 0, external_url: str = "http://am-0:9093"
) -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4)."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="LLMCostSpike"}',
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "llmcost",
        "groupLabels": {"alertname": "LLMCostSpike"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": alerts,
    }


def slack_action_body(alert_id: int | str, *, action_id: str = "llmcost_ack", user: str = "alice") -> bytes:
    """A form-encoded Slack `block_actions` interaction pressing one button."""
    from urllib.parse import urlencode

    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": user, "name": user, "team_id": "T1"},
        "trigger_id": "123.456.abc",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C123"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "llmcost_actions",
                "value": str(alert_id),
                "type": "button",
                "action_ts": "1700000001.000000",
            }
        ],
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def pd_time(epoch: float) -> str:
    """A time as PagerDuty writes it in webhooks: `2026-11-23T10:05:00.000Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def pd_event(
    event_type: str,
    fingerprint: str,
    *,
    event_id: str = "01DEVENT0000000000000000001",
    agent: str = "Bob Oncall",
    created_at: str | None = None,
    occurred_at: float | None = None,
) -> dict[str, Any]:
    """A PagerDuty webhook v3 body about the incident of our dedup_key `llmcost-<fingerprint>`.

    `occurred_at`: when the event happened (default: now, as a live delivery; the harness clock starts at now).
    """
    data: dict[str, Any] = {
        "id": "PGR0VU2",
        "type": "incident",
        "number": 2,
        "status": event_type.split(".")[-1],
        "incident_key": f"llmcost-{fingerprint}",
        "title": "[CRITICAL] LLMBudgetCritical",
    }
    if created_at is not None:
        data["created_at"] = created_at
    return {
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": pd_time(time.time() if occurred_at is None else occurred_at),
            "agent": {"id": "PLH1HKV", "summary": agent, "type": "user_reference"},
            "client": {"name": "PagerDuty"},
            "data": data,
        }
    }


# --- time -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0–1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_fire_to_slack(
    gateway: GatewayService,
    slack: TimedSlackServer,
    count: int,
    *,
    interval: float = 0.0,
    alertname: str = "LLMLatencyProbe",
) -> list[float]:
    """Fire `count` distinct alerts, one every `interval` seconds (0: a burst); seconds from each `fire`
    call to its recorded Slack request.

    Needs a gateway with workers running; matches requests to alerts by the Acknowledge button's value.
    """
    started: dict[int, float] = {}
    first = time.perf_counter()
    for i in range(count):
        if interval:
            time.sleep(max(0.0, first + i * interval - time.perf_counter()))  # pacing the alerts, not a wait
        t0 = time.perf_counter()
        change = gateway.fire(alertname, {"probe": str(i)}, severity="warning")
        assert change.alert is not None and change.alert.id is not None
        started[change.alert.id] = t0

    def arrived() -> dict[int, float]:
        seen: dict[int, float] = {}
        for at, request in list(slack.arrivals):
            for block in request.payload.get("blocks", []) if isinstance(request.payload.get("blocks"), list) else []:
                for element in block.get("elements", []) if block.get("type") == "actions" else []:
                    if element.get("action_id") == "llmcost_ack" and str(element.get("value", "")).isdigit():
                        seen.setdefault(int(element["value"]), at)
        return seen

    wait_until(lambda: set(started) <= set(arrived()), timeout=max(10.0, count * 0.05), what=f"{count} alerts at Slack")
    times = arrived()
    return [times[alert_id] - t0 for alert_id, t0 in started.items()]


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test")
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def slack_text(request: Any) -> str:
    """Everything a person reads in one Slack call: the fallback text and every block's text."""
    body = request.json
    parts = [body.get("text", "")]
    for block in body.get("blocks", []):
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict) and element.get("type") in ("mrkdwn", "plain_text"):
                parts.append(element.get("text", ""))
    return "\n".join(parts)
