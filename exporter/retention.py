"""Retention: raw events kept `events_days`, 5-minute rollups `rollups_days`, hourly rollups for ever.

What stays exact after pruning, and why:
- `/metrics` counters read `usage_series` (cumulative totals per label set), which is never pruned.
- Budget spend lives in `budget_spend` (kept per period, never pruned); a budget created or changed
  later is rebuilt from the rollups, which read the hourly table where the 5-minute one was pruned
  (`exporter.store.rollups`): calendar periods start on a whole hour in UTC and whole-hour zones,
  and with `rollups_days` >= 366 every yearly period is still in 5-minute buckets in any zone.
- Projections (28 days of shape) and spike detection (its baseline days) read recent 5-minute
  buckets: `rollups_days` must be at least 35.
- Idempotency: a raw event is the only record of its `request_id`, so once it is pruned a replay of
  the same call could not be recognised as a duplicate. The ingest path therefore rejects any event
  older than `events_days` (`IngestPipeline(max_event_age=…)`), with a reason saying so.

Pruning works in bounded transactions (`batch_events` events, or one hour of 5-minute buckets, each),
so an ingest waits at most one short batch for the database. It runs as the scheduler's `retention`
job, on the leader only, and by hand as `llmcost prune [--dry-run]`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from exporter.store.schema import COUNTER_COLUMNS, HOUR_SECONDS

if TYPE_CHECKING:
    from exporter.store import Store

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
MIN_ROLLUP_DAYS = 35
"""Projections read 28 days of 5-minute shape and detection a baseline of days: keep a margin above."""
EVENTS_MARGIN_SECONDS = 3600
"""How much longer than `events_days` raw events are kept. Ingest refuses an event older than
`events_days` when it checks the batch, and commits it a moment later (seconds, if the database is
busy); pruning exactly at `events_days` could delete the first copy of a call in between, and its
repeat, accepted just inside the retention, would be stored as a new call and counted twice. With an
hour's margin a repeat is refused, or finds its first copy still there, whatever the commit's delay
(and a little clock skew between the ingesting and the pruning hosts)."""


@dataclass(frozen=True)
class RetentionConfig:
    """The `retention:` section; `None` keeps that kind of data for ever (the default)."""

    events_days: float | None = None
    rollups_days: float | None = None
    interval_seconds: float = 3600.0
    batch_events: int = 5000

    @property
    def enabled(self) -> bool:
        """True when anything is ever pruned."""
        return self.events_days is not None or self.rollups_days is not None

    def events_cutoff(self, now: float) -> float | None:
        """Events with a timestamp before this are pruned: `events_days` and `EVENTS_MARGIN_SECONDS` ago.

        Ingest refuses events older than `events_days` (`IngestPipeline(max_event_age=…)`), an hour later.
        """
        if self.events_days is None:
            return None
        return now - self.events_days * DAY_SECONDS - EVENTS_MARGIN_SECONDS

    def rollups_cutoff(self, now: float) -> int | None:
        """5-minute buckets before this whole UTC hour are folded into hourly rollups."""
        if self.rollups_days is None:
            return None
        return int(now - self.rollups_days * DAY_SECONDS) // HOUR_SECONDS * HOUR_SECONDS


def parse_retention(raw: Any, problems: list[str]) -> RetentionConfig:
    """Validate the `retention:` section, appending every problem to `problems`."""
    if raw is None:
        return RetentionConfig()
    if not isinstance(raw, dict):
        problems.append(f"retention: must be a mapping, got {type(raw).__name__}")
        return RetentionConfig()
    allowed = {"events_days", "rollups_days", "interval_seconds", "batch_events"}
    for key in raw:
        if key not in allowed:
            problems.append(f"retention.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    values: dict[str, Any] = {}
    for key, minimum in (("events_days", 1), ("rollups_days", MIN_ROLLUP_DAYS), ("interval_seconds", 60)):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"retention.{key}: must be a number, got {value!r}")
        elif value < minimum:
            why = " (projections read 28 days of 5-minute buckets)" if key == "rollups_days" else ""
            problems.append(f"retention.{key}: must be at least {minimum}{why}, got {value}")
        else:
            values[key] = float(value)
    batch = raw.get("batch_events")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 100 <= batch <= 100_000:
            problems.append(f"retention.batch_events: must be a whole number from 100 to 100000, got {batch!r}")
        else:
            values["batch_events"] = batch
    events, rollups = values.get("events_days"), values.get("rollups_days")
    if events is not None and rollups is not None and events > rollups:
        problems.append(f"retention.events_days ({events:g}) must not exceed retention.rollups_days ({rollups:g})")
    return RetentionConfig(**values)


@dataclass
class PruneReport:
    """What a pruning run removed (or, dry, would remove)."""

    dry_run: bool
    events_cutoff: float | None
    rollups_cutoff: int | None
    events: int = 0
    rollup_rows: int = 0
    hours: int = 0
    batches: int = 0
    bytes_before: int | None = None
    bytes_after: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (the CLI's `--format json`)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Plain-words summary for people."""
        verb = "would delete" if self.dry_run else "deleted"
        out = []
        if self.events_cutoff is None:
            out.append("raw events: kept for ever (retention.events_days not set)")
        else:
            out.append(f"raw events before {_iso(self.events_cutoff)}: {verb} {self.events:,}")
        if self.rollups_cutoff is None:
            out.append("5-minute rollups: kept for ever (retention.rollups_days not set)")
        else:
            fold = "would fold" if self.dry_run else "folded"
            out.append(
                f"5-minute rollups before {_iso(self.rollups_cutoff)}: {fold} {self.rollup_rows:,} rows "
                f"({_count(self.hours, 'hour')}) into hourly rollups, which are kept for ever"
            )
        if self.dry_run and self.bytes_before is not None:
            out.append(f"database file: {self.bytes_before:,} bytes (unchanged: a dry run changes nothing)")
        elif self.bytes_before is not None and self.bytes_after is not None:
            out.append(f"database file: {self.bytes_before:,} -> {self.bytes_after:,} bytes")
        out.extend(self.notes)
        return out


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


