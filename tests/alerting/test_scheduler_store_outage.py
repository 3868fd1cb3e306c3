"""A PostgreSQL restart under a running scheduler is logged calmly: a line when it goes, a line when it is back.

Before, every skipped run and every lease heartbeat logged a full traceback while the database was down
(about 4,000 lines for a 25 s restart with `budgets.evaluate_seconds: 1`). A job that fails for any other
reason (a bug) still logs its traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from alerting.leader import LeaderLease
from alerting.outage_log import OutageLog
from alerting.scheduler import HEARTBEAT_JOB, AlertScheduler
from alerting.store import open_store
from exporter.store import StoreUnavailable
from tests.support.clock import FakeClock
from tests.support.pg import PostgresCluster
from tests.support.waiting import wait_until

PASSWORD = "s3cret-pw"  # trust auth accepts any password: it only has to stay out of the log
DOWN_SECONDS = 3.0
BUG_LINE = "scheduler job broken failed"


class Ticks:
    """A job that records when it ran; `buggy` makes it raise a plain bug every time."""

    def __init__(self, buggy: bool = False) -> None:
        self.times: list[float] = []
        self.buggy = buggy
        self._lock = threading.Lock()

    def __call__(self, now: float) -> None:
        with self._lock:
            self.times.append(time.time())
        if self.buggy:
            raise KeyError("a bug, not an outage")

    def after(self, moment: float) -> int:
        with self._lock:
            return sum(t > moment for t in self.times)


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    started = PostgresCluster().start()  # its own: stopped and restarted below
    try:
        yield started
    finally:
        started.destroy()


@pytest.mark.real_process
def test_a_postgresql_restart_logs_one_line_per_job_when_it_goes_and_one_when_it_is_back(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = cluster.create_database().replace("postgres@", f"postgres:{PASSWORD}@")
    store = open_store(url)
    budgets, outbox, buggy = Ticks(), Ticks(), Ticks(buggy=True)
    scheduler = AlertScheduler(
        store,
        {"budgets": (1.0, budgets), "outbox": (1.0, outbox), "broken": (1.0, buggy)},
        leader=LeaderLease(store, holder="only", ttl=1.5),  # a heartbeat every 0.5 s
    )
    # The levels `llmcost serve` logs at (llmcost/cli/__init__.py); the last call sets the handler's level.
    caplog.set_level(logging.WARNING, logger="apscheduler")
    caplog.set_level(logging.INFO)
    scheduler.start()
    try:
        wait_until(lambda: budgets.after(0) and outbox.after(0), timeout=10, what="jobs ran")
        wait_until(
            lambda: [r for r in caplog.records if r.exc_info and r.getMessage() == BUG_LINE],
            timeout=10,
            what="the traceback of a job failing for a bug",
        )
        caplog.clear()

        cluster.stop("fast")
        time.sleep(DOWN_SECONDS)  # the outage itself: several ticks of every job and heartbeat go by
        cluster.restart()
        back = time.time()
        wait_until(
            lambda: budgets.after(back) and outbox.after(back), timeout=15, what="jobs running again after the restart"
        )
        tracebacks = [r.getMessage() for r in caplog.records if r.exc_info and r.getMessage() != BUG_LINE]
        assert not tracebacks, f"{len(tracebacks)} tracebacks for a connection error, the first: {tracebacks[0]}"
        wait_until(
            lambda: sum("store reachable again after" in r.getMessage() for r in caplog.records) >= 4,
            timeout=10,
            what="a 'reachable again' line per job",
        )
    finally:
        scheduler.shutdown()
        store.close()

    records = [r for r in caplog.records if r.getMessage() != BUG_LINE]
    text = "\n".join(r.getMessage() for r in records)
    assert not [r for r in records if r.exc_info], f"a traceback for a connection error:\n{text}"
    assert PASSWORD not in text and PASSWORD not in caplog.text
    for job in ("budgets", "outbox", "broken", HEARTBEAT_JOB):
        lines = [m for m in text.splitlines() if f"scheduler job {job}:" in m or f"scheduler job {job} " in m]
        assert len(lines) <= 3, f"{job} logged {len(lines)} lines for one outage:\n" + "\n".join(lines)
        went = [m for m in lines if "store unreachable (psycopg." in m]
        assert went, f"{job}: no line naming the job and the driver's error when the store went:\n{text}"
        assert any("store reachable again after" in m for m in lines), f"{job}: no line when it was back"
    assert len(records) <= 20, f"{len(records)} log records for one {DOWN_SECONDS:.0f} s outage:\n{text}"


def test_an_outage_that_lasts_is_recalled_every_few_minutes_not_every_tick(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    outages = OutageLog(logging.getLogger("test.outage"), secrets=[PASSWORD], remind_seconds=300)
    error = StoreUnavailable(f"connection failed: password {PASSWORD} refused\n\thint on a second line")
    caplog.set_level(logging.INFO)
    start = clock()
    for second in range(0, 601, 5):  # a job every 5 s through a 10-minute outage
        outages.unreachable("outbox", error, start + second)
    outages.reachable("outbox", start + 605)
    outages.reachable("outbox", start + 610)  # already back: nothing more
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages  # went, reminded at 300 s and 600 s, back
    assert messages[0] == (
        "scheduler job outbox: store unreachable (exporter.StoreUnavailable: connection failed: password "
        "[REDACTED] refused); skipping its runs until it answers"
    )
    assert "still unreachable after 300 s" in messages[1] and "after 600 s" in messages[2]
    assert messages[3] == "scheduler job outbox: store reachable again after 605 s"
    assert all(PASSWORD not in m and "hint" not in m for m in messages)
    assert not [r for r in caplog.records if r.exc_info]
