"""The alerting scheduler: APScheduler wiring for the periodic jobs, and nothing else.

Each job is a callable `fn(now)` run every `interval` seconds on ticks aligned to the Unix epoch
(`EpochAlignedTrigger`: a 60 s job runs at :00 of every minute in every process, and an off-tick
catch-up run does not shift the later ones), with an explicit id, `coalesce=True`,
`max_instances=1` and a `misfire_grace_time` of one interval. A run:

1. with a `LeaderLease`, renews (or takes) the lease and skips unless this process holds it;
2. claims its tick in `scheduler_ticks` (`UPDATE … WHERE tick < :tick`, in the same transaction), so
   a tick runs once across processes even while leadership changes hands; a tick claimed by another
   holder whose run never finished (`scheduler.done.<job>` below it: the holder died during the run) is
   claimed again by the leader, so a pass a dead leader was in the middle of is not lost;
3. calls the job; an exception is logged and counted, never propagated into APScheduler;
4. records `scheduler.last_run.<job>` (gauge), `scheduler.runs.<job>.<outcome>` (counter), the tick it
   finished (`scheduler.done.<job>`) and, for a run that succeeded, `scheduler.last_success.<job>` in the
   store; `alerting.scheduler_collector` exposes the first two from any process, and the gateway reads the
   last one before reminding of an alert the job evaluates (`alerting.gateway.evidence`).

A store that cannot be reached (`StoreUnavailable`: down, restarting, refusing connections) is logged
calmly by `alerting.outage_log.OutageLog`: one line per job when it first fails, a reminder every few
minutes, one line when the job reaches it again; never a traceback per tick. Any other exception keeps
its traceback.

A `leader` heartbeat job renews the lease every `ttl / 3` seconds. When a process becomes leader it runs
every job at once, so the tick a dead leader missed is caught up: the work of a `kill -9`'d leader
resumes within `ttl + ttl / 3` seconds (20 s with the default 15 s ttl), and a tick it already ran is
not repeated (its claim stands); a tick it died in is run again. A job whose interval is longer than
that bound loses no tick in a failover, only runs it late; ticks of a shorter job that begin and end
while nobody leads are coalesced into the catch-up run. Without a lease every process runs the jobs,
and the tick claims alone keep them to once per tick.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Column, Float, MetaData, String, Table, text
from sqlalchemy.engine import Connection

from alerting.leader import LeaderLease
from alerting.outage_log import OutageLog, describe
from exporter.redaction import url_secrets
from exporter.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

metadata = MetaData()

scheduler_ticks = Table(
    "scheduler_ticks",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("tick", Float, nullable=False),
    Column("holder", String(256), nullable=False),
    Column("claimed_at", Float, nullable=False),
)

_CLAIM = text(
    "UPDATE scheduler_ticks SET tick = :tick, holder = :holder, claimed_at = :now WHERE job = :job AND tick < :tick"
)
# The tick a leader claimed and never finished (it died during the run): another holder may run it again.
_RECLAIM = text(
    "UPDATE scheduler_ticks SET holder = :holder, claimed_at = :now WHERE job = :job AND tick = :tick "
    "AND holder <> :holder AND NOT EXISTS (SELECT 1 FROM ingest_counters WHERE name = :done AND value >= :tick)"
)
_CLAIM_FIRST = text(
    "INSERT INTO scheduler_ticks (job, tick, holder, claimed_at) VALUES (:job, :tick, :holder, :now) "
    "ON CONFLICT (job) DO NOTHING"
)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
HEARTBEAT_JOB = "leader"
_EPOCH = datetime.fromtimestamp(0, UTC)

Job = Callable[[float], None]


class Outcome(enum.StrEnum):
    """What one call of `AlertScheduler.run_once` did; only `success` and `error` are recorded."""

    SUCCESS = "success"
    ERROR = "error"
    NOT_LEADER = "not_leader"
    """Another process holds the lease."""
    ALREADY_RAN = "already_ran"
    """This tick was claimed already (by another process, or by an earlier call)."""
    UNAVAILABLE = "unavailable"
    """The store could not be reached to check leadership or claim the tick."""


def last_run_name(job: str) -> str:
    """Persisted gauge behind `llm_scheduler_last_run_timestamp_seconds{job}`."""
    return f"scheduler.last_run.{job}"


def runs_name(job: str, outcome: str) -> str:
    """Persisted counter behind `llm_scheduler_runs_total{job, outcome}`."""
    return f"scheduler.runs.{job}.{outcome}"


def last_success_name(job: str) -> str:
    """Persisted gauge: when the last successful run of `job` started (its `now`).

    A run that raised may have stopped before it looked at every alert, so only a success vouches that the
    alerts the job evaluates and left open still hold (`alerting.gateway.evidence`).
    """
    return f"scheduler.last_success.{job}"


def done_name(job: str) -> str:
    """Persisted value: the last tick of `job` whose run finished (so a new leader does not run it again)."""
    return f"scheduler.done.{job}"


def tick_of(now: float, interval: float) -> float:
    """The start of the epoch-aligned tick containing `now`."""
    return math.floor(now / interval) * interval


class EpochAlignedTrigger(IntervalTrigger):
    """Fires at whole multiples of the interval since the Unix epoch, in every process alike.

    Unlike a plain `IntervalTrigger`, an off-tick run (the catch-up on taking leadership) does not shift
    the later ones: the next fire time is always the next aligned instant.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds=seconds, start_date=_EPOCH, timezone=UTC)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The first aligned instant at or after `now`, and strictly after `previous_fire_time`."""
        upcoming: datetime | None = super().get_next_fire_time(None, now)
        if upcoming is not None and previous_fire_time is not None and upcoming <= previous_fire_time:
            upcoming = super().get_next_fire_time(None, previous_fire_time + timedelta(microseconds=1))
        return upcoming


class AlertScheduler:
    """Runs `jobs` (id → (interval seconds, fn(now))) on a `BackgroundScheduler`, once per tick."""

    def __init__(
        self,
        store: Store,
        jobs: Mapping[str, tuple[float, Job]],
        *,
        clock: Callable[[], float] = time.time,
        leader: LeaderLease | None = None,
        misfire_grace_time: float | None = None,
        on_elected: Callable[[], object] | None = None,
    ) -> None:
        problems = [f"job id {j!r} must match {_JOB_ID.pattern}" for j in jobs if not _JOB_ID.match(j)]
        problems += [f"job {j!r}: interval must be positive" for j, (interval, _) in jobs.items() if interval <= 0]
        if HEARTBEAT_JOB in jobs:
            problems.append(f"job id {HEARTBEAT_JOB!r} is reserved for the lease heartbeat")
        if problems:
            raise ValueError("; ".join(problems))
        self.store = store
        self.jobs = {name: (float(interval), fn) for name, (interval, fn) in jobs.items()}
        self.clock = clock
        self.leader = leader
        self.holder = leader.holder if leader is not None else "local"
        self._misfire_grace_time = misfire_grace_time
        self._on_elected = on_elected  # called each time this process takes the lease
        self._leading = False
        self._secrets = url_secrets(store.url)  # never logged with a store error
        self._outages = OutageLog(log, secrets=self._secrets)
        # A fixed UTC timezone: APScheduler would otherwise ask tzlocal for the host's zone.
        self._scheduler = BackgroundScheduler(timezone=UTC)

    @property
    def leading(self) -> bool:
        """True while this process holds the lease (always true without one)."""
        return self.leader is None or self._leading

    @property
    def running(self) -> bool:
        """True between `start` and `shutdown`."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Add the jobs (and the lease heartbeat, run at once) and start the background thread.

        A process that already leads (it took the lease in a `heartbeat` before starting, as a server
        does) runs every job at once, as on any election: the current tick is claimed now rather than
        left until the next aligned instant, up to a whole interval away.
        """
        first_run = {"next_run_time": datetime.now(UTC)} if self.leading else {}
        for name, (interval, _fn) in self.jobs.items():
            self._scheduler.add_job(
                self._run_scheduled,
                EpochAlignedTrigger(interval),
                args=(name,),
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=math.ceil(self._misfire_grace_time or interval),
                replace_existing=True,
                **first_run,
            )
        if self.leader is not None:
            self._scheduler.add_job(
                self._heartbeat_scheduled,
                IntervalTrigger(seconds=self.leader.heartbeat_seconds, timezone=UTC),
                id=HEARTBEAT_JOB,
                name=HEARTBEAT_JOB,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=math.ceil(self.leader.heartbeat_seconds),
                next_run_time=datetime.now(UTC),
                replace_existing=True,
            )
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the jobs (waiting for running ones when `wait`) and hand the lease over."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        if self.leader is not None and self._leading:
            self._leading = False
            try:
                self.leader.release()
            except StoreUnavailable as error:
                log.warning("could not release the scheduler lease (%s); it expires by itself", self._describe(error))
            except Exception:
                log.warning("could not release the scheduler lease; it expires by itself", exc_info=True)

    def heartbeat(self, now: float | None = None) -> bool:
        """Renew or take the lease; on becoming leader, run every job now (catching up a missed tick)."""
        if self.leader is None:
            return True
        now = self.clock() if now is None else now
        try:
            leading = self.leader.acquire(now)
        except StoreUnavailable as error:
            self._outages.unreachable(HEARTBEAT_JOB, error, now)
            leading = False
        except Exception:
            log.warning("scheduler lease check failed; acting as follower", exc_info=True)
            leading = False
        else:
            self._outages.reachable(HEARTBEAT_JOB, now)
        self._set_leading(leading)
        return leading

    def _set_leading(self, leading: bool, running: str | None = None) -> None:
        if leading == self._leading:
            return
        log.info("scheduler %s leadership (%s)", "took" if leading else "lost", self.holder)
        self._leading = leading
        if leading and self._on_elected is not None:
            try:
                self._on_elected()
            except StoreUnavailable as error:
                log.warning("the on-election step failed: store unreachable (%s)", self._describe(error))
            except Exception:
                log.exception("the on-election step failed")
        if leading and self._scheduler.running:
            # Catch up: a tick the previous leader missed runs now; one it ran stays claimed and is skipped.
            for name in self.jobs:
                if name != running:
                    self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    def run_once(self, job: str, now: float | None = None) -> Outcome:
        """Run `job` for the tick containing `now` if this process leads and nobody ran that tick yet."""
        interval, fn = self.jobs[job]
        now = self.clock() if now is None else now
        try:
            with self.store.transaction() as conn:
                leading = self.leader is None or self.leader.acquire(now, conn=conn)
                claimed = leading and self._claim(conn, job, tick_of(now, interval), now)
        except StoreUnavailable as error:
            self._outages.unreachable(job, error, now)
            return Outcome.UNAVAILABLE
        except Exception:
            log.warning("scheduler job %s skipped: cannot check leadership or claim the tick", job, exc_info=True)
            return Outcome.UNAVAILABLE
        self._outages.reachable(job, now)
        if self.leader is not None:
            self._set_leading(leading, running=job)
        if not leading:
            return Outcome.NOT_LEADER
        if not claimed:
            return Outcome.ALREADY_RAN
        try:
            fn(now)
            outcome = Outcome.SUCCESS
        except StoreUnavailable as error:
            # The store went away after the claim (the next tick's claim reports the outage, if it lasts).
            log.warning("scheduler job %s failed: store unreachable (%s)", job, self._describe(error))
            outcome = Outcome.ERROR
        except Exception:
            log.exception("scheduler job %s failed", job)
            outcome = Outcome.ERROR
        self._record(job, outcome, now)
        return outcome

    def _claim(self, conn: Connection, job: str, tick: float, now: float) -> bool:
        params = {"job": job, "tick": tick, "holder": self.holder, "now": now, "done": done_name(job)}
        if conn.execute(_CLAIM, params).rowcount == 1:
            return True
        if conn.execute(_CLAIM_FIRST, params).rowcount == 1:
            return True
        # Claimed by another holder that never recorded the run: it died in it (we lead, so its lease
        # ran out). Run the tick again rather than lose it until the next one.
        return self.leader is not None and conn.execute(_RECLAIM, params).rowcount == 1

    def _record(self, job: str, outcome: Outcome, now: float) -> None:
        try:
            with self.store.transaction() as conn:
                self.store.add_counters({runs_name(job, outcome): 1}, conn)
                self.store.set_gauge(last_run_name(job), now, conn)
                if outcome is Outcome.SUCCESS:
                    self.store.set_gauge(last_success_name(job), now, conn)
                self.store.set_gauge(done_name(job), tick_of(now, self.jobs[job][0]), conn)
        except StoreUnavailable as error:
            self._outages.unreachable(job, error, now)
        except Exception:
            log.warning("could not record the run of scheduler job %s", job, exc_info=True)

    def _describe(self, error: BaseException) -> str:
        return describe(error, self._secrets)

    def _run_scheduled(self, job: str) -> None:
        self.run_once(job, self.clock())

    def _heartbeat_scheduled(self) -> None:
        self.heartbeat(self.clock())
