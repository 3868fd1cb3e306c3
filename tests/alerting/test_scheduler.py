"""The scheduler wiring: once per tick across processes, leadership, failover, errors, self metrics."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from alerting.leader import LeaderLease
from alerting.scheduler import HEARTBEAT_JOB, AlertScheduler, EpochAlignedTrigger, Outcome, tick_of
from alerting.scheduler_collector import SchedulerCollector
from alerting.store import open_store

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
    store = open_store(db_url)
    job = Recorder()
    scheduler = AlertScheduler(store, {"detection": (60.0, job)})
    assert scheduler.run_once("detection", T0) is Outcome.SUCCESS
    assert scheduler.run_once("detection", T0 + 30) is Outcome.ALREADY_RAN  # same minute
    assert scheduler.run_once("detection", T0 + 40) is Outcome.SUCCESS  # T0 + 40 is the next minute
    assert job.calls == [T0, T0 + 40]
    counters = store.counters()
    assert counters["scheduler.runs.detection.success"] == 2
    assert counters["scheduler.last_run.detection"] == T0 + 40
    assert counters["scheduler.last_success.detection"] == T0 + 40  # what vouches for its alerts' reminders
    assert "scheduler.runs.detection.already_ran" not in counters  # skips are not recorded
    store.close()


def test_a_failing_job_is_counted_and_does_not_stop_the_others(db_url: str) -> None:
    store = open_store(db_url)
    bad, good = Recorder(fail=True), Recorder()
    scheduler = AlertScheduler(store, {"budgets": (60.0, bad), "outbox": (15.0, good)})
    assert scheduler.run_once("budgets", T0) is Outcome.ERROR
    assert scheduler.run_once("outbox", T0) is Outcome.SUCCESS
    assert scheduler.run_once("budgets", T0 + 60) is Outcome.ERROR
    counters = store.counters()
    assert counters["scheduler.runs.budgets.error"] == 2
    assert counters["scheduler.last_run.budgets"] == T0 + 60  # a completed run, even a failed one
    assert "scheduler.last_success.budgets" not in counters  # but it vouches for no alert (gateway/evidence.py)
    assert counters["scheduler.runs.outbox.success"] == 1

    registry = CollectorRegistry()
    registry.register(SchedulerCollector(store, jobs=["budgets", "outbox", "detection"], spikes=False))
    sample = registry.get_sample_value
    assert sample("llm_scheduler_runs_total", {"task": "budgets", "outcome": "error"}) == 2
    assert sample("llm_scheduler_runs_total", {"task": "budgets", "outcome": "success"}) == 0
    assert sample("llm_scheduler_runs_total", {"task": "outbox", "outcome": "success"}) == 1
    assert sample("llm_scheduler_runs_total", {"task": "detection", "outcome": "success"}) == 0
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"task": "outbox"}) == T0
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"task": "detection"}) is None
    store.close()


def test_a_job_no_longer_configured_has_no_last_run_time(db_url: str) -> None:
    """Its last run stays in the store; exported, it would age past LLMCostSchedulerStalled's threshold
    and page for ever after `alertmanager:` or `retention:` is taken out of the config."""
    store = open_store(db_url)
    before = AlertScheduler(store, {"alertmanager": (60.0, Recorder()), "budgets": (60.0, Recorder())})
    assert before.run_once("alertmanager", T0) is Outcome.SUCCESS
    assert before.run_once("budgets", T0) is Outcome.SUCCESS

    registry = CollectorRegistry()
    registry.register(SchedulerCollector(store, jobs=["budgets"], spikes=False))
    sample = registry.get_sample_value
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"task": "budgets"}) == T0
    assert sample("llm_scheduler_last_run_timestamp_seconds", {"task": "alertmanager"}) is None
    store.close()


@pytest.mark.parametrize("kill_after", [100.0, 137.5])
def test_only_the_leader_runs_and_no_tick_runs_twice_through_a_failover(db_url: str, kill_after: float) -> None:
    """Three processes fire each job on its epoch-aligned ticks and heartbeat every 5 s; the leader is killed.

    A tick runs at most once. A `detection` tick (60 s, longer than the failover bound) is never lost,
    only late; `outbox` ticks (15 s) wholly inside the leaderless gap are coalesced into the catch-up run
    the new leader makes on taking over (what `heartbeat` schedules in a running scheduler; the test
    does it here, since the APScheduler thread is not running).
    """
    ttl = 15.0
    intervals = {"detection": 60.0, "outbox": 15.0}
    stores = [open_store(db_url) for _ in range(3)]
    calls: dict[str, list[tuple[int, float]]] = {name: [] for name in intervals}

    def job(i: int, name: str) -> Callable[[float], None]:
        return lambda now: calls[name].append((i, now))

    leases = [LeaderLease(store, holder=f"p{i}", ttl=ttl) for i, store in enumerate(stores)]
    schedulers = [
        AlertScheduler(store, {name: (interval, job(i, name)) for name, interval in intervals.items()}, leader=lease)
        for i, (store, lease) in enumerate(zip(stores, leases, strict=True))
    ]
    heartbeat = leases[0].heartbeat_seconds
    alive = [0, 1, 2]
    leading = dict.fromkeys(alive, False)
    outcomes: Counter[Outcome] = Counter()
    victim, last_renewal = -1, 0.0
    took_over: dict[int, float] = {}
    t = 0.0
    while t <= 360:
        now = T0 + t
        for i in alive:
            if t % heartbeat == 0:
                was, leading[i] = leading[i], schedulers[i].heartbeat(now)
                if leading[i] and not was:  # catch-up on taking over
                    took_over.setdefault(i, t)
                    for name in intervals:
                        outcomes[schedulers[i].run_once(name, now)] += 1
            for name, interval in intervals.items():
                if now % interval == 0:  # APScheduler fires on epoch-aligned ticks in every process
                    outcomes[schedulers[i].run_once(name, now)] += 1
        if victim < 0 and t >= kill_after:
            victim = next(i for i in alive if leases[i].is_leader(now))
            record = leases[victim].current()
            assert record is not None and record.holder == f"p{victim}"
            last_renewal = record.renewed_at - T0
            alive.remove(victim)  # kill -9: no release, no more renewals
        t += 2.5
    assert victim >= 0 and outcomes[Outcome.NOT_LEADER] > 0
    takeover = min(when for i, when in took_over.items() if i != victim)
    assert last_renewal + ttl <= takeover <= last_renewal + ttl + heartbeat

    for name, interval in intervals.items():
        ticks = Counter(tick_of(now, interval) for _, now in calls[name])
        assert max(ticks.values()) == 1, f"{name}: a tick ran twice: {ticks}"
        runners = [i for i, _ in calls[name]]
        assert runners[0] == victim and runners[-1] != victim  # the victim ran it, then its successor only
        assert len(set(runners)) == 2
        # Only a catch-up run is late, and by no more than the failover bound.
        assert max(now - tick_of(now, interval) for _, now in calls[name]) <= ttl + heartbeat
        expected = {tick_of(T0 + k * 2.5, interval) for k in range(int(360 / 2.5) + 1)}
        missed = expected - set(ticks)
        if interval >= ttl + heartbeat:
            assert not missed, f"{name} lost ticks {missed}"
        # Only ticks that began and ended while nobody led were coalesced.
        assert all(T0 + last_renewal < tick and tick + interval <= T0 + takeover for tick in missed)
    assert sum(stores[0].counters()[f"scheduler.runs.{name}.success"] for name in intervals) == sum(
        len(c) for c in calls.values()
    )
    for store in stores:
        store.close()


def test_a_tick_the_dead_leader_claimed_but_did_not_finish_is_run_by_the_new_leader_at_once(db_url: str) -> None:
    """Defect: a leader killed during a run (a spike pass, a budget evaluation) had claimed its tick, so the
    new leader's catch-up found the tick taken and skipped it: the pass was lost and the next one came a
    whole interval later (up to an hour for an hourly job), though docs/deployment.md promises a new leader
    "catches up at once" and only a tick the dead leader had *finished* is not repeated.
    """
    stores = [open_store(db_url) for _ in range(2)]
    leases = [LeaderLease(store, holder=f"p{i}", ttl=15.0) for i, store in enumerate(stores)]
    killed = threading.Event()

    def dies(now: float) -> None:
        killed.set()
        raise SystemExit  # stands for kill -9 in the middle of the run: nothing after it happens

    survivor = Recorder()
    dead = AlertScheduler(stores[0], {"detection": (60.0, dies)}, leader=leases[0])
    alive = AlertScheduler(stores[1], {"detection": (60.0, survivor)}, leader=leases[1])
    assert dead.heartbeat(T0)
    with pytest.raises(SystemExit):
        dead.run_once("detection", T0)
    assert killed.is_set()
    assert not alive.heartbeat(T0 + 10)  # the dead leader's lease still runs
    assert alive.heartbeat(T0 + 16)  # it ran out: the survivor leads and catches up
    assert alive.run_once("detection", T0 + 16) is Outcome.SUCCESS
    assert survivor.calls == [T0 + 16]
    assert alive.run_once("detection", T0 + 30) is Outcome.ALREADY_RAN  # once it finished, the tick stands
    for store in stores:
        store.close()


def test_two_processes_racing_for_the_same_tick_run_it_once(db_url: str) -> None:
    stores = [open_store(db_url) for _ in range(2)]
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
    store = open_store(sqlite_url)
    job = Recorder()
    scheduler = AlertScheduler(store, {"detection": (60.0, job)}, leader=LeaderLease(store, holder="a"))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE scheduler_ticks")
    assert scheduler.run_once("detection", T0) is Outcome.UNAVAILABLE
    assert job.calls == []
    store.close()


def test_ticks_stay_aligned_to_the_epoch_after_an_off_tick_catch_up_run() -> None:
    trigger = EpochAlignedTrigger(60)

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    minute = 1_795_000_020.0  # a whole minute
    assert trigger.get_next_fire_time(None, at(minute - 10)) == at(minute)
    assert trigger.get_next_fire_time(None, at(minute)) == at(minute)
    assert trigger.get_next_fire_time(at(minute), at(minute)) == at(minute + 60)
    assert trigger.get_next_fire_time(at(minute), at(minute + 0.2)) == at(minute + 60)
    # A catch-up run at :17 (on taking leadership) is followed by the next whole minute, not by :17 again.
    assert trigger.get_next_fire_time(at(minute + 17), at(minute + 17.1)) == at(minute + 60)
    assert trigger.get_next_fire_time(at(minute - 60), at(minute + 125)) == at(minute + 180)  # coalesced


def test_jobs_are_validated() -> None:
    store = None  # never touched: validation comes first
    with pytest.raises(ValueError, match="reserved"):
        AlertScheduler(store, {HEARTBEAT_JOB: (5.0, Recorder())})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must match"):
        AlertScheduler(store, {"bad.id": (5.0, Recorder())})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        AlertScheduler(store, {"outbox": (0.0, Recorder())})  # type: ignore[arg-type]


def test_the_background_scheduler_is_wired_with_explicit_ids_coalesce_and_one_instance(db_url: str) -> None:
    store = open_store(db_url)
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
            assert isinstance(job.trigger, EpochAlignedTrigger)
            assert job.trigger.interval.total_seconds() == 60
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


def test_a_server_that_leads_before_its_scheduler_starts_runs_every_job_at_once(db_url: str) -> None:
    """`llmcost serve` takes the lease first, then starts the scheduler: its jobs must not wait for a tick.

    They waited for the next aligned instant (up to a whole interval: a fresh demo showed no detection
    pass for up to a minute, an hourly job for up to an hour), although taking the lease promises a run.
    """
    store = open_store(db_url)
    hourly, detection = Recorder(), Recorder()
    lease = LeaderLease(store, holder="server", ttl=15)
    scheduler = AlertScheduler(store, {"retention": (3600.0, hourly), "detection": (60.0, detection)}, leader=lease)
    assert scheduler.heartbeat()  # as the server does before it starts the scheduler
    scheduler.start()
    try:
        assert hourly.event.wait(10) and detection.event.wait(10)
    finally:
        scheduler.shutdown()
    assert len(hourly.calls) == 1
    assert store.counters()["scheduler.runs.retention.success"] == 1
    store.close()
