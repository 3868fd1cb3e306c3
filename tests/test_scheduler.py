"""The scheduler wiring: once per tick across processes, leadership, failover, errors, self metrics."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from alerting.leader import LeaderLease
from alerting.scheduler import HEARTBEAT_JOB, AlertScheduler, Outcome, tick_of
from alerting.scheduler_collector import SchedulerCollector
from exporter.store import Store

T0 = 1_795_000_040.0  # 20 s into a minute


class Recorder:
    """A job that records the times it ran at (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[float] = []
        self.fail = fail
        self.event = threading.Event()

    def __call__(self, now: float) -> None:
        self.calls.append(now)
        self.event.set()
        if self.fail:
            raise RuntimeError("boom")


def test_a_job_runs_once_per_tick_and_records_its_runs(db_url: str) -> None:
    store = Store(db_url)
    job = Recorder()
    scheduler = AlertScheduler(store, {"detection": (60.0, job)})
    assert scheduler.run_once("detection", T0) is Outcome.SUCCESS
    assert scheduler.run_once("detection", T0 + 30) is Outcome.ALREADY_RAN  # same minute
    assert scheduler.run_once("detection", T0 + 40) is Outcome.SUCCESS  # T0 + 40 is the next minute
    assert job.calls == [T0, T0 + 40]
    counters = store.counters()
    assert counters["scheduler.runs.detection.success"] == 2
    assert counters["scheduler.last_run.detection"] == T0 + 40
    assert "scheduler.runs.detection.already_ran" not in counters  # skips are not recorded
    store.close()


def test_a_failing_job_is_counted_and_does_not_stop_the_others(db_url: str) -> None:
    store = Store(db_url)
    bad, good = Recorder(fail=True), Recorder()
    scheduler = AlertScheduler(store, {"budgets": (60.0, bad), "outbox": (15.0, good)})
    assert scheduler.run_once("budgets", T0) is Outcome.ERROR
    assert scheduler.run_once("outbox", T0) is Outcome.SUCCESS
    assert scheduler.run_once("budgets", T0 + 60) is Outcome.ERROR
    counters = store.counters()
    assert counters["scheduler.runs.budgets.error"] == 2
    assert counters["scheduler.last_run.budgets"] == T0 + 60  # a completed run, even a failed one
    assert counters["scheduler.runs.outbox.success"] == 1

    registry = CollectorRegistry()
    registry.register(SchedulerCollector(store, jobs=["budgets", "outbox", "detection"], spikes=False))
    sample = registry.get_sample_value
    assert sample("llm_scheduler_runs_total", {"job": "budgets", "outcome": "error"}) == 2
    assert sample("llm_scheduler_runs_total", {"job": "budgets", "outcome": "success"}) == 0
    assert sample("llm_scheduler_runs_total", {"job": "outbox", "outcome": "success"}) == 1
    assert sample("llm_scheduler_runs_total", {"job": "detection", "outcome": "success"}) == 0
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"job": "outbox"}) == T0
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"job": "detection"}) is None
    store.close()


def test_only_the_leader_runs_and_every_tick_runs_exactly_once_through_a_failover(db_url: str) -> None:
    """Three processes tick every 15 s and heartbeat every 5 s; the leader is killed; no tick is lost or doubled.

    The catch-up a new leader does on taking over (run every job now) is what `heartbeat` schedules in
    a running scheduler; here the test does it, since the APScheduler thread is not running.
    """
    ttl, interval = 15.0, 15.0
    stores = [Store(db_url) for _ in range(3)]
    jobs = [Recorder() for _ in range(3)]
    schedulers = [
        AlertScheduler(
            store, {"outbox": (interval, jobs[i])}, leader=LeaderLease(store, holder=f"p{i}", ttl=ttl, clock=lambda: 0)
        )
        for i, store in enumerate(stores)
    ]
    heartbeat = schedulers[0].leader.heartbeat_seconds  # type: ignore[union-attr]
    alive = {0, 1, 2}
    leading = {i: False for i in alive}
    outcomes: Counter[Outcome] = Counter()
    killed_at = None
    t = 0.0
    while t <= 300:
        now = T0 + t
        for i in sorted(alive):
            if t % heartbeat == 0:
                was, leading[i] = leading[i], schedulers[i].heartbeat(now)
                if leading[i] and not was:  # catch-up on taking over
                    outcomes[schedulers[i].run_once("outbox", now)] += 1
            if t % interval == 0:
                outcomes[schedulers[i].run_once("outbox", now)] += 1
        if killed_at is None and t >= 100 and any(s.leader.is_leader(now) for s in schedulers):  # type: ignore[union-attr]
            victim = next(i for i in alive if schedulers[i].leader.is_leader(now))  # type: ignore[union-attr]
            alive.discard(victim)
            killed_at = now
        t += 2.5
    assert killed_at is not None

    runs = sorted(c for job in jobs for c in job.calls)
    ticks = Counter(tick_of(c, interval) for c in runs)
    assert all(n == 1 for n in ticks.values()), f"a tick ran twice: {ticks}"
    expected = {tick_of(T0 + k * interval, interval) for k in range(int(300 / interval) + 1)}
    assert set(ticks) == expected, f"missed ticks: {sorted(expected - set(ticks))}"
    # The missed tick ran within ttl + one heartbeat of the victim's last renewal.
    late = max(c - tick_of(c, interval) for c in runs)
    assert late <= ttl + heartbeat
    assert sum(1 for job in jobs if job.calls) == 2  # the victim, then its successor
    assert outcomes[Outcome.NOT_LEADER] > 0
    assert store_runs(stores[0]) == len(runs)
    for store in stores:
        store.close()


