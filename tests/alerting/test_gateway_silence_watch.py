"""`silence_on_ack` against a scripted Alertmanager, on the fake clock: what the silence matches, and
when an acknowledged alert that Alertmanager no longer holds is resolved (`alerting.gateway.silence_watch`).

The same behaviour against the real Alertmanager binary: `tests/e2e/test_alertmanager_ack_silence.py`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.gateway.silences import held_levels
from tests.support.clock import FakeClock
from tests.support.gateway_harness import BUDGET_LABELS, Harness, Receivers, am_alert, am_payload
from tests.support.recording_servers import RecordedRequest, RecordingServer, Response

RESOLVE_AFTER = 60.0  # checks at most every 12 s (a fifth), absence restarts after a 30 s gap (a half)
SPIKE_LABELS = {"alertname": "LLMCostSpike", "severity": "critical", "project": "search"}


class FakeAlertmanager(RecordingServer):
    """Creates silences, and lists `alerts` (or answers `status` when it is not 200) like API v2."""

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[dict[str, Any]] = []
        self.silenced_by: list[str] = []
        """Silences holding every alert listed (made by people; `active=false` lists only silenced alerts)."""
        self.inhibited_by: list[str] = []
        """Fingerprints of the alerts (in `inhibitors`) inhibiting every alert listed."""
        self.inhibitors: dict[str, dict[str, str]] = {}
        """Active alerts by Alertmanager fingerprint: listed only when every alert is asked for."""
        self.status = 200
        self._ids = iter(range(1, 1_000_000))
        self._lock_ids = threading.Lock()

    def default_response(self, request: RecordedRequest) -> Response:
        if request.method == "POST" and request.path == "/api/v2/silences":
            with self._lock_ids:
                return Response(200, {}, {"silenceID": f"sil-{next(self._ids)}"})
        if request.method == "GET" and request.path == "/api/v2/alerts":
            if self.status != 200:
                return Response(self.status, {}, "unavailable")
            if request.query.get("active") == ["false"] and not (self.silenced_by or self.inhibited_by):
                return Response(200, {}, [])
            status = {"state": "suppressed", "silencedBy": self.silenced_by, "inhibitedBy": self.inhibited_by}
            listed = [{"labels": labels, "status": status} for labels in self.alerts]
            if request.query.get("active") == ["true"] and "filter" not in request.query:
                active = {"state": "active", "silencedBy": [], "inhibitedBy": []}
                listed += [
                    {"fingerprint": fp, "labels": labels, "status": active} for fp, labels in self.inhibitors.items()
                ]
            return Response(200, {}, listed)
        if request.method == "GET" and request.path.startswith("/api/v2/silence/"):
            silence_id = request.path.rsplit("/", 1)[-1]
            body = {"id": silence_id, "createdBy": "alice", "comment": "planned eval run"}
            return Response(200, {}, {**body, "endsAt": "2030-01-01T00:00:00Z", "status": {"state": "active"}})
        return Response(200, {}, {})

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]


@pytest.fixture
def am() -> Iterator[FakeAlertmanager]:
    with FakeAlertmanager() as server:
        yield server


@pytest.fixture
def h(sqlite_url: str, rx: Receivers, am: FakeAlertmanager) -> Iterator[Harness]:
    alerting = {"alertmanager": {"url": am.url, "silence_on_ack": True, "resolve_after": f"{RESOLVE_AFTER:g}s"}}
    with Harness(sqlite_url, rx, clock=FakeClock(), alerting=alerting) as harness:
        yield harness


def advance(h: Harness, seconds: float) -> None:
    h.gateway.clock.advance(seconds)  # type: ignore[attr-defined]


def acknowledged_and_silenced(h: Harness, am: FakeAlertmanager, alert: dict[str, Any]) -> int:
    """Post `alert` as Alertmanager's webhook, acknowledge it, deliver: its silence exists."""
    assert h.post_alertmanager(am_payload([alert])).status_code == 200
    h.gateway.deliver_pending()
    (row,) = [a for a in h.alerts() if a["alertname"] == alert["labels"]["alertname"]]
    assert h.admin("POST", f"/v1/alerts/{row['id']}/ack", json={"by": "alice"}).status_code == 200
    h.gateway.deliver_pending()
    assert len(am.calls("POST", "/api/v2/silences")) == 1
    return int(row["id"])


