"""Budget alerts on real SQLite and PostgreSQL: thresholds fire on ingest and resolve next period; forecasts
wait for enough history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.budgets import DAILY, NOON, build, call, ingest
from tests.support.clock import FakeClock


def test_threshold_alerts_fire_right_after_the_ingest_and_resolve_next_period(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, sink = build(db_url, [DAILY], clock)
    ingest(services, call("a", NOON - 5, 40.0))
    assert sink.fired == []
    ingest(services, call("b", NOON - 4, 45.0))  # 85 %: warning, immediately, without a scheduler tick
    assert [(n, s) for n, _, s in sink.fired] == [("LLMBudgetWarning", "warning")]
    assert sink.fired[0][1] == {"budget": "daily", "scope": "global", "key": ""}
    ingest(services, call("c", NOON - 3, 20.0))  # 105 %: past critical to exceeded
    assert sink.names() == {"LLMBudgetExceeded"}  # the same alert, now named after the level reached
    assert [(n, s) for n, _, s in sink.changed] == [("LLMBudgetExceeded", "critical")]
    labels = {"budget": "daily", "scope": "global", "key": ""}
    annotations = sink.annotations("LLMBudgetExceeded", labels)
    assert annotations["summary"] == "Budget daily is at 105% ($105.00 of $100.00)"
    budgets.evaluate()
    assert len(sink.fired) == 1 and len(sink.changed) == 1  # evaluation finds nothing new
    clock.now = NOON + 86400  # a new day: nothing spent yet, everything resolves
    budgets.evaluate()
    assert sink.names() == set()
    assert sink.resolved == [("LLMBudgetExceeded", labels)]
    services.close()


def test_a_fresh_store_with_one_expensive_call_raises_no_forecast(db_url: str, clock: FakeClock) -> None:
    """The reported case: one $21 call projected weekly and yearly budgets far past their limits."""
    clock.set(NOON)  # Wednesday noon: half the day, a third of the week gone
    periods = ("daily", "weekly", "monthly", "yearly")
    defs = [{"name": p, "scope": "global", "period": p, "limit": 100} for p in periods]
    services, budgets, sink = build(db_url, defs, clock)
    ingest(services, call("one", NOON - 60, 21.0))
    budgets.evaluate()
    clock.now = NOON + 3600  # an hour later, nothing new: still one call's worth of evidence
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" not in sink.names()
    for period in periods:
        status = budgets.status(period)
        assert status["projection"] == "insufficient history", period
        assert status["projected"] == pytest.approx(21.0), period  # spend so far, not a guess
    services.close()


def test_a_forecast_needs_a_full_day_of_history_for_a_daily_budget(db_url: str, clock: FakeClock) -> None:
    start = datetime(2026, 11, 11, 0, 0, tzinfo=UTC).timestamp()
    clock.set(start + 12 * 3600)
    # Warning at 90 %: by 17:00 the day is at 86 %, so the budget's one alert is the forecast, not the level.
    late_warning = {**DAILY, "thresholds": {"info": 0.5, "warning": 0.9, "critical": 0.95}}
    services, budgets, sink = build(db_url, [late_warning], clock)
    # ~$5 an hour since 20 hours ago: on course for ~$121 of $100 today, but under a day of history.
    ingest(services, *[call(f"h{i}", clock.now - 60 - i * 300, 0.42) for i in range(20 * 12)])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" not in sink.names()
    assert budgets.status("daily")["projection"] == "insufficient history"
    clock.now += 5 * 3600  # the same pace for five more hours: a full day of history now
    ingest(services, *[call(f"n{i}", clock.now - 60 - i * 300, 0.42) for i in range(5 * 12)])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" in sink.names()
    assert budgets.status("daily")["projection"] in ("shape", "recent rate")
    services.close()


def test_forecast_alert_waits_for_the_period_to_be_under_way(db_url: str, clock: FakeClock) -> None:
    start = datetime(2026, 11, 11, 0, 0, tzinfo=UTC).timestamp()
    clock.set(start + 3600)  # 4 % of the day
    services, budgets, sink = build(db_url, [DAILY], clock)
    # $6 an hour, steadily, for the last three days and this first hour: ~$144 by midnight.
    records = [call(f"h{i}", start - i * 300, 0.5) for i in range(-11, 3 * 288)]
    ingest(services, *[r for r in records if r[1]["timestamp"] < clock.now])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" not in sink.names()
    clock.now = start + 4 * 3600
    ingest(services, *[call(f"n{i}", start + 3600 + i * 300, 0.5) for i in range(36)])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" in sink.names()
    assert budgets.status("daily")["projected"] == pytest.approx(144, rel=0.1)
    services.close()


def test_a_one_request_budget_alert_says_request_not_requests(db_url: str, clock: FakeClock) -> None:
    # The summary read "Budget edge is at 100% (1 requests of 1 requests)", where the budget check
    # answers "1 request": the alert now words amounts as the check does.
    clock.set(NOON)
    edge = {"name": "edge", "scope": "global", "period": "daily", "unit": "requests", "limit": 1}
    pair = {**edge, "name": "pair", "limit": 2, "thresholds": {"info": 0.2, "warning": 0.5, "critical": 0.9}}
    services, _budgets, sink = build(db_url, [edge, pair], clock)
    ingest(services, call("a", NOON - 5, 0.01))
    edge_alert = sink.annotations("LLMBudgetExceeded", {"budget": "edge", "scope": "global", "key": ""})
    assert edge_alert["summary"] == "Budget edge is at 100% (1 request of 1 request)"
    pair_alert = sink.annotations("LLMBudgetWarning", {"budget": "pair", "scope": "global", "key": ""})
    assert pair_alert["summary"] == "Budget pair is at 50% (1 request of 2 requests)"
    services.close()


def test_one_big_call_early_in_the_month_is_not_projected_as_a_weekly_rate(db_url: str, clock: FakeClock) -> None:
    """A $720-a-month series ($1 an hour, for weeks) gets one $300 call on the 3rd. The call is real spend,
    but one call is no rate: extrapolated over the week-long level window it projected $2,198 of $1,500
    and raised a forecast alert that stayed for seven days. At the rate the call does not change, the
    month comes to ~$1,020; the same $300 spread over the day's hours is a rate, and forecasts."""
    month = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    clock.set(month + 2.5 * 86400)  # Nov 3rd, 12:00: 8 % of the month gone
    monthly = {"name": "monthly", "scope": "global", "period": "monthly", "limit": 1500.0}
    services, budgets, sink = build(db_url, [monthly], clock)
    hourly = [call(f"h{i}", clock.now - 1800 - i * 3600, 1.0) for i in range(14 * 24)]
    ingest(services, *hourly, call("big", clock.now - 600, 300.0))
    budgets.evaluate()
    status = budgets.status("monthly")
    assert status["projection"] == "shape"
    assert status["projected"] == pytest.approx(1020, rel=0.05)
    assert "LLMBudgetForecastOverrun" not in sink.names()
    clock.now += 24 * 3600  # a day later, nothing but the usual $1 an hour: still no forecast
    ingest(services, *[call(f"n{i}", clock.now - 1800 - i * 3600, 1.0) for i in range(24)])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" not in sink.names()
    # The same money as $12.50 an hour all day is a rate: on course for far past the limit.
    ingest(services, *[call(f"r{i}", clock.now - 1700 - i * 3600, 12.5) for i in range(24)])
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" in sink.names()
    services.close()