_FOLD_PARTS = {
    "cols": ", ".join(COUNTER_COLUMNS),
    "hour": HOUR_SECONDS,
    "sums": ", ".join(f"SUM({c})" for c in COUNTER_COLUMNS),
    "adds": ", ".join(f"{c} = usage_rollup_hourly.{c} + excluded.{c}" for c in COUNTER_COLUMNS),
}
# SQLite: one writer at a time, so copying the hour's buckets and then deleting them is atomic.
_FOLD_SQLITE = (
    "INSERT INTO usage_rollup_hourly (series_id, bucket, {cols}) "
    "SELECT series_id, bucket - (bucket % {hour}) AS hour, {sums} FROM usage_rollup "
    "WHERE bucket >= :first AND bucket < :end GROUP BY series_id, hour "
    "ON CONFLICT (series_id, bucket) DO UPDATE SET {adds}"
).format(**_FOLD_PARTS)
_DELETE_SQLITE = "DELETE FROM usage_rollup WHERE bucket >= :first AND bucket < :end"
# PostgreSQL: one statement folds exactly the rows it deletes. With a copy and a separate delete, a
# concurrent ingest adding to a bucket between the two (a late event, when only rollups_days is set)
# would be deleted without being copied, and two concurrent folds could both copy the same hour.
_FOLD_POSTGRES = (
    "WITH moved AS (DELETE FROM usage_rollup WHERE bucket >= :first AND bucket < :end RETURNING *), "
    "folded AS (INSERT INTO usage_rollup_hourly (series_id, bucket, {cols}) "
    "SELECT series_id, bucket - (bucket % {hour}) AS hour, {sums} FROM moved GROUP BY series_id, hour "
    "ON CONFLICT (series_id, bucket) DO UPDATE SET {adds} RETURNING 1) "
    "SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM folded)"
).format(**_FOLD_PARTS)


