"""The Alertmanager push path without real Alertmanager: payloads, timing, replicas down, recognition.

`test_alertmanager_push.py` runs the same path against the real binary; these pin the details it
cannot reach quickly (a resolve at a period's end, a controllable clock, the configuration checks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alerting.gateway.alertmanager import parse_webhook
from alerting.gateway.config import settings_from_config
from alerting.gateway.records import rfc3339
from alerting.gateway.service import GatewayService
from alerting.links import external_url, generator_url, runbook_url
from alerting.model import fingerprint
from alerting.push.pusher import MIN_HORIZON_SECONDS, PushCollector, Pusher, batches
from alerting.push.settings import parse_push_section
from alerting.push.sink import AlertmanagerSink
from alerting.store import open_store
from exporter.config import Config, ConfigError
from exporter.store import Store
from llmcost.cli import main
from llmcost.config import parse_config
from tests.support.clock import FakeClock
from tests.support.pg import free_port
from tests.support.recording_servers import RecordingServer

T0 = 1_796_000_000.0
LABELS = {"budget": "team-a", "scope": "project", "key": "team-a"}


@pytest.fixture
def alertmanager() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def build(url: str, store_url: str, clock: FakeClock, *, extra_urls: tuple[str, ...] = ()) -> tuple[Any, Pusher, Store]:
    store = open_store(store_url, clock=clock)
    config = parse_config({"external_url": "https://llmcost.example.com/"})
    gateway = GatewayService(store, settings_from_config(config), clock=clock, start_workers=False)
    settings = parse_push_section({"urls": [url.rstrip("/"), *extra_urls], "resend_interval": "30s", "retries": 1}, [])
    pusher = Pusher(store, settings, clock=clock, sleep=lambda _s: None)
    sink = AlertmanagerSink(
        store,
        gateway,
        wake=lambda: None,
        generator_url=lambda name, labels: generator_url(config, name, labels),
        runbook_url=lambda name: runbook_url(config, name),
        clock=clock,
    )
    return sink, pusher, store


def posted(server: RecordingServer) -> list[dict[str, Any]]:
    """The alerts of the last push (all its requests)."""
    last: list[dict[str, Any]] = []
    for request in server.requests:
        assert request.path == "/api/v2/alerts"
        last.extend(request.json)
    return last


def test_firing_alerts_are_pushed_with_ends_at_ahead_and_a_resolve_at_period_end_sets_it(
    alertmanager: RecordingServer, db_url: str, clock: FakeClock
) -> None:
    clock.set(T0)
    sink, pusher, store = build(alertmanager.url, db_url, clock)
    sink.fire("LLMBudgetCritical", {**LABELS, "empty": ""}, {"summary": "97 %"}, "critical")
    assert pusher.push() == {alertmanager.url.rstrip("/"): "sent"}
    (alert,) = posted(alertmanager)
    assert alert == {
        "labels": {**LABELS, "alertname": "LLMBudgetCritical", "severity": "critical", "llmcost_origin": "llmcost"},
        "annotations": {"summary": "97 %", "runbook_url": "https://llmcost.example.com/runbook#llmbudgetcritical"},
        "startsAt": rfc3339(T0),
        "endsAt": rfc3339(T0 + MIN_HORIZON_SECONDS),
        "generatorURL": "https://llmcost.example.com/#budget-team-a",
    }
    # Still firing a minute later: same startsAt, endsAt pushed forward.
    clock.now = T0 + 60
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "97 %"}, "critical")
    alertmanager.requests.clear()
    pusher.push()
    (alert,) = posted(alertmanager)
    assert (alert["startsAt"], alert["endsAt"]) == (rfc3339(T0), rfc3339(T0 + 60 + MIN_HORIZON_SECONDS))
    assert sink.active_labels(["LLMBudgetCritical"]) == [("LLMBudgetCritical", LABELS)]

    period_end = T0 + 3600.0  # the budget's period ends: the evaluation at that instant resolves it
    clock.now = period_end
    sink.resolve("LLMBudgetCritical", LABELS)
    assert sink.active_labels(["LLMBudgetCritical"]) == []
    for later in (period_end + 1, period_end + 600):  # re-sent resolved for `resolved_resend` (15 min)
        clock.now = later
        alertmanager.requests.clear()
        pusher.push()
        (alert,) = posted(alertmanager)
        assert (alert["startsAt"], alert["endsAt"]) == (rfc3339(T0), rfc3339(period_end))
    clock.now = period_end + 16 * 60
    alertmanager.requests.clear()
    pusher.push()
    assert posted(alertmanager) == []

    # Firing again is a new occurrence with a new startsAt.
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "97 %"}, "critical")
    pusher.push()
    (alert,) = posted(alertmanager)
    assert alert["startsAt"] == rfc3339(clock.now)
    store.close()


def test_a_replica_down_is_retried_counted_and_never_fatal(
    alertmanager: RecordingServer, sqlite_url: str, clock: FakeClock
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    clock.set(T0)
    sink, pusher, store = build(alertmanager.url, sqlite_url, clock, extra_urls=(down,))
    sink.fire("LLMCostSpike", {"project": "p"}, {"summary": "spike"}, "warning")
    outcomes = pusher.push()
    assert outcomes == {alertmanager.url.rstrip("/"): "sent", down: "failed"}
    assert len(posted(alertmanager)) == 1
    counters = store.counters()
    assert sum(v for k, v in counters.items() if k.startswith("alertmanager.push.failed.")) == 1
    assert sum(v for k, v in counters.items() if k.startswith("alertmanager.push.retried.")) == 1
    assert sum(v for k, v in counters.items() if k.startswith("alertmanager.push.sent.")) == 1
    store.close()


def test_batches_post_inhibition_sources_first_when_firing_and_last_when_resolved() -> None:
    def alert(severity: str) -> dict[str, Any]:
        return {"labels": {"alertname": severity, "severity": severity}}

    pairs = [(False, alert("warning")), (True, alert("critical")), (False, alert("critical")), (True, alert("info"))]
    order = [[a["labels"]["severity"] for a in batch] for batch in batches(pairs)]
    assert order == [["info"], ["critical"], ["critical"], ["warning"]]
    assert batches(pairs)[0][0] is pairs[3][1]  # the resolved info alert leads


def test_the_gateway_recognises_its_own_alert_coming_back() -> None:
    hook = parse_webhook(
        {
            "version": "4",
            "groupKey": "g",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        **LABELS,
                        "alertname": "LLMBudgetCritical",
                        "severity": "critical",
                        "llmcost_origin": "llmcost",
                    },
                    "annotations": {},
                    "startsAt": rfc3339(T0),
                },
                {
                    "status": "firing",
                    "labels": {**LABELS, "alertname": "LLMBudgetCritical", "severity": "critical"},
                    "annotations": {},
                    "startsAt": rfc3339(T0),
                },
            ],
        }
    )
    ours, foreign = sorted(hook.alerts, key=lambda w: "severity" in w.alert.labels)
    assert ours.alert.fingerprint == fingerprint("LLMBudgetCritical", LABELS)  # as the direct path had it
    assert ours.alert.severity == "critical"
    assert "llmcost_origin" not in ours.alert.labels
    assert foreign.alert.labels["severity"] == "critical"  # a Prometheus rule's alert keeps its labels


def test_configuration() -> None:
    problems: list[str] = []
    settings = parse_push_section({"url": "http://user:secret@am:9093/"}, problems)
    assert problems == [] and settings.urls == ("http://user:secret@am:9093",)
    assert list(settings.replicas.values()) == ["http://am:9093"]  # no credentials in metric labels
    for bad, message in (
        ({"url": "am:9093"}, "alertmanager.url: must be an http(s) URL"),  # the key written, not urls[0]
        ({"urls": ["http://a:9093", "am:9093"]}, "alertmanager.urls[1]: must be an http(s) URL"),
        ({"url": "http://a", "urls": ["http://b"]}, "alertmanager: give url or urls, not both"),
        ({"urls": []}, "alertmanager.urls: must be a non-empty list of URLs"),
        ({"url": "http://a", "resend": 1}, "alertmanager.resend: unknown key"),
    ):
        problems = []
        parse_push_section(bad, problems)
        assert any(p.startswith(message) for p in problems), problems
    with pytest.raises(ConfigError, match="external_url"):
        parse_config({"external_url": "llmcost:9800"})
    with pytest.raises(ConfigError, match=r"alertmanager\.url: must be an http"):
        parse_config({"alertmanager": {"url": "alertmanager:9093"}})  # what `llmcost check-config` lists
    assert external_url(Config(listen="127.0.0.1:9811")) == "http://127.0.0.1:9811"
    assert external_url(parse_config({"external_url": "https://cost.example.com/"})) == "https://cost.example.com"
    own = parse_config({"alerting": {"runbook_base_url": "https://wiki.example.com/llmcost-runbook"}})
    assert runbook_url(own, "LLMCostSpike") == "https://wiki.example.com/llmcost-runbook#llmcostspike"
    # silence_on_ack may use the top-level replica list.
    both = parse_config(
        {"alertmanager": {"urls": ["http://am-0:9093"]}, "alerting": {"alertmanager": {"silence_on_ack": True}}}
    )
    assert settings_from_config(both).silences.url == "http://am-0:9093"
    # Silences are followed on every replica; a url of its own in `alerting.alertmanager` is the one asked.
    two = {"alertmanager": {"urls": ["http://am-0:9093", "http://am-1:9093/"]}}
    assert settings_from_config(parse_config(two)).silences.urls == ("http://am-0:9093", "http://am-1:9093")
    own_url = {**two, "alerting": {"alertmanager": {"url": "http://am-lb:9093"}}}
    assert settings_from_config(parse_config(own_url)).silences.urls == ("http://am-lb:9093",)


def test_check_config_names_the_alertmanager_key_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text("alertmanager: {url: alertmanager:9093}\n")
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "alertmanager.url: must be an http(s) URL" in out and "urls[0]" not in out, out
    config.write_text("alertmanager: {url: 'http://alertmanager:9093'}\n")
    assert main(["check-config", str(config)]) == 0


def test_an_alert_raised_directly_and_coming_back_through_alertmanager_is_notified_once(
    sqlite_url: str, clock: FakeClock
) -> None:
    """E.g. `alertmanager.url` added while an alert fires: the returning copy is the same alert."""
    clock.set(T0)
    store = open_store(sqlite_url, clock=clock)
    config = parse_config(
        {"notifications": {"slack": {"token": "xoxb-test", "channel": "#c", "api_url": "http://127.0.0.1:9/"}}}
    )
    gateway = GatewayService(store, settings_from_config(config), clock=clock, start_workers=False)
    first = gateway.fire("LLMBudgetCritical", LABELS, severity="critical", annotations={"summary": "97 %"})
    assert first.action == "fired" and first.channels == ("slack",)
    clock.now = T0 + 30
    labels = {**LABELS, "alertname": "LLMBudgetCritical", "severity": "critical", "llmcost_origin": "llmcost"}
    webhook = {
        "version": "4",
        "groupKey": '{}:{alertname="LLMBudgetCritical"}',
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "97 %"}, "startsAt": rfc3339(T0)}],
    }
    result = gateway.receive_alertmanager(webhook)
    assert [c.channels for c in result.changes] == [()]
    assert len(gateway.alerts()) == 1
    assert len(gateway.notifications(channel="slack")) == 1
    gateway.close()
    store.close()


def test_a_budget_alert_rising_a_level_resolves_the_earlier_level_in_alertmanager_and_stays_one_alert(
    alertmanager: RecordingServer, db_url: str, clock: FakeClock
) -> None:
    """Warning → critical: Alertmanager is told the warning ended; its late copies never lower the alert."""
    clock.set(T0)
    sink, pusher, store = build(alertmanager.url, db_url, clock)
    sink.fire("LLMBudgetWarning", LABELS, {"summary": "85 %"}, "warning")
    clock.now = T0 + 60
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "97 %"}, "critical")
    pusher.push()
    pushed = {a["labels"]["alertname"]: a for a in posted(alertmanager)}
    assert set(pushed) == {"LLMBudgetWarning", "LLMBudgetCritical"}
    assert pushed["LLMBudgetWarning"]["endsAt"] == rfc3339(T0 + 60)  # resolved when the level rose
    assert pushed["LLMBudgetCritical"]["endsAt"] > rfc3339(T0 + 60)  # firing
    assert sink.active_labels(["LLMBudgetWarning", "LLMBudgetCritical"]) == [("LLMBudgetCritical", LABELS)]

    gateway = sink.gateway
    gateway.fire("LLMBudgetCritical", LABELS, severity="critical", annotations={"summary": "97 %"})

    def webhook(status: str, alertname: str, severity: str) -> dict[str, Any]:
        labels = {**LABELS, "alertname": alertname, "severity": severity, "llmcost_origin": "llmcost"}
        item = {"status": status, "labels": labels, "annotations": {}, "startsAt": rfc3339(T0)}
        if status == "resolved":
            item["endsAt"] = rfc3339(T0 + 60)
        return {"version": "4", "groupKey": f"{status}-{alertname}", "alerts": [item]}

    late_warning = gateway.receive_alertmanager(webhook("firing", "LLMBudgetWarning", "warning"))
    warning_ended = gateway.receive_alertmanager(webhook("resolved", "LLMBudgetWarning", "warning"))
    assert [c.action for c in (*late_warning.changes, *warning_ended.changes)] == ["ignored", "ignored"]
    (alert,) = gateway.alerts()
    assert (alert.alertname, alert.severity, alert.state) == ("LLMBudgetCritical", "critical", "firing")

    clock.now = T0 + 120  # the level falls back (a reset), then rises to warning again: one row per level
    sink.resolve("LLMBudgetCritical", LABELS)
    sink.fire("LLMBudgetWarning", LABELS, {"summary": "85 %"}, "warning")
    alertmanager.requests.clear()
    pusher.push()
    states = {(a["labels"]["alertname"], a["endsAt"] > rfc3339(clock.now)) for a in posted(alertmanager)}
    assert states == {("LLMBudgetWarning", True), ("LLMBudgetCritical", False)}
    gateway.close()
    store.close()


def test_new_figures_reach_the_gateways_record_at_once_a_new_alert_or_level_only_through_alertmanager(
    alertmanager: RecordingServer, db_url: str, clock: FakeClock
) -> None:
    """Alertmanager's webhook sends nothing for changed annotations: llmcost showed the first figures for hours."""
    clock.set(T0)
    sink, _pusher, store = build(alertmanager.url, db_url, clock)
    gateway = sink.gateway
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "97 %"}, "critical")
    assert gateway.alerts() == []  # a new alert comes back through Alertmanager (silences, inhibition, routes)

    def delivery(summary: str) -> dict[str, Any]:
        labels = {**LABELS, "alertname": "LLMBudgetCritical", "severity": "critical", "llmcost_origin": "llmcost"}
        item = {"status": "firing", "labels": labels, "annotations": {"summary": summary}, "startsAt": rfc3339(T0)}
        return {"version": "4", "groupKey": '{}:{alertname="LLMBudgetCritical"}', "alerts": [item]}

    gateway.receive_alertmanager(delivery("97 %"))
    clock.now = T0 + 30
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "99 %"}, "critical")
    (alert,) = gateway.alerts()
    assert alert.annotations["summary"] == "99 %"
    assert gateway.ack(alert.id, by="alice").action == "acknowledged"
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "99.5 %"}, "critical")  # acknowledged: figures all the same
    assert gateway.receive_alertmanager(delivery("98 %")).changes  # a late delivery, older figures
    (alert,) = gateway.alerts()
    assert (alert.state, alert.annotations["summary"]) == ("acknowledged", "99.5 %")
    sink.fire("LLMBudgetExceeded", LABELS, {"summary": "101 %"}, "critical")
    (alert,) = gateway.alerts()
    assert (alert.alertname, alert.annotations["summary"]) == ("LLMBudgetCritical", "99.5 %")  # the level: via AM
    gateway.close()
    store.close()


