"""The budget forecast evaluation (bench/eval_forecast.py): its scoring on cases whose answer is known.

The full run over the 43 ServeGen tenants is `make eval` (figures in docs/alerting.md); here a
hand-made day per outcome checks the counting, and two synthetic tenants run through the real
projection check the watching.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.support.paths import load_bench_script


@pytest.fixture(scope="module")
def ev() -> ModuleType:
    return load_bench_script("eval_forecast")


def _day(ev: ModuleType, per_minute: np.ndarray, forecast_from: list[tuple[int, int]]) -> object:
    """A day after one $100 day (limit k x 100), spending `per_minute`, forecast over [a, b) minutes."""
    minutes = np.arange(ev.TICK_OFFSET, 1440, ev.TICK_MINUTES)
    cumulative = np.cumsum(per_minute)
    spent = cumulative[minutes - 1]
    projected = np.zeros((len(ev.METHODS), minutes.size))
    for a, b in forecast_from:
        projected[:, (minutes >= a) & (minutes < b)] = 1e9
    return ev.DayWatch(0, 1, minutes, spent, projected, cumulative, np.array([100.0, cumulative[-1]]))


def test_a_day_over_the_limit_is_caught_with_the_lead_from_the_first_forecast(ev: ModuleType) -> None:
    spend = np.full(1440, 0.001)  # $0.60 by 10:00: a forecast needs something spent in the period
    spend[600:] = 1.0  # $1 a minute from 10:00: the $120 limit (k 1.2) is reached at the end of minute 719
    s = ev.score([_day(ev, spend, [(98, 300)])], 0, 1.2)
    assert (s.days, s.over, s.caught, s.under, s.false) == (1, 1, 1, 0, 0)
    assert s.median_lead == 720 - 98  # first forecast tick at minute 98
    assert s.warning_lead == 720 - 696  # 80 % ($96) at the end of minute 695


def test_a_forecast_only_after_the_limit_was_reached_is_no_catch(ev: ModuleType) -> None:
    spend = np.full(1440, 1.0)
    s = ev.score([_day(ev, spend, [(200, 1440)])], 0, 1.2)  # limit reached at minute 120
    assert (s.over, s.caught) == (1, 0)
    assert np.isnan(s.median_lead)


def test_a_quiet_day_with_a_forecast_twice_is_one_false_day_and_two_starts(ev: ModuleType) -> None:
    spend = np.full(1440, 50.0 / 1440)  # ends at $50: under warning ($96) and the limit
    s = ev.score([_day(ev, spend, [(100, 200), (400, 500)])], 0, 1.2)
    assert (s.under, s.false, s.starts, s.quiet, s.false_quiet) == (1, 1, 2, 1, 1)
    assert s.false_rate == s.false_quiet_rate == 1.0


def test_a_forecast_sent_only_at_or_over_warning_is_not_counted(ev: ModuleType) -> None:
    """Over warning the instance's alert is LLMBudgetWarning whatever the forecast says."""
    spend = np.full(1440, 110.0 / 1440)  # ends at $110: over warning ($96) at minute 1257, under $120
    s = ev.score([_day(ev, spend, [(1300, 1440)])], 0, 1.2)
    assert (s.under, s.false, s.quiet) == (1, 0, 0)
    s = ev.score([_day(ev, spend, [(1000, 1440)])], 0, 1.2)
    assert (s.under, s.false, s.quiet, s.false_quiet) == (1, 1, 0, 0)


def test_a_tenant_without_spend_before_has_no_limit_and_is_left_out(ev: ModuleType) -> None:
    w = _day(ev, np.ones(1440), [(100, 1440)])
    silent = ev.DayWatch(w.tenant, w.day, w.minutes, w.spent, w.projected, w.cumulative, np.array([0.0, 1440.0]))
    assert ev.score([silent], 0, 1.2).days == 0


def test_the_real_projection_keeps_a_steady_tenant_quiet_and_sees_a_doubled_day_coming(ev: ModuleType) -> None:
    steady = np.full(5 * 1440, 0.5)
    doubled = steady.copy()
    doubled[4 * 1440 :] = 1.0  # day 4 spends twice the usual day from midnight: over 1.2 x at minute 864
    tenants = [ev.Tenant(name, spend, np.zeros(5 * 144)) for name, spend in (("steady", steady), ("doubled", doubled))]
    watched = ev.watch_days(tenants, range(3, 5))
    scores = {name: ev.score(watched, m, 1.2) for m, name in enumerate(ev.METHODS)}
    for s in scores.values():
        assert (s.days, s.over, s.caught, s.false) == (4, 1, 1, 0)
    # The straight line forecasts at the first tick past 5 % of the day (minute 73): 2x the usual pace.
    assert scores["straight line"].median_lead == 864 - 73
    assert 0 < scores["llmcost"].median_lead <= 864 - 73
