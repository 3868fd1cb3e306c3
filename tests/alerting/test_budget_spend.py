"""Budget spend on real SQLite and PostgreSQL: kept on ingest, counted from the period start, per timezone;
the config file is the source of truth."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetError, BudgetService
from exporter.retention import Pruner, RetentionConfig
from tests.support.budgets import CONFIG_REF, DAILY, NOON, PER_PROJECT, SEARCH_REQUESTS, build, call, ingest
from tests.support.clock import FakeClock


def test_spend_is_kept_on_ingest_per_budget_key_and_unit(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    services, budgets, _ = build(db_url, [DAILY, PER_PROJECT, SEARCH_REQUESTS], clock)
    ingest(
        services,
        call("a", NOON + 60, 10.0),
        call("b", NOON + 30, 5.0, project="chat"),
        call("c", NOON - 31 * 86400, 99.0),
    )  # last month: in neither current period
    ingest(services, call("a", NOON + 60, 10.0))  # duplicate: counted once
    by = {(i.budget.name, i.key): i for i in budgets.instances()}
    assert by[("daily", "")].spent == pytest.approx(15.0)
    assert by[("per-project", "search")].spent == pytest.approx(10.0)
    assert by[("per-project", "chat")].spent == pytest.approx(5.0)
    assert by[("search-requests", "search")].spent == 1
    status = budgets.status("daily")
    assert status["state"] == "ok"
    assert status["remaining"] == pytest.approx(85.0)
    assert status["period_start"] == "2026-11-11T00:00:00Z"
    assert status["period_end"] == "2026-11-12T00:00:00Z"
    star = budgets.status("per-project")
    assert star["key"] == "*"
    assert [i["key"] for i in star["instances"]] == ["search", "chat"]
    services.close()


def test_a_budget_added_mid_period_counts_what_was_already_spent(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [], clock)
    ingest(services, call("a", NOON - 3600, 7.0), call("b", NOON - 7200, 3.0, project="chat"))
    budgets.put("api-daily", {"scope": "project", "key": "search", "period": "daily", "limit": 20})
    ingest(services, call("c", NOON - 10, 1.0))
    assert budgets.status("api-daily")["spent"] == pytest.approx(8.0)
    with pytest.raises(BudgetError) as info:
        budgets.put("bad", {"scope": "team", "period": "fortnightly", "limit": -1})
    assert info.value.status == 422
    assert len(info.value.detail) == 4  # scope, key, period and limit, all at once
    budgets.delete("api-daily")
    with pytest.raises(BudgetError):
        budgets.status("api-daily")
    services.close()


def test_config_budgets_are_the_source_of_truth(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(db_url, [DAILY], clock)
    with pytest.raises(BudgetError) as info:
        budgets.put("daily", {"scope": "global", "period": "daily", "limit": 5})
    assert info.value.status == 409
    # A reload with a changed limit applies; the spend is rebuilt, not lost.
    ingest(services, call("a", NOON - 5, 30.0))
    problems: list[str] = []
    section = parse_budgets_section([{**DAILY, "limit": 40.0}], problems)
    changed = BudgetService(services.store, section, clock=clock)
    changed.apply_config(section.items, origin_ref=CONFIG_REF)
    assert changed.status("daily")["limit"] == 40.0
    assert changed.status("daily")["spent"] == pytest.approx(30.0)
    assert budgets.status("daily")["limit"] == 40.0  # the other instance sees the new revision
    services.close()


def test_daily_budget_follows_its_timezone(db_url: str, clock: FakeClock) -> None:
    # 2026-11-11 04:30 UTC is 23:30 on the 10th in New York (UTC-5): yesterday there.
    clock.set(datetime(2026, 11, 11, 6, 0, tzinfo=UTC).timestamp())
    ny = {"name": "ny", "scope": "global", "period": "daily", "limit": 10, "timezone": "America/New_York"}
    services, budgets, _ = build(db_url, [ny], clock)
    ingest(
        services,
        call("late", datetime(2026, 11, 11, 4, 30, tzinfo=UTC).timestamp(), 4.0),
        call("early", datetime(2026, 11, 11, 5, 30, tzinfo=UTC).timestamp(), 1.0),
    )
    status = budgets.status("ny")
    assert status["spent"] == pytest.approx(1.0)
    assert status["period_start"] == "2026-11-11T05:00:00Z"
    services.close()


def test_a_change_that_counts_the_same_calls_keeps_the_spend_a_rebuild_could_not_split(
    db_url: str, clock: FakeClock
) -> None:
    """Asia/Kolkata's year starts at 18:30 UTC. Once the pruner folded that hour into one hourly row
    (`rollups_days` < 366), rebuilding the spend from the rollups must count the whole hour or none of it.
    Every change rebuilt it, so raising the limit dropped the calls of 18:30-19:00 from the year's spend
    (found on six months of events pruned to 35 days of 5-minute rollups). A change that counts the same
    calls now keeps the spend counted on ingest; one that counts others is rebuilt as before."""
    year_start = datetime(2027, 1, 1, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()  # 2026-12-31T18:30Z
    clock.set(year_start + 50 * 86400)
    yearly = {"name": "yearly-ist", "scope": "global", "period": "yearly", "limit": 1000.0, "timezone": "Asia/Kolkata"}
    services, budgets, _ = build(db_url, [yearly], clock)
    budgets.put("api-yearly", {**yearly, "name": "api-yearly"})
    ingest(
        services,
        call("last-year", year_start - 20 * 60, 1.0),  # 18:10 UTC: the IST year before
        call("new-year", year_start + 10 * 60, 2.0),  # 18:40 UTC, in the same UTC hour
        call("january", year_start + 10 * 86400, 4.0),
    )
    Pruner(services.store, RetentionConfig(events_days=35, rollups_days=35), clock=clock).run()

    raised = parse_budgets_section([{**yearly, "limit": 2000.0}], []).items
    budgets.apply_config(raised, origin_ref=CONFIG_REF)
    budgets.put("api-yearly", {"limit": 2000.0}, mode="update")
    assert budgets.status("yearly-ist")["spent"] == pytest.approx(6.0)
    assert budgets.status("api-yearly")["spent"] == pytest.approx(6.0)

    budgets.put("api-yearly", {"timezone": "UTC"}, mode="update")  # other calls: rebuilt, from 2027-01-01Z
    assert budgets.status("api-yearly")["spent"] == pytest.approx(4.0)
    services.close()