def test_a_secret_in_a_replica_path_stays_out_of_metrics_and_logs_and_its_counters_go_on(
    alertmanager: RecordingServer, sqlite_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # An Alertmanager reached through a proxy whose path holds its token: `/metrics` showed
    # alertmanager="http://127.0.0.1:PORT/api/TOKEN123" and the log of a failed push named it too.
    sent = alertmanager.url.rstrip("/") + "/api/TOKEN123"
    down = f"http://127.0.0.1:{free_port()}/api/OTHERTOKEN456"
    clock.set(T0)
    sink, pusher, store = build(sent, sqlite_url, clock, extra_urls=(down,))
    sink.fire("LLMCostSpike", {"project": "p"}, {"summary": "spike"}, "warning")
    with caplog.at_level(logging.WARNING, logger="alerting.push.pusher"):
        outcomes = pusher.push()
    assert [r.path for r in alertmanager.requests] == ["/api/TOKEN123/api/v2/alerts"]  # still sent there
    origin = alertmanager.url.rstrip("/")
    assert outcomes == {f"{origin}/[REDACTED]": "sent", f"{down.rsplit('/api', 1)[0]}/[REDACTED]": "failed"}
    registry = CollectorRegistry()
    registry.register(PushCollector(store, pusher.settings))
    scraped = generate_latest(registry).decode()
    assert f'alertmanager="{origin}/[REDACTED]",outcome="sent"}} 1.0' in scraped, scraped
    logged = caplog.text
    assert "Alertmanager http://127.0.0.1:" in logged and "[REDACTED]" in logged, logged
    for secret in ("TOKEN123", "OTHERTOKEN456"):
        assert secret not in scraped and secret not in logged
    # The stored counters keep their names (a hash of the URL with its path): nothing resets on upgrade.
    identity = hashlib.sha256(sent.encode()).hexdigest()[:12]
    assert store.counters()[f"alertmanager.push.sent.{identity}"] == 1
    store.close()


def test_replicas_behind_one_proxy_are_told_apart_by_their_place() -> None:
    settings = parse_push_section({"urls": ["https://proxy/am-0/", "https://proxy/am-1", "http://am-2:9093"]}, [])
    assert list(settings.replicas.values()) == [
        "https://proxy/[REDACTED] (alertmanager.urls[0])",
        "https://proxy/[REDACTED] (alertmanager.urls[1])",
        "http://am-2:9093",
    ]


@pytest.mark.parametrize("action", ["delete", "reset"])
def test_a_budget_deleted_or_reset_from_the_command_line_ends_its_alert_in_alertmanager(
    action: str, alertmanager: RecordingServer, db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    """`llmcost budgets delete|reset` with `alertmanager:` configured ends the alert where it fires.

    The command resolved it in the gateway only: Alertmanager, which the pusher kept telling the alert
    was firing, sent it back, and the budget's deletion or reset left its Slack thread and page open.
    """
    import time

    clock.set(float(int(time.time())))
    config = tmp_path / "llmcost.yaml"
    config.write_text(f"alertmanager:\n  url: {alertmanager.url.rstrip('/')}\n")
    sink, pusher, store = build(alertmanager.url, db_url, clock)
    create = ["budgets", "create", "team-a", "--scope", "project", "--key", "team-a", "--period", "daily"]
    assert main([*create, "--limit", "1", "--db", db_url]) == 0
    sink.fire("LLMBudgetCritical", LABELS, {"summary": "97 %"}, "critical")
    assert sink.active_labels(["LLMBudgetCritical"]) == [("LLMBudgetCritical", LABELS)]

    extra = ["--by", "dave", "--reason", "refund from OpenAI"] if action == "reset" else ["--by", "dave"]
    assert main(["budgets", action, "team-a", *extra, "--config", str(config), "--db", db_url]) == 0

    assert sink.active_labels(["LLMBudgetCritical"]) == []
    alertmanager.requests.clear()
    pusher.push()
    (alert,) = posted(alertmanager)
    assert alert["endsAt"] <= rfc3339(time.time())  # pushed resolved, not firing with its horizon ahead
    store.close()
