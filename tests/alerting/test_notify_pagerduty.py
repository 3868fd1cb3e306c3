"""PagerDutyNotifier against a recording stand-in of the Events API v2 on loopback."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.model import Actor, Alert, Notification, NotificationKind, Reopened, fingerprint
from alerting.notify import Notifier, PagerDutyNotifier, build_notifiers
from tests.support.recording_servers import PagerDutyEventsServer, unused_port
from tests.support.waiting import wait_until

ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"
SPIKE_LABELS = {"project": "search", "provider": "openai", "model": "gpt-4o"}


def make_alert(**changes: Any) -> Alert:
    labels = changes.pop("labels", SPIKE_LABELS)
    fields: dict[str, Any] = {
        "id": 7,
        "fingerprint": fingerprint("LLMCostSpike", labels),
        "alertname": "LLMCostSpike",
        "labels": labels,
        "annotations": {
            "summary": "LLM spend spike in search: $42.10 in 30m, 6.2x the baseline",
            "runbook_url": "https://runbooks.example.com/llm-cost-spike",
        },
        "severity": "warning",
        "starts_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "generator_url": "http://prometheus.example.com/graph?g0.expr=x",
    }
    return Alert(**{**fields, **changes})


def notify(kind: str, reference: dict[str, Any] | None = None, **changes: Any) -> Notification:
    actor = changes.pop("actor", None)
    return Notification(
        kind=NotificationKind(kind), alert=make_alert(**changes), channel="pagerduty", reference=reference, actor=actor
    )


@pytest.fixture
def pagerduty():
    with PagerDutyEventsServer() as server:
        yield server


@pytest.fixture
def notifier(pagerduty):
    return PagerDutyNotifier(routing_key=ROUTING_KEY, events_url=pagerduty.events_url, timeout=5)


def test_the_notifier_fulfils_the_protocol(notifier):
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "pagerduty"


def test_a_firing_alert_triggers_an_event(pagerduty, notifier):
    alert = make_alert()
    result = notifier.send(notify("firing"))

    key = f"llmcost-{alert.fingerprint}"
    assert result.ok and result.reference == {"dedup_key": key}
    [request] = pagerduty.requests
    assert request.method == "POST" and request.path == "/v2/enqueue"
    assert request.header("content-type") == "application/json"
    event = request.json
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == key
    payload = event["payload"]
    assert payload["summary"].startswith("[WARNING] LLMCostSpike: LLM spend spike in search")
    assert payload["severity"] == "warning"
    assert payload["source"] == "llmcost"
    assert payload["custom_details"]["labels"] == SPIKE_LABELS
    assert payload["custom_details"]["annotations"]["runbook_url"] == "https://runbooks.example.com/llm-cost-spike"
    assert {"href": "https://runbooks.example.com/llm-cost-spike", "text": "Runbook"} in event["links"]
    assert event["client_url"] == "http://prometheus.example.com/graph?g0.expr=x"


def test_trigger_acknowledge_and_resolve_share_the_dedup_key(pagerduty, notifier):
    first = notifier.send(notify("firing"))
    notifier.send(notify("acknowledged", first.reference, actor=Actor(by="alice", via="slack")))
    notifier.send(notify("resolved", first.reference))

    events = pagerduty.events
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    assert "payload" not in events[1] and "payload" not in events[2]


@pytest.mark.parametrize("kind", ["repeat", "escalated"])
def test_reminders_trigger_again(pagerduty, notifier, kind):
    notifier.send(notify(kind))
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]


def test_unacknowledge_and_a_reopening_escalation_resolve_the_acknowledged_incident_and_trigger_a_new_one(
    pagerduty, notifier
):
    # A trigger on an acknowledged incident pages nobody (PagerDuty only logs it).
    notifier.send(notify("firing"))
    notifier.send(notify("acknowledged", actor=Actor(by="alice", via="api")))
    assert notifier.send(notify("unacknowledged", actor=Actor(by="bob", via="api"))).ok
    reopened = Reopened(by="bob", via="slack", alertname="LLMCostSpike", severity="warning")
    notifier.send(notify("acknowledged", actor=Actor(by="bob", via="slack")))
    escalated = replace(notify("escalated", severity="critical"), previous_severity="warning", reopened=reopened)
    assert notifier.send(escalated).ok
    actions = [e["event_action"] for e in pagerduty.events]
    assert actions == ["trigger", "acknowledge", "resolve", "trigger", "acknowledge", "resolve", "trigger"]
    assert len({e["dedup_key"] for e in pagerduty.events}) == 1
    assert [(i.status, i.severity) for i in pagerduty.pages] == [
        ("resolved", "warning"),
        ("resolved", "warning"),
        ("triggered", "critical"),
    ]
    assert "re-opened, the acknowledgement by bob via slack was for LLMCostSpike" in pagerduty.pages[-1].summary


def test_a_failed_resolve_before_the_new_trigger_is_retried_whole(pagerduty, notifier):
    pagerduty.fail_next("resolve", 502)
    result = notifier.send(notify("unacknowledged", actor=Actor(by="bob", via="api")))
    assert (result.ok, result.retryable) == (False, True)
    assert [e["event_action"] for e in pagerduty.events] == ["resolve"]  # no trigger onto the acknowledged one


@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_severities_map_onto_pagerduty_severities(pagerduty, notifier, severity):
    assert notifier.send(notify("firing", severity=severity)).ok
    assert pagerduty.events[0]["payload"]["severity"] == severity


def test_the_dedup_key_is_stable_whatever_the_label_order():
    reordered = dict(reversed(list(SPIKE_LABELS.items())))
    with_name = {**SPIKE_LABELS, "alertname": "LLMCostSpike"}
    assert fingerprint("LLMCostSpike", SPIKE_LABELS) == fingerprint("LLMCostSpike", reordered)
    assert fingerprint("LLMCostSpike", SPIKE_LABELS) == fingerprint("LLMCostSpike", with_name)
    assert fingerprint("LLMCostSpike", SPIKE_LABELS) != fingerprint("LLMCostSpike", {**SPIKE_LABELS, "model": "o3"})
    assert fingerprint("LLMCostSpike", SPIKE_LABELS) != fingerprint("LLMBudgetWarning", SPIKE_LABELS)
    assert fingerprint("a", {"b": "c"}) == "b3de989277b3ebc5", "fingerprints are stored: they must never change"


def test_a_long_summary_is_cut_to_1024_characters(pagerduty, notifier):
    result = notifier.send(notify("firing", annotations={"summary": "spend " * 2000}))

    assert result.ok, result.error  # the stand-in answers 400 to summaries over 1024, as PagerDuty does
    summary = pagerduty.events[0]["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")


def test_an_acknowledgement_from_pagerduty_is_not_echoed_back(pagerduty, notifier):
    first = notifier.send(notify("firing"))
    result = notifier.send(notify("acknowledged", first.reference, actor=Actor(by="carol", via="pagerduty")))

    assert result.ok and result.skipped
    assert result.reference == first.reference
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]


def test_rate_limiting_is_retryable(pagerduty, notifier):
    pagerduty.enqueue(
        429,
        {"Retry-After": "30"},
        {"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
    )
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert result.retry_after == 30.0
    assert "HTTP 429" in result.error


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(pagerduty, notifier, status):
    pagerduty.enqueue(status, body="upstream trouble")
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert f"HTTP {status}" in result.error


def test_an_html_error_page_is_described_not_quoted(pagerduty, notifier):
    # A load balancer in front of the Events API answers an outage with its HTML page: the failure line,
    # logged on every retry, quoted 200 characters of its markup.
    page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
    pagerduty.enqueue(502, {"Content-Type": "text/html; charset=utf-8"}, page)
    result = notifier.send(notify("firing"))

    assert not result.ok and result.retryable
    assert result.error == "pagerduty trigger: HTTP 502: an HTML page, not the Events API's JSON"


def test_an_invalid_event_is_final_and_says_why(pagerduty):
    result = PagerDutyNotifier(routing_key="too-short", events_url=pagerduty.events_url).send(notify("firing"))

    assert not result.ok and not result.retryable
    assert "HTTP 400" in result.error
    assert "routing_key" in result.error
    assert "too-short" not in result.error


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_client_errors_are_final(pagerduty, notifier, status):
    pagerduty.enqueue(status, body={"status": "unauthorized", "message": "nope"})
    result = notifier.send(notify("firing"))

    assert not result.ok and not result.retryable


def test_the_routing_key_is_redacted_even_when_echoed(pagerduty, notifier):
    pagerduty.enqueue(400, body={"status": "invalid event", "message": f"unknown routing key {ROUTING_KEY}"})
    result = notifier.send(notify("firing"))

    assert ROUTING_KEY not in result.error
    assert "[REDACTED]" in result.error


def test_a_slow_api_times_out_and_is_retryable(pagerduty):
    pagerduty.enqueue(202, body={"status": "success"}, delay=5)
    result = PagerDutyNotifier(routing_key=ROUTING_KEY, events_url=pagerduty.events_url, timeout=0.2).send(
        notify("firing")
    )

    assert not result.ok and result.retryable
    assert "Timeout" in result.error


def test_an_unreachable_api_is_retryable():
    url = f"http://127.0.0.1:{unused_port()}/v2/enqueue"
    result = PagerDutyNotifier(routing_key=ROUTING_KEY, events_url=url, timeout=2).send(notify("firing"))

    assert not result.ok and result.retryable
    assert ROUTING_KEY not in result.error


def test_a_bad_events_url_is_final():
    result = PagerDutyNotifier(routing_key=ROUTING_KEY, events_url="ftp://example.com/").send(notify("firing"))
    assert not result.ok and not result.retryable


def test_notifier_is_built_from_the_notifications_config(pagerduty):
    config = {"pagerduty": {"routing_key": ROUTING_KEY, "events_url": pagerduty.events_url, "webhook_secret": "w"}}
    notifiers = build_notifiers(config)

    assert set(notifiers) == {"pagerduty"}
    assert notifiers["pagerduty"].send(notify("firing")).ok


def test_events_reuse_a_kept_alive_connection_and_survive_the_server_closing_it():
    with PagerDutyEventsServer(keep_alive=True, idle_timeout=0.3) as server:
        notifier = PagerDutyNotifier(routing_key=ROUTING_KEY, events_url=server.events_url, timeout=5)
        try:
            results = [notifier.send(notify("firing", labels={"n": str(i)})) for i in range(5)]
            assert all(r.ok for r in results)
            assert server.connections == 1, "one connection for consecutive events"
            # The server drops the idle connection, as load balancers do.
            wait_until(lambda: server.connections_closed == 1, what="the server closing the idle connection")
            assert notifier.send(notify("resolved")).ok
            assert server.connections == 2
            assert [e["event_action"] for e in server.events] == ["trigger"] * 5 + ["resolve"]
        finally:
            notifier.close()


def test_events_go_through_the_https_proxy_of_the_environment(monkeypatch):
    """`https_proxy` is honoured with a CONNECT tunnel, and `no_proxy` exempts a host (as curl does)."""
    from alerting.notify.pagerduty import EventsTransport

    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "")
    transport = EventsTransport("https://events.pagerduty.com/v2/enqueue", 5)
    assert transport.proxy is not None and (transport.proxy.hostname, transport.proxy.port) == ("proxy.internal", 3128)
    monkeypatch.setenv("no_proxy", "events.pagerduty.com")
    assert EventsTransport("https://events.pagerduty.com/v2/enqueue", 5).proxy is None
