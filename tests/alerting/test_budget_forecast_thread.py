"""A budget's forecast and its levels, as the person on call receives them: one problem, one thread per channel.

A daily budget on course to overrun raises `LLMBudgetForecastOverrun` (warning) hours before any threshold;
later its spend crosses warning, then its limit. That is one problem about one budget in one period.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetService
from alerting.gateway.config import settings_from_config
from alerting.gateway.service import GatewayService
from exporter.services import Services
from exporter.store.engine import create_store_engine
from tests.support.budgets import CONFIG_REF, DAILY, alertmanager_sink, budgets_on_gateway, build, call, ingest
from tests.support.clock import FakeClock
from tests.support.gateway_harness import Harness, Receivers, gateway_config
from tests.support.legacy_schema import T0, build_legacy_store, legacy_alert

MIDNIGHT = datetime(2026, 11, 11, tzinfo=UTC).timestamp()
ROUTES = {"info": [], "warning": ["slack"], "critical": ["slack", "pagerduty"]}


def on_course_to_overrun(services: Services, clock: FakeClock) -> None:
    """$6 an hour for two days and this morning: $36 by 06:00, on course for ~$144 of the $100 daily limit."""
    ingest(services, *[call(f"h{i}", clock.now - 60 - i * 300, 0.5) for i in range(54 * 12)])


@pytest.fixture
def stack(db: str, rx: Receivers, clock: FakeClock) -> Iterator[tuple[Services, BudgetService, GatewayService]]:
    rx.pagerduty.clock = clock
    clock.set(MIDNIGHT + 6 * 3600)
    config = gateway_config(db, rx, channels=("slack", "pagerduty"), routes=ROUTES)
    with budgets_on_gateway(db, [DAILY], clock, config) as stack:
        yield stack


def test_forecast_then_warning_then_exceeded_is_one_slack_thread_and_one_incident(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    services, budgets, gateway = stack
    on_course_to_overrun(services, clock)
    budgets.evaluate()
    gateway.deliver_pending()
    assert [a.alertname for a in gateway.alerts("firing")] == ["LLMBudgetForecastOverrun"]
    assert len(rx.slack.posted) == 1
    clock.advance(600)
    ingest(services, call("big", clock.now - 30, 50.0))  # 86 %: warning
    budgets.evaluate()
    gateway.deliver_pending()
    clock.advance(600)
    ingest(services, call("bigger", clock.now - 30, 20.0))  # 106 %: exceeded
    budgets.evaluate()
    gateway.deliver_pending()
    assert len(rx.slack.posted) == 1, "the warning opened a second Slack thread beside the forecast's"
    [alert] = gateway.alerts()
    assert (alert.alertname, alert.state) == ("LLMBudgetExceeded", "firing")
    # Each rise is a reply in the forecast's thread (an edit alone notifies nobody); nothing said resolved.
    assert len(rx.slack.replies) == 2
    assert all(r["thread_ts"] == rx.slack.posted[0]["ts"] for r in rx.slack.replies)
    assert "RESOLVED" not in " ".join(str(u.payload.get("text", "")) for u in rx.slack.calls("chat.update")).upper()
    assert len(rx.pagerduty.pages) == 1 and rx.pagerduty.pages[0].status == "triggered"


def test_a_forecast_says_by_when_and_over_which_limit(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    # It read "Budget daily is projected to reach $143.xx of $100.00" (of?), with "projected 143.912345"
    # and "period ends 2026-11-12T00:00:00Z" beside it: no deadline in the headline, no units in the figures.
    services, budgets, gateway = stack
    on_course_to_overrun(services, clock)
    budgets.evaluate()
    gateway.deliver_pending()
    [message] = rx.slack.posted
    shown = json.dumps(message["blocks"])
    assert re.search(
        r"Budget daily is projected to reach \$1\d\d\.\d\d by 2026-11-12 00:00 UTC, over its \$100.00 limit", shown
    )
    assert "Daily budget for all usage: $36.00 spent of $100.00 since 2026-11-11 00:00 UTC; projected $1" in shown
    assert "*limit*\\n$100.00 (daily)" in shown and "*ratio*\\n36%" in shown, shown


def test_a_forecast_that_falls_back_resolves_in_its_own_thread(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    services, budgets, gateway = stack
    on_course_to_overrun(services, clock)
    budgets.evaluate()
    gateway.deliver_pending()
    assert [a.alertname for a in gateway.alerts("firing")] == ["LLMBudgetForecastOverrun"]
    problems: list[str] = []
    raised = parse_budgets_section([{**DAILY, "limit": 500.0}], problems)  # $144 is fine now
    budgets.apply_config(raised.items, origin_ref=CONFIG_REF)
    budgets.evaluate()
    gateway.deliver_pending()
    assert gateway.alerts("firing") == []
    assert len(rx.slack.posted) == 1 and rx.pagerduty.events == []
    [resolved] = [u.payload for u in rx.slack.calls("chat.update") if "RESOLVED" in str(u.payload.get("text", ""))]
    assert resolved["ts"] == rx.slack.posted[0]["ts"]


def test_a_forecast_that_falls_back_to_info_is_resolved_not_kept_as_the_info_level(
    stack: tuple[Services, BudgetService, GatewayService], rx: Receivers, clock: FakeClock
) -> None:
    # Levels only rise within a period, the forecast can fall back below them: its thread (a warning
    # telling of an overrun) must say resolved, not stay firing relabelled as info, and the Alertmanager
    # path (which drops a report of a lower level) must not end with a different alert than this one.
    services, budgets, gateway = stack
    on_course_to_overrun(services, clock)
    budgets.evaluate()
    gateway.deliver_pending()
    [forecast] = gateway.alerts("firing")
    assert forecast.alertname == "LLMBudgetForecastOverrun"
    problems: list[str] = []
    # $36 of $300 is over a 10 % info threshold; the ~$144 projected is no overrun any more.
    lowered = {**DAILY, "limit": 300.0, "thresholds": {"info": 0.1, "warning": 0.8, "critical": 0.95}}
    budgets.apply_config(parse_budgets_section([lowered], problems).items, origin_ref=CONFIG_REF)
    assert problems == []
    budgets.evaluate()
    gateway.deliver_pending()
    assert [a.alertname for a in gateway.alerts("firing")] == ["LLMBudgetInfo"]
    assert gateway.alert(forecast.id).state == "resolved"
    assert len(rx.slack.posted) == 1
    [resolved] = [u.payload for u in rx.slack.calls("chat.update") if "RESOLVED" in str(u.payload.get("text", ""))]
    assert resolved["ts"] == rx.slack.posted[0]["ts"]


def test_through_alertmanager_a_forecast_that_falls_back_to_info_is_resolved_and_info_is_new(
    db: str, clock: FakeClock
) -> None:
    clock.set(MIDNIGHT + 6 * 3600)
    services, budgets, _recorder = build(db, [DAILY], clock)
    gateway = GatewayService(services.store, settings_from_config(services.config), clock=clock, start_workers=False)
    budgets.sink = alertmanager_sink(services, gateway, clock)
    labels = {"budget": DAILY["name"], "scope": DAILY["scope"]}  # as Alertmanager has them: no empty `key`
    try:
        on_course_to_overrun(services, clock)
        budgets.evaluate()
        forecast = gateway.fire("LLMBudgetForecastOverrun", labels, severity="warning", source="alertmanager")
        assert forecast.alert is not None and forecast.alert.state == "firing"
        lowered = {**DAILY, "limit": 300.0, "thresholds": {"info": 0.1, "warning": 0.8, "critical": 0.95}}
        problems: list[str] = []
        budgets.apply_config(parse_budgets_section([lowered], problems).items, origin_ref=CONFIG_REF)
        clock.advance(60)
        budgets.evaluate()
        # Alertmanager then delivers the info level: a new alert, not a report of a lower level dropped.
        info = gateway.fire("LLMBudgetInfo", labels, severity="info", source="alertmanager")
        assert info.alert is not None and info.alert.id != forecast.alert.id
        assert gateway.alert(forecast.alert.id).state == "resolved"
        assert [a.alertname for a in gateway.alerts("firing")] == ["LLMBudgetInfo"]
    finally:
        gateway.close()
        services.close()


def test_a_fallen_forecast_is_not_resolved_once_the_spend_read_again_calls_for_a_higher_level(
    stack: tuple[Services, BudgetService, GatewayService], clock: FakeClock
) -> None:
    # Between the evaluation's look at the open alerts and its resolve of a forecast that fell back, an
    # ingest may raise the instance's one alert to warning: through Alertmanager, resolving the forecast
    # then would end that alert's row (the family's), so the spend read again must not call for more.
    services, budgets, _gateway = stack
    ingest(services, call("big", clock.now - 30, 90.0))  # 90 %: critical, above the forecast
    labels = {"budget": DAILY["name"], "scope": DAILY["scope"], "key": ""}
    fallen = [("LLMBudgetForecastOverrun", labels)]
    assert budgets.alerts._still_unwanted(budgets.definitions(), fallen, clock.now, fallen=True) == []


SEARCH = {"budget": "per-project-daily", "key": "search", "scope": "project"}
CHAT = {"budget": "per-project-daily", "key": "chat", "scope": "project"}


def test_an_upgraded_store_keeps_one_open_alert_per_instance(db_url: str, rx: Receivers, clock: FakeClock) -> None:
    """A store from before the forecast was a level holds forecast alerts under their own fingerprint: `search`
    with a forecast and a warning open (two Slack messages), `chat` with a forecast only. After the upgrade
    each instance has one open alert, the highest; the superseded forecast's message says resolved."""
    build_legacy_store(db_url, "0004_scheduler")
    engine = create_store_engine(db_url)
    try:
        ids = {}
        for n, (name, labels) in enumerate(
            [("LLMBudgetForecastOverrun", SEARCH), ("LLMBudgetWarning", SEARCH), ("LLMBudgetForecastOverrun", CHAT)],
            start=1,
        ):
            slack = {"channel": "C123", "ts": f"1600000000.{n:06d}"}
            ids[(name, labels["key"])] = legacy_alert(
                engine, name, labels, severity="warning", at=T0 + n, channels={"slack": slack}
            )
    finally:
        engine.dispose()
    with Harness(db_url, rx, clock=clock) as h:
        clock.set(time.time() + 1)  # the upgrade ran on the wall clock: its resolves are due from then
        still_open = {(a["id"], a["alertname"]) for a in h.alerts() if a["state"] != "resolved"}
        assert still_open == {
            (ids[("LLMBudgetWarning", "search")], "LLMBudgetWarning"),
            (ids[("LLMBudgetForecastOverrun", "chat")], "LLMBudgetForecastOverrun"),
        }
        h.gateway.deliver_pending()
        assert [json.loads(r.body)["ts"] for r in rx.slack.calls("chat.update")] == ["1600000000.000001"]
        # The next evaluation reaches the kept alerts: nothing new opens.
        again = h.gateway.fire("LLMBudgetForecastOverrun", CHAT, severity="warning", annotations={"summary": "x"})
        assert again.alert is not None and again.alert.id == ids[("LLMBudgetForecastOverrun", "chat")]
        rose = h.gateway.fire("LLMBudgetWarning", CHAT, severity="warning", annotations={"summary": "at 81%"})
        assert rose.alert is not None and rose.alert.id == again.alert.id
        h.gateway.deliver_pending()
        assert rx.slack.posted == []  # every later message went to the threads people already had