def state(h: Harness, alert_id: int) -> str:
    (alert,) = [a for a in h.alerts() if a["id"] == alert_id]
    return str(alert["state"])


def test_an_acknowledged_alert_gone_from_alertmanager_for_resolve_after_is_resolved_once(
    h: Harness, am: FakeAlertmanager, rx: Receivers
) -> None:
    am.alerts = [SPIKE_LABELS]
    alert_id = acknowledged_and_silenced(h, am, am_alert(severity="critical"))
    for _ in range(10):  # held by the silence, still active: never resolved
        assert h.gateway.tick().silenced_resolved == 0
        advance(h, 20)
    assert state(h, alert_id) == "acknowledged"
    query = am.calls("GET", "/api/v2/alerts")[-1].query
    assert query["silenced"] == ["true"] and query["inhibited"] == ["true"]
    # Narrowed by name and labels (not severity: llmcost's own alerts carry it only in Alertmanager);
    # the fingerprint of what is listed decides.
    assert sorted(query["filter"]) == ['alertname="LLMCostSpike"', 'project="search"']

    am.alerts = []  # the rule stopped firing; Alertmanager, silenced, tells nobody
    for _ in range(3):  # 0, 20, 40 s absent
        assert h.gateway.tick().silenced_resolved == 0
        advance(h, 20)
    advance(h, -1)
    assert h.gateway.tick().silenced_resolved == 0  # 59 s absent
    assert state(h, alert_id) == "acknowledged"
    advance(h, 13)
    assert h.gateway.tick().silenced_resolved == 1  # 72 s absent
    assert state(h, alert_id) == "resolved"
    h.gateway.deliver_pending()
    assert [r.path for r in am.calls("DELETE", "/api/v2/silence/")] == ["/api/v2/silence/sil-1"]
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge", "resolve"]
    shown = h.admin("GET", f"/v1/alerts/{alert_id}").json()
    assert shown["history"][-1]["action"] == "resolved" and shown["history"][-1]["via"] == "alertmanager"
    resolves = sorted(n["channel"] for n in shown["notifications"] if n["kind"] == "resolved")
    assert resolves == ["alertmanager", "email", "pagerduty", "slack"]  # one per channel

    # Resolved: no longer asked about, nothing more sent.
    asked = len(am.calls("GET", "/api/v2/alerts"))
    advance(h, 20)
    assert h.gateway.tick().silenced_resolved == 0
    h.gateway.deliver_pending()
    assert len(am.calls("GET", "/api/v2/alerts")) == asked
    assert [e["event_action"] for e in rx.pagerduty.events] == ["trigger", "acknowledge", "resolve"]


