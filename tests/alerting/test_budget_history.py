"""A budget's past periods on real SQLite and PostgreSQL: before the first call, after retention folded
hours, a `total` budget, and the values past a `key: "*"` budget's `max_instances`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from exporter.retention import Pruner, RetentionConfig
from tests.support.budgets import build, call, ingest
from tests.support.clock import FakeClock

IST = ZoneInfo("Asia/Kolkata")
DAY = 86400


def test_days_in_a_half_hour_zone_that_retention_folded_say_so_rather_than_show_a_figure(
    db_url: str, clock: FakeClock
) -> None:
    """An IST day starts at 18:30 UTC. Past `rollups_days` the pruner folded its 5-minute buckets into whole
    UTC hours: the hour 18:00-19:00 holds calls of two days and cannot be split. The days it cuts are
    `spent: null` with a note, not 0 nor a guess; a UTC budget over the same days is exact."""
    today = datetime(2027, 3, 1, tzinfo=IST).timestamp()
    clock.set(today + 12 * 3600)
    ist = {"name": "ist-daily", "scope": "global", "period": "daily", "limit": 5.0, "timezone": "Asia/Kolkata"}
    utc = {"name": "utc-daily", "scope": "global", "period": "daily", "limit": 5.0}
    services, budgets, _ = build(db_url, [ist, utc], clock)
    old = today - 50 * DAY  # an IST midnight: 18:30 UTC, in a UTC hour folded below
    ingest(
        services,
        call("old-before", old - 10 * 60, 1.0),  # 18:20 UTC, the IST day before
        call("old-after", old + 10 * 60, 2.0),  # 18:40 UTC, the same UTC hour
        call("recent", today - 2 * DAY + 3600, 4.0),
    )
    Pruner(services.store, RetentionConfig(events_days=35, rollups_days=35), clock=clock).run()

    history = budgets.history("ist-daily", 60)["history"]
    by_start = {h["period_start"]: h for h in history}
    folded = by_start[datetime.fromtimestamp(old, IST).isoformat()]
    assert folded["spent"] is None and folded["over_limit"] is None and folded["state"] is None
    assert "retention" in folded["note"] and "starts and ends" not in folded["note"]
    assert by_start[datetime.fromtimestamp(today - 2 * DAY, IST).isoformat()]["spent"] == 4.0
    recent_zero = by_start[datetime.fromtimestamp(today - DAY, IST).isoformat()]
    assert recent_zero["spent"] == 0.0 and "note" not in recent_zero
    # The first call was on the IST day before `old`: nothing older is listed.
    assert history[-1]["period_start"] == datetime.fromtimestamp(old - DAY, IST).isoformat()

    utc_days = {h["period_start"][:10]: h["spent"] for h in budgets.history("utc-daily", 60)["history"]}
    assert utc_days[datetime.fromtimestamp(old, UTC).strftime("%Y-%m-%d")] == 3.0  # both calls, 18:20 and 18:40 UTC
    services.close()


def test_no_history_without_calls_nor_for_a_total_budget(db_url: str, clock: FakeClock) -> None:
    today = datetime(2027, 3, 1, tzinfo=IST).timestamp()
    clock.set(today)
    total = {"name": "all-time", "scope": "global", "period": "total", "limit": 5.0}
    daily = {"name": "daily", "scope": "global", "period": "daily", "limit": 5.0, "timezone": "Asia/Kolkata"}
    services, budgets, _ = build(db_url, [total, daily], clock)
    assert budgets.history("daily", 3)["history"] == []  # an empty store: no row of zeros before any data
    ingest(services, call("a", today - 3600, 1.0))
    assert budgets.history("all-time", 3)["history"] == []
    assert [h["spent"] for h in budgets.history("daily", 3)["history"]] == [1.0]
    services.close()


def test_values_past_max_instances_are_summed_as_other(db_url: str, clock: FakeClock) -> None:
    today = datetime(2027, 3, 1, tzinfo=IST).timestamp()
    clock.set(today)
    per_project = {
        "name": "pp",
        "scope": "project",
        "key": "*",
        "period": "daily",
        "limit": 2.0,
        "max_instances": 2,
        "timezone": "Asia/Kolkata",
    }
    services, budgets, _ = build(db_url, [per_project], clock)
    ingest(services, *(call(p, today - 3600, cost, project=p) for p, cost in (("a", 3.0), ("b", 1.0), ("c", 0.5))))
    [day] = budgets.history("pp", 1)["history"]
    assert (day["worst_key"], day["spent"], day["over_limit"]) == ("a", 3.0, True)
    assert [(i["key"], i["spent"]) for i in day["instances"]] == [("a", 3.0), ("b", 1.0), ("__other__", 0.5)]
    services.close()


def test_a_past_period_counts_what_a_reset_forgave(db_url: str, clock: FakeClock) -> None:
    """History says what was spent: the live count started again at the reset, the day's figure did not."""
    day = datetime(2027, 3, 1, tzinfo=UTC).timestamp()
    clock.set(day + 3600)
    services, budgets, _ = build(db_url, [{"name": "daily", "scope": "global", "period": "daily", "limit": 5.0}], clock)
    ingest(services, call("before", day + 600, 3.0))
    budgets.reset("daily", by="carol", reason="quota raised")
    ingest(services, call("after", day + 1200, 1.0))
    assert budgets.status("daily")["spent"] == 1.0
    clock.set(day + DAY + 60)
    [past] = budgets.history("daily", 1)["history"]
    assert (past["spent"], past["period_start"]) == (4.0, "2027-03-01T00:00:00+00:00")
    services.close()
