"""Spike alerts raised while a detection pass is under way: the pass must not resolve what it never saw.

A pass (the scheduler leader's spike job) reads the stored spike state, then resolves the alerts of the
series whose spike it finds over. If it stalls in between (SIGSTOP, a long GC pause) a new leader may
resolve that spike and raise the next one. Resolving the new alert from the stale state would send a
resolve, and the next pass would open another alert for the same spike: a second Slack thread (and, routed
to PagerDuty, a second incident) for one problem. Same race, same fix as `test_budget_alert_races.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select

from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from alerting.gateway.sink import GatewaySink
from alerting.gateway.tables import alerts, notification_outbox
from alerting.spikes import SpikeService, SpikeSettings
from alerting.store import open_store
from tests.support.clock import FakeClock
from tests.support.helpers import make_config
from tests.support.spikes import D0, NOW, spike, usual_spend

MINUTE = 60
PROJECT = SpikeSettings(series=(("project",),))
SLACK = {
    "slack": {"token": "xoxb-test", "channel": "#llm-cost", "api_url": "http://127.0.0.1:9/api/"},
    "routes": {"warning": ["slack"], "critical": ["slack"]},
}


class StallingSink:
    """The gateway sink of a leader that stalls just before its first resolve reaches the gateway.

    `meanwhile` runs at that point: what other processes do while this one is stopped.
    """

    def __init__(self, inner: GatewaySink, meanwhile: Callable[[], None]) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], None] | None = meanwhile

    def fire(self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str) -> Any:
        return self.inner.fire(alertname, labels, annotations, severity)

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> Any:
        self._stall()
        return self.inner.resolve(alertname, labels)

    def resolve_many(self, items: Any, *, started_by: float | None = None, **given: Any) -> Any:
        self._stall()
        return self.inner.resolve_many(items, started_by=started_by, **given)  # with the reasons the pass gives

    def active_labels(self, alertnames: Any) -> list[tuple[str, dict[str, str]]]:
        return self.inner.active_labels(alertnames)

    def _stall(self) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()


def _spike_rows(db_url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    store = open_store(db_url)
    try:
        with store.reading() as conn:
            rows = conn.execute(select(alerts.c.id, alerts.c.state).order_by(alerts.c.id)).all()
            sent = conn.execute(
                select(notification_outbox.c.alert_id, notification_outbox.c.kind).order_by(notification_outbox.c.id)
            ).all()
        return [tuple(r) for r in rows], [tuple(s) for s in sent]
    finally:
        store.close()


def _race(db_url: str, clock: FakeClock, *, next_pass: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Spike 1 fires; a stalled leader's pass finds it over; meanwhile a new leader resolves it and fires
    spike 2; the stalled pass then goes on; a last pass runs at `next_pass`. Returns alerts and outbox."""
    store = open_store(db_url)
    usual_spend(store, D0, NOW + 4 * 3600)
    spike(store)  # spike 1: the 30 minutes before NOW
    spike(store, NOW + 60 * MINUTE, NOW + 90 * MINUTE)  # spike 2, an hour later
    gateway = GatewayService(
        store, settings_from_config(make_config(db_url, notifications=SLACK)), clock=clock, start_workers=False
    )
    sink = GatewaySink(gateway)
    new_leader = SpikeService(open_store(db_url), PROJECT, sink, clock=clock)

    def new_leader_takes_over() -> None:
        clock.set(NOW + 46 * MINUTE)
        assert new_leader.evaluate().resolved == [{"group": "project", "project": "a"}]  # spike 1 is over
        clock.set(NOW + 90 * MINUTE)
        assert new_leader.evaluate().fired == [{"group": "project", "project": "a"}]  # spike 2 begins

    stalled = SpikeService(store, PROJECT, StallingSink(sink, new_leader_takes_over), clock=clock)
    try:
        clock.set(NOW)
        assert stalled.evaluate().fired == [{"group": "project", "project": "a"}]  # spike 1
        clock.set(NOW + 45 * MINUTE)
        stalled.evaluate()  # reads "firing", finds spike 1 over, stalls, then resolves on stale state
        clock.set(next_pass)
        new_leader.evaluate()
        return _spike_rows(db_url)
    finally:
        gateway.close()
        new_leader.store.close()
        store.close()


def test_a_spike_alert_raised_after_the_pass_read_the_state_is_not_resolved_by_it(
    db_url: str, clock: FakeClock
) -> None:
    rows, outbox = _race(db_url, clock, next_pass=NOW + 91 * MINUTE)  # spike 2 still on
    assert [state for _, state in rows] == ["resolved", "firing"], "spike 2 is one alert, never resolved"
    first, second = (alert_id for alert_id, _ in rows)
    assert outbox == [(first, "firing"), (first, "resolved"), (second, "firing")], "one Slack thread per spike"


def test_a_spike_alert_left_alone_by_a_stale_pass_still_resolves_when_its_spike_ends(
    db_url: str, clock: FakeClock
) -> None:
    # The stale pass stored "not firing" for the series; the next pass must still end spike 2's alert.
    rows, outbox = _race(db_url, clock, next_pass=NOW + 135 * MINUTE)  # spike 2 is over
    assert [state for _, state in rows] == ["resolved", "resolved"]
    first, second = (alert_id for alert_id, _ in rows)
    assert outbox == [(first, "firing"), (first, "resolved"), (second, "firing"), (second, "resolved")]
