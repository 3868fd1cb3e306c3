"""One per-project budget whose instances reach PagerDuty as a grouped incident (gateway tests only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alerting.gateway.lifecycle import AlertInput
from alerting.model import Severity
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers

ROUTES = {"info": [], "warning": ["slack", "email", "pagerduty"], "critical": ["slack", "email", "pagerduty"]}
"""Every channel from warning up, so a warning already reaches PagerDuty."""
SEVERITY: dict[str, Severity] = {"LLMBudgetWarning": "warning", "LLMBudgetCritical": "critical"}
FIRST_KEYS = [f"p{i}" for i in range(5)]
"""The projects that cross first, together: enough to be grouped."""
LABELS = {"budget": "per-project", "scope": "project"}


@contextmanager
def grouped_harness(db: str, rx: Receivers, clock: FakeClock) -> Iterator[Harness]:
    """The gateway harness with `ROUTES`, PagerDuty's incidents kept on the test's clock."""
    rx.pagerduty.clock = clock
    with Harness(db, rx, clock=clock, routes=ROUTES) as harness:
        yield harness


def instances(level: str, keys: list[str]) -> list[AlertInput]:
    """The alerts one budget pass raises for these projects of the per-project budget."""
    return [
        AlertInput(
            alertname=level,
            labels={**LABELS, "key": key},
            severity=SEVERITY[level],
            annotations={"summary": f"{level} for {key}"},
        )
        for key in keys
    ]


def grouped_warnings(h: Harness, rx: Receivers, clock: FakeClock) -> str:
    """The `FIRST_KEYS` cross warning in one pass: one grouped incident; returns its dedup_key."""
    h.gateway.fire_many(instances("LLMBudgetWarning", FIRST_KEYS))
    h.gateway.deliver_pending()
    [incident] = rx.pagerduty.pages
    assert incident.dedup_key.startswith("llmcost-group-")
    clock.advance(120)
    return incident.dedup_key


def states(h: Harness) -> dict[str, tuple[str, str | None]]:
    """Each project's alert state and who acknowledged it."""
    return {a["labels"]["key"]: (a["state"], a["acknowledged_by"]) for a in h.alerts()}
