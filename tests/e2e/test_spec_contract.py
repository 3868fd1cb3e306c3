"""The names the public contract fixes, checked on a running `llmcost serve` as an outside checker sees them.

Behaviour is tested where it lives; this file pins only the names users, dashboards and alert rules rely on:
every metric family with its type and exact label set, the HTTP endpoints with their answer fields, and the
error shape `{"error", "detail"}`. The tables below are the contract's, written out here on purpose (not
imported from `exporter.metric_names`): renaming a metric in the catalogue must fail this test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, running_llmcost
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until
from tests.support.wall_clock import stamp_in_period

pytestmark = pytest.mark.real_process

WEBHOOK_TOKEN = "webhook-token-0123456789abcdef"
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}

USAGE = ("provider", "model", "project", "service")
BUDGET = ("budget", "scope", "key", "period", "unit")
METRICS = {
    "llm_requests_total": ("counter", (*USAGE, "status")),
    "llm_tokens_total": ("counter", (*USAGE, "token_type")),
    "llm_reasoning_tokens_total": ("counter", USAGE),
    "llm_cost_usd_total": ("counter", USAGE),
    "llm_unpriced_requests_total": ("counter", ("provider", "model")),
    "llm_budget_limit": ("gauge", BUDGET),
    "llm_budget_spent": ("gauge", BUDGET),
    "llm_budget_projected": ("gauge", BUDGET),
    "llm_budget_usage_ratio": ("gauge", BUDGET),
    "llm_budget_period_end_timestamp_seconds": ("gauge", BUDGET),
    "llm_alerts_active": ("gauge", ("alertname", "severity", "state")),
    "llm_notifications_total": ("counter", ("channel", "outcome")),
    "llm_ingest_events_total": ("counter", ("outcome",)),
    "llm_exporter_build_info": ("gauge", ("version",)),
}
LABEL_VALUES = {
    ("llm_tokens_total", "token_type"): {"input", "cache_read", "cache_write", "output"},
    ("llm_budget_limit", "unit"): {"usd", "tokens", "requests"},
    ("llm_alerts_active", "state"): {"firing", "acknowledged"},
    ("llm_notifications_total", "channel"): {"slack", "email", "pagerduty"},
    ("llm_notifications_total", "outcome"): {"sent", "failed", "retried"},
    ("llm_ingest_events_total", "outcome"): {"accepted", "duplicate", "rejected"},
}
STATUS_FIELDS = {"name", "scope", "key", "period", "unit", "limit", "spent", "ratio", "remaining", "projected", "state",
                 "period_start", "period_end"}  # fmt: skip
ALERT_FIELDS = {"id", "fingerprint", "alertname", "labels", "annotations", "severity", "state", "starts_at",
                "acknowledged_by", "acknowledged_at", "resolved_at"}  # fmt: skip
DEAD = "http://127.0.0.1:9/"  # nothing listens: deliveries fail, and are counted


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmcostProcess]:
    tmp_path = tmp_path_factory.mktemp("contract")
    budgets = [
        {"name": "usd-daily", "scope": "project", "key": "*", "period": "daily", "limit": 1.0, "unit": "usd",
         "mode": "hard", "fallback_model": "gpt-4o-mini"},
        {"name": "tokens-monthly", "scope": "global", "period": "monthly", "limit": 1000, "unit": "tokens"},
        {"name": "requests-hourly", "scope": "model", "key": "gpt-4o", "period": "hourly", "limit": 100,
         "unit": "requests", "mode": "soft"},
    ]  # fmt: skip
    notifications = {
        "slack": {"token": "xoxb-test", "channel": "#llm-cost", "api_url": DEAD},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": 9, "starttls": False, "from": "a@example.com",
                  "to": ["b@example.com"]},
        "pagerduty": {"routing_key": "R0123456789abcdef0123456789abcde", "events_url": DEAD},
    }  # fmt: skip
    with running_llmcost(
        tmp_path,
        f"sqlite:///{tmp_path / 'store.db'}",
        auth={"ingest_tokens": [INGEST_TOKEN], "admin_tokens": [ADMIN_TOKEN], "webhook_tokens": [WEBHOOK_TOKEN]},
        budgets=budgets,
        notifications=notifications,
    ) as running:
        yield running


def fire_spike(server: LlmcostProcess, project: str) -> None:
    """An `LLMCostSpike` from Alertmanager (each test fires it: with xdist a test may have its own server).

    Each test its own `project`: on one server, the spike detection pass resolves an open LLMCostSpike its
    own state does not hold (its sweep), and Alertmanager's re-send of that same alert is the occurrence
    already resolved, so a second test firing the first one's alert found none firing.
    """
    alert = {"status": "firing", "labels": {"alertname": "LLMCostSpike", "severity": "warning", "project": project},
             "annotations": {"summary": "spend spike"}, "startsAt": "2026-12-01T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
             "fingerprint": hashlib.sha256(project.encode()).hexdigest()[:16]}  # fmt: skip
    payload = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
               "receiver": "llmcost", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
               "externalURL": "", "alerts": [alert]}  # fmt: skip
    fired = httpx.post(f"{server.base}/v1/alertmanager", json=payload, headers=WEBHOOK, timeout=10)
    assert fired.status_code == 200, fired.text


@pytest.mark.within_period("daily", 60)  # the usd-daily instance (the only usd budget) lives in today's period
def test_every_metric_the_contract_names_has_its_type_and_exact_labels(server: LlmcostProcess) -> None:
    stamp = stamp_in_period(5, "daily")  # 5 s back, but today's (from 00:00:00 to 00:00:05 UTC, that is yesterday)
    events = [
        {"request_id": "c-1", "timestamp": stamp, "provider": "openai", "model": "gpt-4o", "input_tokens": 100,
         "cache_read_tokens": 20, "output_tokens": 50, "reasoning_tokens": 10, "project": "search", "service": "api"},
        {"request_id": "c-2", "timestamp": stamp, "provider": "self-hosted", "model": "no-such-model",
         "input_tokens": 5},
        {"request_id": "c-1", "provider": "openai", "model": "gpt-4o"},
        {"provider": "openai"},
    ]  # fmt: skip
    answer = httpx.post(f"{server.base}/v1/usage", json=events, headers=INGEST, timeout=10)
    assert answer.status_code == 200 and answer.json()["rejected"][0]["index"] == 3, answer.text
    fire_spike(server, "search")

    def scrape() -> dict[str, tuple[str, list[dict[str, str]]]]:
        text = httpx.get(f"{server.base}/metrics", timeout=10).text
        families = {}
        for family in text_string_to_metric_families(text):
            name = family.name + "_total" if family.type == "counter" else family.name
            families[name] = (family.type, [s.labels for s in family.samples if s.name == name])
        return families

    def complete() -> dict[str, tuple[str, list[dict[str, str]]]] | None:
        families = scrape()
        return families if all(families.get(name, ("", []))[1] for name in METRICS) else None

    # Budget gauges come from the scheduler's first evaluation, a moment after start.
    families = wait_until(complete, timeout=30, interval=0.5, what="a sample of every contract metric")
    for name, (kind, labels) in METRICS.items():
        got_kind, got = families[name]
        assert got_kind == kind, f"{name}: {got_kind}, the contract says {kind}"
        for sample in got:
            assert tuple(sorted(sample)) == tuple(sorted(labels)), f"{name}: labels {sorted(sample)}"
    for (name, label), allowed in LABEL_VALUES.items():
        seen = {sample[label] for sample in families[name][1]}
        assert seen <= allowed, f"{name}{{{label}}}: {seen - allowed} is not in the contract"
    # Every value the contract lists is there (configured channels and budget units included), not only allowed.
    for name, label in (
        ("llm_budget_limit", "unit"),
        ("llm_tokens_total", "token_type"),
        ("llm_notifications_total", "channel"),
        ("llm_notifications_total", "outcome"),
        ("llm_ingest_events_total", "outcome"),
    ):
        assert {s[label] for s in families[name][1]} == LABEL_VALUES[(name, label)], (name, label)
    assert families["llm_unpriced_requests_total"][1] == [{"provider": "self-hosted", "model": "no-such-model"}]


def test_every_endpoint_the_contract_names_answers_with_its_fields(server: LlmcostProcess) -> None:
    base = server.base
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert httpx.get(f"{base}/").status_code == 200
    assert httpx.get(f"{base}/metrics").status_code == 200

    budgets = httpx.get(f"{base}/v1/budgets", headers=ADMIN).json()["budgets"]
    assert budgets and all(set(b) >= STATUS_FIELDS for b in budgets)
    assert set(httpx.get(f"{base}/v1/budgets/tokens-monthly", headers=ADMIN).json()) >= STATUS_FIELDS
    definition = {"scope": "service", "key": "api", "period": "weekly", "limit": 5, "unit": "usd",
                  "max_cost_per_request": 1, "max_tokens_per_request": 1000, "fallback_model": "m"}  # fmt: skip
    made = httpx.put(f"{base}/v1/budgets/contract", headers=ADMIN, json=definition, timeout=10)
    assert made.status_code in (200, 201), made.text
    reset = httpx.post(f"{base}/v1/budgets/contract/reset", headers=ADMIN, json={"by": "ci", "reason": "contract"})
    assert reset.status_code == 200, reset.text
    assert httpx.delete(f"{base}/v1/budgets/contract", headers=ADMIN).status_code in (200, 204)

    body = {"project": "search", "user": "u", "service": "api", "model": "gpt-4o", "estimated_cost_usd": 5.0}
    check = httpx.post(f"{base}/v1/budgets/check", json=body, headers=INGEST, timeout=10).json()
    assert check["allowed"] is False and check["state"] == "exceeded" and check["reason"]
    assert check["fallback_model"] == "gpt-4o-mini"
    for entry in check["budgets"]:
        assert {"name", "spent", "estimate", "limit", "state_after", "decided"} <= set(entry)
    assert httpx.post(f"{base}/v1/budgets/check", json={"projet": "x"}, headers=INGEST).status_code == 422

    fire_spike(server, "contract-endpoints")
    alerts = httpx.get(f"{base}/v1/alerts", params={"state": "firing"}, headers=ADMIN).json()
    alerts = alerts["alerts"] if isinstance(alerts, dict) else alerts
    spike = next(a for a in alerts if a["alertname"] == "LLMCostSpike")
    assert set(spike) >= ALERT_FIELDS
    acked = httpx.post(f"{base}/v1/alerts/{spike['id']}/ack", json={"by": "ci", "comment": "c"}, headers=ADMIN)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ci"
    assert httpx.post(f"{base}/v1/alerts/{spike['id']}/unack", headers=ADMIN).status_code == 200

    summary = httpx.get(f"{base}/v1/usage/summary", params={"by": "project", "since": "1d"}, headers=ADMIN)
    assert summary.status_code == 200, summary.text
    assert httpx.post(f"{base}/v1/traces", json={"resourceSpans": []}, headers=INGEST).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/v1/usage", INGEST, b"{not json", 400),
        ("POST", "/v1/usage", {}, b"{}", 401),
        ("POST", "/v1/budgets/check", {}, b"{}", 401),
        ("GET", "/v1/budgets", INGEST, None, 401),
        ("GET", "/v1/budgets/no-such-budget", ADMIN, None, 404),
        ("PUT", "/v1/budgets/bad", ADMIN, b'{"scope": "galaxy"}', 422),
        ("GET", "/v1/alerts", {}, None, 401),
        ("POST", "/v1/alerts/999999/ack", ADMIN, b'{"by": "ci"}', 404),
        ("POST", "/v1/alertmanager", INGEST, b"{}", 401),
        ("POST", "/v1/slack/interactions", {}, b"payload=%7B%7D", 401),
        ("POST", "/v1/pagerduty/webhook", {}, b"{}", 401),
        ("POST", "/v1/traces", {}, b"{}", 401),
        ("GET", "/v1/usage/summary", ADMIN, None, None),  # 200: the control
        ("GET", "/v1/no-such-endpoint", ADMIN, None, 404),
    ],
)
def test_errors_are_error_and_detail_with_a_fitting_status(
    server: LlmcostProcess, method: str, path: str, headers: dict[str, str], body: bytes | None, status: int | None
) -> None:
    kind = "application/x-www-form-urlencoded" if path.startswith("/v1/slack") else "application/json"
    answer = httpx.request(method, f"{server.base}{path}", content=body, headers={**headers, "Content-Type": kind})
    if status is None:
        assert answer.status_code == 200
        return
    assert answer.status_code == status, answer.text
    assert {"error", "detail"} <= set(answer.json()) and isinstance(answer.json()["error"], str)