class Pruner:
    """Deletes what the retention allows, in bounded transactions; `dry_run` only counts."""

    def __init__(
        self,
        store: Store,
        config: RetentionConfig,
        *,
        clock: Callable[[], float] = time.time,
        pause: Callable[[], None] = lambda: time.sleep(0.005),
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        # Between batches: lets a waiting ingest take its turn at the database first.
        self._pause = pause

    def run(self, now: float | None = None, *, dry_run: bool = False, vacuum: bool = True) -> PruneReport:
        """Prune (or count) what is older than the retention at `now`; SQLite gives the space back."""
        now = self.clock() if now is None else now
        cfg = self.config
        report = PruneReport(dry_run, cfg.events_cutoff(now), cfg.rollups_cutoff(now))
        report.bytes_before = self.file_size()
        if dry_run:
            self._count(report)
            report.bytes_after = report.bytes_before
            return report
        if report.events_cutoff is not None:
            self._prune_events(report.events_cutoff, report)
        if report.rollups_cutoff is not None:
            self._fold_rollups(report.rollups_cutoff, report)
        if vacuum and (report.events or report.rollup_rows):
            self._give_space_back(report)
        report.bytes_after = self.file_size()
        if report.events or report.rollup_rows:
            log.info("retention: %s", "; ".join(report.lines()))
        return report

    def _count(self, report: PruneReport) -> None:
        with self.store.reading() as conn:
            if report.events_cutoff is not None:
                report.events = int(
                    conn.execute(
                        text("SELECT COUNT(*) FROM usage_events WHERE ts < :cut"), {"cut": report.events_cutoff}
                    ).scalar_one()
                )
            if report.rollups_cutoff is not None:
                rows, hours = conn.execute(
                    text(
                        f"SELECT COUNT(*), COUNT(DISTINCT bucket - (bucket % {HOUR_SECONDS})) FROM usage_rollup "
                        "WHERE bucket < :cut"
                    ),
                    {"cut": report.rollups_cutoff},
                ).one()
                report.rollup_rows, report.hours = int(rows), int(hours)

    def _prune_events(self, cutoff: float, report: PruneReport) -> None:
        # No index on ts (every index costs each insert): batches walk the table in id order, which is
        # roughly arrival order, so old events come first and each batch starts where the last ended.
        last_id = -1
        limit = self.config.batch_events
        while True:
            with self.store.transaction() as conn:
                ids = (
                    conn.execute(
                        text("SELECT id FROM usage_events WHERE id > :last AND ts < :cut ORDER BY id LIMIT :n"),
                        {"last": last_id, "cut": cutoff, "n": limit},
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return
                conn.execute(
                    text("DELETE FROM usage_events WHERE id >= :lo AND id <= :hi AND ts < :cut"),
                    {"lo": ids[0], "hi": ids[-1], "cut": cutoff},
                )
            report.events += len(ids)
            report.batches += 1
            last_id = ids[-1]
            self._pause()

    def _fold_rollups(self, cutoff: int, report: PruneReport) -> None:
        # One hour per transaction; empty hours are skipped through the bucket index.
        start = -1
        while True:
            with self.store.transaction() as conn:
                first = conn.execute(
                    text("SELECT MIN(bucket) FROM usage_rollup WHERE bucket > :after AND bucket < :cut"),
                    {"after": start, "cut": cutoff},
                ).scalar_one()
                if first is None:
                    return
                hour = int(first) // HOUR_SECONDS * HOUR_SECONDS
                end = hour + HOUR_SECONDS
                span = {"first": hour, "end": end}
                if self.store.dialect == "postgresql":
                    rows = conn.execute(text(_FOLD_POSTGRES), span).one()[0]
                else:
                    conn.execute(text(_FOLD_SQLITE), span)
                    rows = conn.execute(text(_DELETE_SQLITE), span).rowcount
            report.rollup_rows += int(rows)
            report.hours += 1
            report.batches += 1
            start = end - 1
            self._pause()

    def _sqlite_path(self) -> Path | None:
        if self.store.dialect != "sqlite":
            return None
        database = make_url(self.store.url).database
        return Path(database) if database and database != ":memory:" else None

    def file_size(self) -> int | None:
        """SQLite: the database file plus its write-ahead log, in bytes; None on PostgreSQL."""
        path = self._sqlite_path()
        if path is None or not path.exists():
            return None
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def _give_space_back(self, report: PruneReport) -> None:
        """SQLite: return free pages to the file system in small steps; PostgreSQL's autovacuum does it."""
        if self.store.dialect != "sqlite":
            return
        with self.store.reading() as conn:
            mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one()
        if int(mode) != 2:  # not INCREMENTAL: only a full VACUUM (`llmcost prune --vacuum`) shrinks it
            report.notes.append(
                "this SQLite file predates incremental vacuum: run `llmcost prune --vacuum` once "
                "(a full VACUUM, which blocks writers while it runs) to shrink it"
            )
            return
        while True:
            with self.store.transaction() as conn:
                free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
                if not free:
                    break
                conn.exec_driver_sql("PRAGMA incremental_vacuum(2000)")
            self._pause()
        self._checkpoint()

    def _checkpoint(self) -> None:
        raw = self.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    def full_vacuum(self) -> None:
        """SQLite: `VACUUM` (switching the file to incremental vacuum); blocks writers while it runs."""
        if self.store.dialect != "sqlite":
            return
        with self.store.writer_turn():
            raw = self.store.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
                cursor.execute("VACUUM")
                cursor.close()
            finally:
                raw.close()
        self._checkpoint()
