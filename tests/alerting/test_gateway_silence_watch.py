"""`silence_on_ack` against a scripted Alertmanager, on the fake clock: what the silence matches.

The same behaviour against the real Alertmanager binary: `tests/e2e/test_alertmanager_ack_silence.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.gateway.silences import held_levels
from tests.support.clock import FakeClock
from tests.support.gateway_harness import BUDGET_LABELS, Harness, Receivers, am_alert, am_payload
from tests.support.recording_servers import RecordedRequest, RecordingServer, Response


class FakeAlertmanager(RecordingServer):
    """Creates silences like API v2."""

    def __init__(self) -> None:
        super().__init__()
        self._ids = iter(range(1, 1_000_000))
        self._lock_ids = threading.Lock()

    def default_response(self, request: RecordedRequest) -> Response:
        if request.method == "POST" and request.path == "/api/v2/silences":
            with self._lock_ids:
                return Response(200, {}, {"silenceID": f"sil-{next(self._ids)}"})
        return Response(200, {}, {})

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]


@pytest.fixture
def am() -> Iterator[FakeAlertmanager]:
    with FakeAlertmanager() as server:
        yield server


@pytest.fixture
def h(sqlite_url: str, rx: Receivers, am: FakeAlertmanager) -> Iterator[Harness]:
    alerting = {"alertmanager": {"url": am.url, "silence_on_ack": True}}
    with Harness(sqlite_url, rx, clock=FakeClock(), alerting=alerting) as harness:
        yield harness


def acknowledged_and_silenced(h: Harness, am: FakeAlertmanager, alert: dict[str, Any]) -> int:
    """Post `alert` as Alertmanager's webhook, acknowledge it, deliver: its silence exists."""
    assert h.post_alertmanager(am_payload([alert])).status_code == 200
    h.gateway.deliver_pending()
    (row,) = [a for a in h.alerts() if a["alertname"] == alert["labels"]["alertname"]]
    assert h.admin("POST", f"/v1/alerts/{row['id']}/ack", json={"by": "alice"}).status_code == 200
    h.gateway.deliver_pending()
    assert len(am.calls("POST", "/api/v2/silences")) == 1
    return int(row["id"])


def matchers_of(request: RecordedRequest) -> dict[str, tuple[str, bool]]:
    return {m["name"]: (m["value"], m["isRegex"]) for m in request.json["matchers"]}


def test_the_silence_of_a_budget_level_covers_the_levels_the_ack_holds_for(h: Harness, am: FakeAlertmanager) -> None:
    pushed = {**BUDGET_LABELS, "llmcost_origin": "llmcost"}
    acknowledged_and_silenced(h, am, am_alert("LLMBudgetCritical", labels=pushed, severity="critical"))
    (create,) = am.calls("POST", "/api/v2/silences")
    assert matchers_of(create) == {
        "alertname": ("LLMBudgetInfo|LLMBudgetWarning|LLMBudgetCritical|LLMBudgetExceeded", True),
        "budget": ("team-a-monthly", False),
        "key": ("team-a", False),
        "project": ("search", False),  # what `am_alert` adds to every alert
        "scope": ("project", False),
    }


def test_an_ack_below_critical_does_not_silence_the_critical_levels_which_page() -> None:
    assert held_levels("LLMBudgetInfo", "info") == ["LLMBudgetInfo", "LLMBudgetWarning"]
    assert held_levels("LLMBudgetWarning", "warning") == ["LLMBudgetInfo", "LLMBudgetWarning"]
    every = ["LLMBudgetInfo", "LLMBudgetWarning", "LLMBudgetCritical", "LLMBudgetExceeded"]
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