def store_runs(store: Store) -> float:
    return store.counters().get("scheduler.runs.outbox.success", 0.0)


def test_two_processes_racing_for_the_same_tick_run_it_once(db_url: str) -> None:
    stores = [Store(db_url) for _ in range(2)]
    job = Recorder()
    schedulers = [AlertScheduler(store, {"budgets": (60.0, job)}) for store in stores]
    barrier = threading.Barrier(2)
    results: list[Outcome] = []

    def race(scheduler: AlertScheduler) -> None:
        for minute in range(10):
            barrier.wait(timeout=30)
            results.append(scheduler.run_once("budgets", T0 + 60 * minute))

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(results) == {Outcome.SUCCESS: 10, Outcome.ALREADY_RAN: 10}
    assert len(job.calls) == 10
    for store in stores:
        store.close()


def test_an_unreachable_store_skips_the_run_without_raising(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    job = Recorder()
    scheduler = AlertScheduler(store, {"detection": (60.0, job)}, leader=LeaderLease(store, holder="a"))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE scheduler_ticks")
    assert scheduler.run_once("detection", T0) is Outcome.UNAVAILABLE
    assert job.calls == []
    store.close()


def test_jobs_are_validated() -> None:
    store = None  # never touched: validation comes first
    with pytest.raises(ValueError, match="reserved"):
        AlertScheduler(store, {HEARTBEAT_JOB: (5.0, Recorder())})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must match"):
        AlertScheduler(store, {"bad.id": (5.0, Recorder())})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        AlertScheduler(store, {"outbox": (0.0, Recorder())})  # type: ignore[arg-type]


def test_the_background_scheduler_is_wired_with_explicit_ids_coalesce_and_one_instance(db_url: str) -> None:
    store = Store(db_url)
    budgets, detection = Recorder(fail=True), Recorder()
    lease = LeaderLease(store, holder="me", ttl=15)
    scheduler = AlertScheduler(store, {"budgets": (60.0, budgets), "detection": (60.0, detection)}, leader=lease)
    scheduler.start()
    try:
        assert scheduler.running
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
        assert set(jobs) == {"budgets", "detection", HEARTBEAT_JOB}
        for name in ("budgets", "detection"):
            job = jobs[name]
            assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 60)
            assert isinstance(job.trigger, IntervalTrigger)
            assert job.trigger.interval.total_seconds() == 60
            assert job.trigger.start_date == datetime.fromtimestamp(0, UTC)  # ticks aligned to the epoch
        assert jobs[HEARTBEAT_JOB].trigger.interval.total_seconds() == 5
        # The heartbeat runs at start; taking the lease runs every job at once (the catch-up).
        assert detection.event.wait(10) and budgets.event.wait(10)
    finally:
        scheduler.shutdown()
    assert not scheduler.running
    record = lease.current()
    assert record is not None and record.holder == "me"
    assert record.expires_at <= lease.clock()  # released on shutdown: a follower takes over at once
    counters = store.counters()
    assert counters["scheduler.runs.budgets.error"] == 1  # the failure was contained
    assert counters["scheduler.runs.detection.success"] == 1
    store.close()