def test_absence_counts_only_while_alertmanager_answers_and_checks_are_close_together(
    h: Harness, am: FakeAlertmanager, caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = acknowledged_and_silenced(h, am, am_alert(severity="critical"))

    def ticks(*gaps: float) -> None:
        for gap in gaps:
            advance(h, gap)
            assert h.gateway.tick().silenced_resolved == 0

    ticks(0, 20)  # absent for 20 s …
    am.status = 503  # … then Alertmanager fails: unknown, the window starts again
    with caplog.at_level(logging.WARNING, logger="alerting.gateway.silence_watch"):
        ticks(20, 20, 20, 20)
    assert len([r for r in caplog.records if "cannot ask Alertmanager" in r.message]) == 1  # logged once
    am.status = 200
    ticks(20, 20, 20)  # absent 0, 20, 40 s …
    am.alerts = [SPIKE_LABELS]
    ticks(20)  # … present again (e.g. re-sent by Prometheus after a restart): the window starts again
    am.alerts = []
    ticks(20, 20, 20)  # absent 0, 20, 40 s …
    ticks(45)  # … then no check for 45 s (over half the window): this check starts again
    ticks(20, 20)  # absent 0, 20, 40 s
    assert state(h, alert_id) == "acknowledged"
    advance(h, 20)
    assert h.gateway.tick().silenced_resolved == 1
    assert state(h, alert_id) == "resolved"


def test_checks_closer_than_a_fifth_of_the_window_ask_nothing(h: Harness, am: FakeAlertmanager) -> None:
    acknowledged_and_silenced(h, am, am_alert(severity="critical"))
    h.gateway.tick()
    asked = len(am.calls("GET", "/api/v2/alerts"))
    advance(h, 5)
    h.gateway.tick()  # the Ticker and the scheduler's outbox job may both tick within seconds
    assert len(am.calls("GET", "/api/v2/alerts")) == asked
    advance(h, 10)
    h.gateway.tick()
    assert len(am.calls("GET", "/api/v2/alerts")) == asked + 1


def test_only_acknowledged_alerts_holding_a_silence_are_asked_about(h: Harness, am: FakeAlertmanager) -> None:
    assert h.post_alertmanager(am_payload([am_alert(severity="critical")])).status_code == 200  # firing only
    scheduler_alert = h.gateway.fire("LLMBudgetWarning", BUDGET_LABELS, severity="warning").alert
    h.gateway.ack(scheduler_alert.id, by="alice")  # not Alertmanager's: no silence
    h.gateway.deliver_pending()
    for _ in range(10):
        h.gateway.tick()
        advance(h, 20)
    # The firing one is only in the list of silenced alerts (none): no question about one alert.
    assert [c for c in am.calls("GET", "/api/v2/alerts") if "filter" in c.query] == []
    assert {a["state"] for a in h.alerts()} == {"firing", "acknowledged"}


def test_a_budget_alert_at_another_level_in_alertmanager_is_still_there(h: Harness, am: FakeAlertmanager) -> None:
    pushed = {**BUDGET_LABELS, "llmcost_origin": "llmcost"}
    alert_id = acknowledged_and_silenced(h, am, am_alert("LLMBudgetCritical", labels=pushed, severity="critical"))
    # llmcost's own alert moved on to the next level: Alertmanager knows it by that name now.
    am.alerts = [{**pushed, "project": "search", "alertname": "LLMBudgetExceeded", "severity": "critical"}]
    for _ in range(10):
        h.gateway.tick()
        advance(h, 20)
    assert state(h, alert_id) == "acknowledged"
    query = am.calls("GET", "/api/v2/alerts")[-1].query
    levels = "LLMBudgetInfo|LLMBudgetForecastOverrun|LLMBudgetWarning|LLMBudgetCritical|LLMBudgetExceeded"
    assert f'alertname=~"{levels}"' in query["filter"]


def matchers_of(request: RecordedRequest) -> dict[str, tuple[str, bool]]:
    return {m["name"]: (m["value"], m["isRegex"]) for m in request.json["matchers"]}


def test_the_silence_of_a_budget_level_covers_the_levels_the_ack_holds_for(h: Harness, am: FakeAlertmanager) -> None:
    pushed = {**BUDGET_LABELS, "llmcost_origin": "llmcost"}
    acknowledged_and_silenced(h, am, am_alert("LLMBudgetCritical", labels=pushed, severity="critical"))
    (create,) = am.calls("POST", "/api/v2/silences")
    assert matchers_of(create) == {
        "alertname": (
            "LLMBudgetInfo|LLMBudgetForecastOverrun|LLMBudgetWarning|LLMBudgetCritical|LLMBudgetExceeded",
            True,
        ),
        "budget": ("team-a-monthly", False),
        "key": ("team-a", False),
        "project": ("search", False),  # what `am_alert` adds to every alert
        "scope": ("project", False),
    }


def test_an_ack_silences_the_levels_of_its_severity_and_below_not_the_higher_ones_which_reopen_it() -> None:
    assert held_levels("LLMBudgetInfo", "info") == ["LLMBudgetInfo"]
    warning = ["LLMBudgetInfo", "LLMBudgetForecastOverrun", "LLMBudgetWarning"]
    assert held_levels("LLMBudgetWarning", "warning") == warning
    assert held_levels("LLMBudgetForecastOverrun", "warning") == warning  # the same severity: one ack holds both
    every = [*warning, "LLMBudgetCritical", "LLMBudgetExceeded"]
    assert held_levels("LLMBudgetCritical", "critical") == every
    assert held_levels("LLMBudgetExceeded", "critical") == every
    assert held_levels("LLMCostSpike", "critical") == ["LLMCostSpike"]


def test_other_alerts_keep_a_silence_matching_exactly_them(h: Harness, am: FakeAlertmanager) -> None:
    acknowledged_and_silenced(h, am, am_alert(severity="critical"))
    (create,) = am.calls("POST", "/api/v2/silences")
    assert matchers_of(create) == {
        "alertname": ("LLMCostSpike", False),
        "project": ("search", False),
        "severity": ("critical", False),
    }


def test_a_firing_alert_silenced_by_hand_in_alertmanager_is_marked_silenced_and_not_reminded(
    h: Harness, am: FakeAlertmanager
) -> None:
    """`amtool silence add` on an alert llmcost was told of: shown silenced, no reminders, until it ends."""
    assert h.post_alertmanager(am_payload([am_alert(severity="critical")])).status_code == 200
    h.gateway.deliver_pending()
    (alert,) = h.alerts()
    am.alerts, am.silenced_by = [SPIKE_LABELS], ["hand-1"]
    assert h.gateway.tick().silenced == 1
    (alert,) = h.alerts()
    assert alert["state"] == "firing"
    assert alert["silenced"] == {
        "silence_id": "hand-1",
        "by": "alice",
        "comment": "planned eval run",
        "ends_at": "2030-01-01T00:00:00Z",
    }
    for _ in range(3):  # past repeat_interval (4 h), several times: no reminder
        advance(h, 4 * 3600)
        result = h.gateway.tick()
        assert (result.repeats, result.silenced, result.unsilenced) == (0, 0, 0)
    assert am.calls("POST", "/api/v2/silences") == [] and am.calls("DELETE", "/api/v2/silence") == []

    am.silenced_by = []  # the silence expired; Alertmanager still holds the alert: reminded again
    advance(h, 20)
    assert h.gateway.tick().unsilenced == 1
    assert h.alerts()[0]["silenced"] is None
    advance(h, 20)
    assert h.gateway.tick().repeats == 1

    am.silenced_by = ["hand-2"]  # silenced again, then it ends in Alertmanager: resolved after resolve_after
    advance(h, 20)
    assert h.gateway.tick().silenced == 1
    am.alerts = []
    resolved = 0
    for _ in range(6):
        advance(h, 20)
        resolved += h.gateway.tick().silenced_resolved
    assert resolved == 1
    assert h.alerts()[0]["state"] == "resolved"


EXPORTER_DOWN = {"alertname": "LLMCostExporterDown", "severity": "critical", "job": "llmcost", "instance": "a:9800"}
STALLED = {"alertname": "LLMCostIngestStalled", "severity": "warning", "job": "llmcost", "instance": "a:9800"}


def test_a_firing_alert_inhibited_in_alertmanager_is_held_like_a_silenced_one(h: Harness, am: FakeAlertmanager) -> None:
    """An inhibit rule mutes a warning llmcost was told of: held by the critical alert, until it ends."""
    stalled = am_alert("LLMCostIngestStalled", labels={"job": "llmcost", "instance": "a:9800"})
    stalled["labels"].pop("project")
    assert h.post_alertmanager(am_payload([stalled])).status_code == 200
    h.gateway.deliver_pending()
    (alert,) = h.alerts()
    am.alerts, am.inhibited_by, am.inhibitors = [STALLED], ["6d60a45728608aab"], {"6d60a45728608aab": EXPORTER_DOWN}
    assert h.gateway.tick().silenced == 1
    (alert,) = h.alerts()
    assert alert["state"] == "firing"
    assert alert["silenced"] == {
        "silence_id": "inhibited:6d60a45728608aab",
        "by": "LLMCostExporterDown",
        "comment": "inhibited by LLMCostExporterDown {instance=a:9800, job=llmcost, severity=critical}",
        "ends_at": None,
    }
    history = h.admin("GET", f"/v1/alerts/{alert['id']}").json()["history"]
    assert history[-1]["action"] == "inhibited" and history[-1]["by"] == "LLMCostExporterDown"
    assert h.metric("llm_alerts_active", alertname="LLMCostIngestStalled", state="acknowledged") == 1
    assert h.metric("llm_alerts_active", alertname="LLMCostIngestStalled", state="firing") == 0
    for _ in range(3):  # past repeat_interval (4 h), several times: no reminder, nothing asked again
        advance(h, 4 * 3600)
        result = h.gateway.tick()
        assert (result.repeats, result.silenced, result.unsilenced) == (0, 0, 0)
    assert am.calls("GET", "/api/v2/silence/") == []  # an inhibition has no silence to read
    assert am.calls("POST", "/api/v2/silences") == [] and am.calls("DELETE", "/api/v2/silence") == []

    am.inhibited_by = []  # the critical alert ended; Alertmanager still holds the warning: reminded again
    advance(h, 20)
    assert h.gateway.tick().unsilenced == 1
    assert h.alerts()[0]["silenced"] is None
    history = h.admin("GET", f"/v1/alerts/{alert['id']}").json()["history"]
    assert history[-1]["action"] == "uninhibited"
    advance(h, 20)
    assert h.gateway.tick().repeats == 1

    am.inhibited_by = ["6d60a45728608aab"]  # inhibited again, then it ends: resolved once after resolve_after
    advance(h, 20)
    assert h.gateway.tick().silenced == 1
    am.alerts = []
    resolved = 0
    for _ in range(6):
        advance(h, 20)
        resolved += h.gateway.tick().silenced_resolved
    assert resolved == 1
    assert h.alerts()[0]["state"] == "resolved"


def test_a_firing_alert_both_silenced_and_inhibited_is_shown_with_its_silence(h: Harness, am: FakeAlertmanager) -> None:
    assert h.post_alertmanager(am_payload([am_alert(severity="critical")])).status_code == 200
    am.alerts, am.silenced_by, am.inhibited_by = [SPIKE_LABELS], ["hand-1"], ["0123456789abcdef"]
    assert h.gateway.tick().silenced == 1
    assert h.alerts()[0]["silenced"]["silence_id"] == "hand-1"  # who, why and until when say more


def test_an_inhibiting_alert_alertmanager_no_longer_lists_is_named_by_its_fingerprint(
    h: Harness, am: FakeAlertmanager
) -> None:
    assert h.post_alertmanager(am_payload([am_alert(severity="critical")])).status_code == 200
    am.alerts, am.inhibited_by = [SPIKE_LABELS], ["0123456789abcdef"]  # ended between the two requests
    assert h.gateway.tick().silenced == 1
    shown = h.alerts()[0]["silenced"]
    assert (shown["silence_id"], shown["by"]) == ("inhibited:0123456789abcdef", "")
    assert "0123456789abcdef" in shown["comment"]


def test_an_earlier_budget_level_inhibited_by_the_level_reached_does_not_hold_the_alert(
    h: Harness, am: FakeAlertmanager
) -> None:
    """The shipped inhibit rule mutes a budget's warning while its critical fires: the same alert in llmcost."""
    pushed = {**BUDGET_LABELS, "llmcost_origin": "llmcost"}
    critical = am_alert("LLMBudgetCritical", labels=pushed, severity="critical")
    assert h.post_alertmanager(am_payload([critical])).status_code == 200
    # The warning's resolve has not reached Alertmanager yet: it lists it, inhibited by the critical.
    am.alerts = [{**pushed, "project": "search", "alertname": "LLMBudgetWarning", "severity": "warning"}]
    am.inhibited_by = ["0123456789abcdef"]
    am.inhibitors = {"0123456789abcdef": {**critical["labels"]}}
    for _ in range(3):
        assert h.gateway.tick().silenced == 0
        advance(h, 20)
    (alert,) = h.alerts()
    assert (alert["alertname"], alert["silenced"]) == ("LLMBudgetCritical", None)
