"""Budget checks on real SQLite and PostgreSQL: hard budgets decide, cached answers stay exact across processes and
threads, and a store that is down follows fail_mode."""

from __future__ import annotations

import threading
import time

import pytest

from alerting.budgets.definition import parse_budgets_section
from alerting.budgets.service import BudgetService
from tests.support.budgets import NOON, SEARCH_REQUESTS, build, call, ingest
from tests.support.clock import FakeClock


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


def test_check_sees_another_process_ingest_at_once(db_url: str, clock: FakeClock) -> None:
    """Replicas behind a load balancer: the call recorded through one counts in the next check on the other.

    The cached answer (CHECK_CACHE_SECONDS) is reused only once its spend rows are found unchanged; it used
    to be reused as it was, so for 250 ms a hard budget another process had just filled still allowed calls.
    """
    clock.set(NOON + 600)
    mine, budgets, _ = build(db_url, [SEARCH_REQUESTS], clock)
    other, _, _ = build(db_url, [SEARCH_REQUESTS], clock)  # a second process on the same store
    ingest(mine, call("a", NOON + 5, 0.1), call("b", NOON + 6, 0.1))
    assert budgets.check({"project": "search"})["allowed"] is True  # 2 of 3 requests used
    ingest(other, call("c", NOON + 7, 0.1))
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
