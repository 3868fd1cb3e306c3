"""Budgets end to end on real SQLite and PostgreSQL: spend kept on ingest, status, checks, alerts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.http import budget_routes
from alerting.budgets.service import CHECK_CACHE_SECONDS, BudgetError, BudgetService
from alerting.model import fingerprint
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.services import open_services
from tests.support.clock import FakeClock
from tests.support.helpers import make_config
from tests.support.waiting import wait_until

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
    services, budgets, sink = build(db_url, [DAILY], clock)
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


def test_check_answers_allowed_per_hard_budgets(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    soft = {"name": "soft-daily", "scope": "global", "period": "daily", "limit": 10.0, "mode": "soft"}
    services, budgets, _ = build(db_url, [SEARCH_REQUESTS, soft], clock)
    ingest(services, call("a", NOON + 5, 9.0), call("b", NOON + 6, 0.5))
    answer = budgets.check({"project": "search", "estimated_cost_usd": 2.0})
    assert answer["allowed"] is True  # 3rd request of 3 fits; the soft budget never blocks
    assert answer["state"] == "critical"  # soft-daily at 95 %
    ingest(services, call("c", NOON + 7, 0.1))
    answer = budgets.check({"project": "search", "estimated_cost_usd": 0.0})
    assert answer["allowed"] is False
    assert {b["name"]: b["state"] for b in answer["budgets"]} == {
        "search-requests": "exceeded",
        "soft-daily": "critical",
    }
    assert budgets.check({"project": "chat"})["allowed"] is True  # the hard budget does not match chat
    services.close()


def test_check_sees_another_process_ingest_within_the_check_cache_time(db_url: str, clock: FakeClock) -> None:
    clock.set(NOON + 600)
    mine, budgets, _ = build(db_url, [SEARCH_REQUESTS], clock)
    other, _, _ = build(db_url, [SEARCH_REQUESTS], clock)  # a second process on the same store
    ingest(mine, call("a", NOON + 5, 0.1), call("b", NOON + 6, 0.1))
    assert budgets.check({"project": "search"})["allowed"] is True  # 2 of 3 requests used
    ingest(other, call("c", NOON + 7, 0.1))
    # Kept on purpose: the subject is the cache's lifetime, which runs on the real monotonic clock.
    time.sleep(CHECK_CACHE_SECONDS + 0.05)
    assert budgets.check({"project": "search"})["allowed"] is False
    ingest(mine, call("d", NOON + 8, 0.1))  # this process's own ingest shows at once
    assert budgets.check({"project": "search"})["budgets"][0]["spent"] == 4
    other.close()
    mine.close()


def test_checks_stay_exact_while_this_process_ingests_and_checks_concurrently(db_url: str, clock: FakeClock) -> None:
    """Cached answers get this process's spend added as it commits: never missed, never counted twice."""
    clock.set(NOON + 600)
    usd = {"name": "daily-usd", "scope": "project", "key": "search", "period": "daily", "limit": 1e6}
    requests = {**SEARCH_REQUESTS, "limit": 1e6}
    services, budgets, _ = build(db_url, [usd, requests], clock)
    # Widen the moment between a commit and the cache hearing of it, so checks read in that moment.
    # (A sleep on purpose: it is the race window itself, not a wait for something.)
    services.store._after_commit.insert(0, lambda _result: time.sleep(0.01))
    stop = threading.Event()
    seen: list[float] = []

    def spent_requests() -> float:
        answer = budgets.check({"project": "search"})
        return next(b["spent"] for b in answer["budgets"] if b["name"] == "search-requests")

    def checker() -> None:  # keeps refreshing the cached answer, racing with the commits below
        while not stop.is_set():
            seen.append(spent_requests())
            time.sleep(0.001)  # lets the ingesting thread run between checks (a yield, not a wait)

    threads = [threading.Thread(target=checker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(60):
            ingest(services, call(f"x{i}", NOON + 10 + i, 0.25 + i / 100))
            by_name = {b["name"]: b["spent"] for b in budgets.check({"project": "search"})["budgets"]}
            assert by_name["search-requests"] == i + 1  # read-your-writes, exactly
            assert by_name["daily-usd"] == pytest.approx(sum(0.25 + k / 100 for k in range(i + 1)), abs=1e-9)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and max(seen) <= 60
    assert budgets.status("search-requests")["spent"] == 60
    assert spent_requests() == 60
    services.close()


def test_check_when_the_store_is_down_follows_fail_mode(pg_cluster, tmp_path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    url = pg_cluster.create_database()
    clock.set(NOON)
    services, budgets, _ = build(url, [SEARCH_REQUESTS], clock)
    problems: list[str] = []
    closed = BudgetService(
        services.store,
        parse_budgets_section({"fail_mode": "closed", "items": [SEARCH_REQUESTS]}, problems),
        clock=clock,
    )
    budgets.definitions()
    services.store.engine.dispose()
    services.store.engine.url = services.store.engine.url.set(port=1)  # nothing listens there
    from sqlalchemy import create_engine

    services.store.engine = create_engine(services.store.engine.url, connect_args={"connect_timeout": 1})
    answer = budgets.check({"project": "search"})
    assert answer["allowed"] is True and answer["degraded"] is True
    assert "fail_mode is 'open'" in answer["detail"]
    assert closed.check({"project": "search"})["allowed"] is False
    services.store.engine.dispose()


def test_budget_http_api(sqlite_url: str, clock: FakeClock) -> None:
    clock.set(NOON)
    services, budgets, _ = build(sqlite_url, [DAILY], clock, auth={"admin_tokens": [ADMIN], "ingest_tokens": [INGEST]})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(build_app(services, budget_routes(budgets, services.config.auth))) as client:
        assert client.get("/v1/budgets").status_code == 401
        listed = client.get("/v1/budgets", headers=admin).json()["budgets"]
        assert [b["name"] for b in listed] == ["daily"]
        created = client.put(
            "/v1/budgets/team", headers=admin, json={"scope": "project", "key": "chat", "period": "weekly", "limit": 5}
        )
        assert created.status_code == 200
        assert created.json()["status"]["period_start"] == "2026-11-09T00:00:00Z"  # Monday
        assert client.put("/v1/budgets/daily", headers=admin, json=DAILY).status_code == 409
        bad = client.put("/v1/budgets/x", headers=admin, json={"period": "daily"})
        assert bad.status_code == 422
        assert "budget.limit: must be a number > 0, got None" in bad.json()["detail"]
        assert (
            client.put(
                "/v1/budgets/x",
                headers=admin,
                content=b"{",
            ).status_code
            == 400
        )
        assert client.get("/v1/budgets/nope", headers=admin).status_code == 404
        assert client.post("/v1/budgets/check", json={"project": "chat"}).status_code == 401
        answer = client.post(
            "/v1/budgets/check", headers={"Authorization": f"Bearer {INGEST}"}, json={"project": "chat"}
        )
        assert answer.json()["allowed"] is True
        assert client.delete("/v1/budgets/team", headers=admin).status_code == 204
    services.close()


def test_sighup_reloads_budgets_from_the_config_file(tmp_path, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    import signal

    import httpx
    import yaml

    from tests.support.procs import LlmcostProcess

    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"budgets": [DAILY, PER_PROJECT]}))
    proc = LlmcostProcess(sqlite_url, config=config).start(tmp_path)
    try:
        assert httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 100.0
        config.write_text(yaml.safe_dump({"budgets": [{**DAILY, "limit": 250.0}]}))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 250.0,
            timeout=10,
            what="the reloaded limit",
        )
        assert httpx.get(f"{proc.base}/v1/budgets/per-project").status_code == 404
        config.write_text("budgets: [{name: broken}]")  # invalid: refused, the running budgets stay
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused, nothing changed" in proc.log(), timeout=10, what="the refusal")
        assert httpx.get(f"{proc.base}/v1/budgets/daily").json()["limit"] == 250.0
        assert proc.proc.poll() is None
    finally:
        proc.stop()
    assert "config reload refused, nothing changed" in proc.log()
