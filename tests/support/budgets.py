"""What the budget tests share: a stand-in for the gateway, the services built on a store, calls to ingest.

Used by `tests/alerting/test_budget_*.py`; the budgets `DAILY`, `PER_PROJECT` and `SEARCH_REQUESTS` are the
usual definitions there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetService
from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from alerting.model import fingerprint
from alerting.push.sink import AlertmanagerSink
from exporter.config import Config
from exporter.services import Services
from llmcost.services import open_services
from tests.support.clock import FakeClock
from tests.support.helpers import make_config

# Wednesday 2026-11-11 12:00 UTC
NOON = datetime(2026, 11, 11, 12, 0, tzinfo=UTC).timestamp()
ADMIN = "admin-token-0123456789ab"
CONFIG_REF = "/etc/llmcost/test.yml"
INGEST = "ingest-token-0123456789"


class RecordingSink:
    """Stands in for the gateway: remembers what is active, one alert per fingerprint as the gateway does
    (so a budget instance's levels are one alert whose name follows the level)."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {}
        self.fired: list[tuple[str, dict[str, str], str]] = []
        self.changed: list[tuple[str, dict[str, str], str]] = []
        self.resolved: list[tuple[str, dict[str, str]]] = []

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> None:
        fp = fingerprint(alertname, labels)
        if fp not in self.active:
            self.fired.append((alertname, dict(labels), severity))
        elif self.active[fp][0] != alertname:
            self.changed.append((alertname, dict(labels), severity))
        self.active[fp] = (alertname, dict(labels), dict(annotations))

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> None:
        found = self.active.pop(fingerprint(alertname, labels), None)
        if found is not None:
            self.resolved.append((found[0], dict(labels)))

    def active_labels(self, alertnames: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
        names = set(alertnames)
        return [(name, dict(labels)) for name, labels, _ in self.active.values() if name in names]

    def names(self) -> set[str]:
        return {name for name, _, _ in self.active.values()}

    def annotations(self, alertname: str, labels: Mapping[str, str]) -> dict[str, str]:
        name, _, annotations = self.active[fingerprint(alertname, labels)]
        assert name == alertname
        return annotations


def build(
    db_url: str, budgets: list[dict[str, Any]], clock: FakeClock, **raw: Any
) -> tuple[Services, BudgetService, RecordingSink]:
    config = make_config(db_url, budgets=budgets, **raw)
    services = open_services(config, clock=clock)
    sink = RecordingSink()
    problems: list[str] = []
    section = parse_budgets_section(budgets, problems)
    service = BudgetService(services.store, section, sink=sink, clock=clock)
    service.apply_config(section.items, origin_ref=CONFIG_REF)
    assert not problems
    return services, service, sink


@contextmanager
def budgets_on_gateway(
    db_url: str, budgets: list[dict[str, Any]], clock: FakeClock, gateway_config: Config
) -> Iterator[tuple[Services, BudgetService, GatewayService]]:
    """`build`, with the budgets' alerts going to a real gateway on `gateway_config` (no workers: the test
    calls `deliver_pending`); both are closed at the end."""
    services, service, _recorder = build(db_url, budgets, clock)
    gateway = GatewayService(services.store, settings_from_config(gateway_config), clock=clock, start_workers=False)
    service.sink = GatewaySink(gateway)
    try:
        yield services, service, gateway
    finally:
        gateway.close()
        services.close()


def call(rid: str, ts: float, cost: float, project: str = "search", **kw: Any) -> tuple[int, dict[str, Any]]:
    event = {
        "request_id": rid,
        "timestamp": ts,
        "provider": "openai",
        "model": "gpt-4o",
        "project": project,
        "cost_usd": cost,
        "input_tokens": 100,
        "output_tokens": 10,
    }
    event.update(kw)
    return (0, event)


def ingest(services: Services, *records: tuple[int, dict[str, Any]]) -> None:
    out = services.pipeline.ingest(list(records))
    assert not out.rejected, out.rejected


DAILY = {"name": "daily", "scope": "global", "period": "daily", "limit": 100.0}
PER_PROJECT = {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 50.0}
SEARCH_REQUESTS = {
    "name": "search-requests",
    "scope": "project",
    "key": "search",
    "period": "hourly",
    "unit": "requests",
    "limit": 3,
    "mode": "hard",
}


def alertmanager_sink(services: Services, gateway: GatewayService, clock: FakeClock) -> AlertmanagerSink:
    """The push sink as `alertmanager:` wires it, pushing nowhere (tests read `pushed()` or the gateway)."""
    return AlertmanagerSink(
        services.store,
        gateway,
        wake=lambda: None,
        generator_url=lambda _name, _labels: "http://llmcost.test/v1/alerts",
        runbook_url=lambda _name: "http://llmcost.test/runbook",
        clock=clock,
    )