def test_a_forecast_raised_by_a_burst_resolves_hours_after_the_burst_not_a_week(db_url: str, clock: FakeClock) -> None:
    """A $1,000 month at ~$10 a day for weeks, then a $300 batch job over four hours, then ~$10 a day again.
    The projection's level was the rate over the last 7 days, so the forecast read ~$1,500 and stayed up
    for the week the job stayed in that window (until Nov 15th), though the month ends near $600. The
    level is now also measured over a short window (14 hours for a month): the forecast fires while the
    job runs and resolves about 14 hours after it ends, and does not come back."""
    burst = datetime(2026, 11, 8, 10, 0, tzinfo=UTC).timestamp()  # a Sunday, a quarter of the month gone
    clock.set(burst)
    monthly = {"name": "monthly", "scope": "global", "period": "monthly", "limit": 1000.0}
    services, budgets, sink = build(db_url, [monthly], clock)
    hourly = 10.0 / 24

    def spend_until(t: float, begin: float) -> None:
        """The usual pace: one call in each hour from `begin` to `t`."""
        hours = int((t - begin) // 3600)
        ingest(services, *[call(f"h{begin + i * 3600:.0f}", begin + i * 3600 + 1800, hourly) for i in range(hours)])

    spend_until(burst, burst - 21 * 86400)
    clock.now = burst + 4 * 3600  # 14:00, the job is over
    ingest(services, *[call(f"job{i}", burst + i * 3600 + 900, 75.0) for i in range(4)])
    spend_until(clock.now, burst)
    budgets.evaluate()
    assert "LLMBudgetForecastOverrun" in sink.names()
    assert budgets.status("monthly")["projected"] > 1400

    resolved_after = None
    for hour in range(1, 72):
        clock.now += 3600
        spend_until(clock.now, clock.now - 3600)
        budgets.evaluate()
        if resolved_after is None and "LLMBudgetForecastOverrun" not in sink.names():
            resolved_after = hour
        assert resolved_after is None or "LLMBudgetForecastOverrun" not in sink.names(), f"back {hour} h after"
    assert resolved_after is not None and resolved_after <= 15
    assert [name for name, _ in sink.resolved] == ["LLMBudgetForecastOverrun"]
    assert budgets.status("monthly")["projected"] == pytest.approx(600, rel=0.05)
    services.close()


def test_a_total_budget_alert_does_not_say_it_counts_since_1970(db_url: str, clock: FakeClock) -> None:
    """A `total` budget has no period: its count runs from the start of the store (the Unix epoch, as
    `alerting.periods` says), and its alert read "Total budget for all usage: $105.00 spent of $100.00 since
    1970-01-01 00:00 UTC" in Slack, mail and PagerDuty."""
    clock.set(NOON)
    total = {"name": "pilot", "scope": "global", "period": "total", "limit": 100.0}
    services, budgets, sink = build(db_url, [total], clock)
    ingest(services, call("a", NOON - 5, 105.0))
    labels = {"budget": "pilot", "scope": "global", "key": ""}
    annotations = sink.annotations("LLMBudgetExceeded", labels)
    assert "1970" not in annotations["description"]
    assert annotations["description"].startswith("Total budget for all usage: $105.00 spent of $100.00;")
    # After a reset, what is spent counts from the reset, and the alert says so.
    clock.now = NOON + 60
    budgets.reset("pilot", by="dave", reason="pilot extended")
    clock.now = NOON + 120
    ingest(services, call("b", NOON + 90, 101.0))
    annotations = sink.annotations("LLMBudgetExceeded", labels)
    assert "$101.00 spent of $100.00 since its reset at 2026-" in annotations["description"], annotations
    services.close()
