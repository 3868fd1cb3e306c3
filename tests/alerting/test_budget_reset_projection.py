"""A reset starts a fresh count: the projection and `llm_budget_projected` forget the spend reset away."""

from __future__ import annotations

import pytest

from alerting.budgets.collector import BudgetCollector
from alerting.budgets.service import BudgetService
from tests.support.budgets import NOON, build, call, ingest
from tests.support.clock import FakeClock

SEARCH_DAILY = {"name": "search-daily", "scope": "project", "key": "search", "period": "daily", "limit": 10.0}


def _projected_gauge(budgets: BudgetService, budget: str, key: str) -> float:
    """What /metrics exports as `llm_budget_projected` for the instance."""
    for family in BudgetCollector(budgets).collect():
        for sample in family.samples:
            if sample.name == "llm_budget_projected" and (sample.labels["budget"], sample.labels["key"]) == (
                budget,
                key,
            ):
                return float(sample.value)
    raise AssertionError(f"no llm_budget_projected for {budget}/{key}")


def test_after_a_reset_the_projection_holds_no_spend_from_before_it(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [SEARCH_DAILY], clock)
    ingest(services, *(call(f"a{i}", NOON - 3600 + 60 * i, 0.34) for i in range(30)))  # $10.20 this morning
    budgets.evaluate()
    assert budgets.status("search-daily")["projected"] >= 10.2
    clock.set(NOON + 60)
    budgets.reset("search-daily", by="auditor", reason="test")
    clock.set(NOON + 120)
    budgets.evaluate()
    status = budgets.status("search-daily")
    assert status["spent"] == 0.0
    assert status["projected"] == 0.0
    assert _projected_gauge(budgets, "search-daily", "search") == 0.0
    clock.set(NOON + 900)
    ingest(services, call("after", NOON + 600, 0.5))
    budgets.evaluate()
    assert budgets.status("search-daily")["projected"] == pytest.approx(0.5)
    services.close()


def test_with_history_a_forecast_starts_from_the_reset_too(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [SEARCH_DAILY], clock)
    days = [call(f"d{d}-{h}", NOON - d * 86400 - 43200 + h * 3600, 0.25) for d in range(1, 15) for h in range(24)]
    ingest(services, *days)  # two weeks at $6 a day: enough history for a forecast
    ingest(services, *(call(f"burst{i}", NOON - 1800 + 60 * i, 0.3) for i in range(20)))  # +$6 in a runaway job
    budgets.evaluate()
    before = budgets.status("search-daily")
    assert before["projection"] != "insufficient history"
    assert before["projected"] > 10.0  # the runaway makes it look like an overrun
    clock.set(NOON + 60)
    budgets.reset("search-daily", by="auditor", reason="runaway job stopped")
    clock.set(NOON + 120)
    budgets.evaluate()
    after = budgets.status("search-daily")
    assert after["spent"] == 0.0
    assert after["projected"] < 6.0  # the usual half day still to come, none of what was reset
    services.close()
