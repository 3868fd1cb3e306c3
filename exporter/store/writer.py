"""The ingest write path: one transaction per batch, idempotent on `request_id`, rollups maintained.

It works on the raw DB-API connection: SQLAlchemy Core costs ~10 µs more per row (docs/performance.md), and
this path is budgeted at a few µs per event. The SQL is identical on SQLite and PostgreSQL apart from
the placeholder style and how inserted rows are told apart from duplicates:

- SQLite: the writer holds the database write lock (`BEGIN IMMEDIATE`), so it first tries to insert
  the whole batch; if the row count shows duplicates it rolls back to a savepoint, asks which ids
  exist, and inserts the others.
- PostgreSQL: `INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING request_id` names
  the inserted rows even when another process inserts the same ids concurrently. Rows are written in
  a fixed order (events by request_id, rollups by key) so concurrent batches cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol

import orjson
from sqlalchemy.engine import Engine

from exporter.events import UsageEvent, session_of
from exporter.store.schema import BACKFILL_GENERATION, BUCKET_SECONDS, COUNTER_COLUMNS, LABEL_COLUMNS, LATE_SECONDS

log = logging.getLogger(__name__)

SeriesKey = tuple[str, str, str, str, str, str]
"""An event's label set: provider, model, project, service, user, status."""

SERIES_CACHE_MAX = 50_000
"""Series ids kept in memory (label sets of up to 6 x 256 characters); past it the cache starts again."""

_SQLITE_ROWS_PER_INSERT = 250
"""Event rows per SQLite INSERT statement (17 parameters each; SQLite allows 32,766 per statement)."""

_LABELS_SQL = ", ".join(f'"{c}"' for c in LABEL_COLUMNS)
_COUNTERS_SQL = ", ".join(COUNTER_COLUMNS)
_EVENT_COLUMNS = (
    "request_id, ts, series_id, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, "
    "reasoning_tokens, cost_nanousd, cost_source, latency_ms, meta_json, ingested_at, "
    "cache_write_1h_tokens, price_source, price_from, session"
)
# On SQLite, a missing latency or metadata travels as a sentinel that SQL turns back into NULL: the
# sqlite3 module binds int, float and str directly, but sends None through its adapter lookup, which
# costs ~3,000 instructions a parameter (it raises and clears an AttributeError), 8% of an ingest.
_NO_LATENCY = -1.0  # latency_ms is validated >= 0
_NO_METADATA = ""  # metadata is stored as a JSON object or not at all
_SQLITE_EVENT_VALUES = (
    "(" + ", ".join(["?"] * 10) + f", NULLIF(?, {_NO_LATENCY!r}), NULLIF(?, {_NO_METADATA!r}), ?, ?, ?, ?, "
    "NULLIF(?, ''))"
)
_SQL = {
    "series_insert": f"INSERT INTO usage_series ({_LABELS_SQL}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "series_select": "SELECT id FROM usage_series WHERE " + " AND ".join(f'"{c}" = ?' for c in LABEL_COLUMNS),
    "event_insert": f"INSERT INTO usage_events ({_EVENT_COLUMNS}) VALUES {_SQLITE_EVENT_VALUES} "
    "ON CONFLICT (request_id) DO NOTHING",
    "event_insert_many": f"INSERT INTO usage_events ({_EVENT_COLUMNS}) VALUES "
    + ", ".join([_SQLITE_EVENT_VALUES] * _SQLITE_ROWS_PER_INSERT)
    + " ON CONFLICT (request_id) DO NOTHING",
    "rollup_upsert": f"INSERT INTO usage_rollup (series_id, bucket, {_COUNTERS_SQL}) "
    f"VALUES (?, ?, {', '.join(['?'] * len(COUNTER_COLUMNS))}) "
    "ON CONFLICT (series_id, bucket) DO UPDATE SET "
    + ", ".join(f"{c} = usage_rollup.{c} + excluded.{c}" for c in COUNTER_COLUMNS),
    "series_update": "UPDATE usage_series SET "
    + ", ".join(f"{c} = {c} + ?" for c in COUNTER_COLUMNS)
    + " WHERE id = ?",
    "counter_add": "INSERT INTO ingest_counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + excluded.value",
    "generation_next": "INSERT INTO ingest_counters (name, value) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + 1 RETURNING value",
    "backfill_insert": "INSERT INTO rollup_backfill (generation, oldest_bucket, written_at) VALUES (?, ?, ?)",
    "backfill_prune": "DELETE FROM rollup_backfill WHERE generation <= ?",
}
_BACKFILL_KEEP = 10_000
"""`rollup_backfill` rows kept; a reader further behind than this reads everything again."""


_PG_ROWS_PER_INSERT = 10_000
"""Event rows per PostgreSQL statement: libpq keeps a connection's buffers at the largest message sent."""

# PostgreSQL's batch insert: one array parameter per column, in _EVENT_COLUMNS order (the casts name
# each array's type, so a column that is NULL in every row still has one).
_PG_EVENT_INSERT = (
    f"INSERT INTO usage_events ({_EVENT_COLUMNS}) SELECT * FROM unnest("
    "%s::text[], %s::float8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], "
    "%s::int8[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s::int8[], %s::text[], %s::text[], %s::text[]) "
    "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)


def _placeholders(sql: str, style: str) -> str:
    return sql.replace("?", "%s") if style == "format" else sql


def counter_add_sql(postgres: bool) -> str:
    """The statement that adds `(name, delta)` to a persisted counter (created at 0), in the driver's style."""
    return _placeholders(_SQL["counter_add"], "format" if postgres else "qmark")


Corrections = Mapping[tuple[int, int], Sequence[tuple[float, int]]]
"""Per (series id, bucket), each corrected event's ingest time and cost change in nanodollars."""


class WriteHook(Protocol):
    """Extra work inside the ingest transaction (budget spend), fed the batch's rollup increments.

    `rollups` maps (series id, bucket) to the counters in COUNTER_COLUMNS order; `series` maps the
    series ids to their labels. Whatever `apply` returns is handed to after-commit callbacks.
    `corrections` is None for an ingest (everything in it is counted now); a correction of calls
    counted earlier (repricing) gives each event's ingest time and cost change, which the rollup
    increments add up, so a hook can tell what it counted before a given moment (a budget reset).
    """

    def apply(
        self,
        cursor: Any,
        postgres: bool,
        rollups: Mapping[tuple[int, int], Sequence[int]],
        series: Mapping[int, SeriesKey],
        corrections: Corrections | None = None,
    ) -> Any:
        """Do the extra writes on `cursor` (same transaction); the result goes to after-commit callbacks."""


@dataclass
class WriteResult:
    """What one batch did: `inserted[i]` is False when event i was a duplicate."""

    inserted: list[bool]
    accepted: int = 0
    duplicates: int = 0
    new_series: dict[SeriesKey, int] = field(default_factory=dict)
    hook_results: list[Any] = field(default_factory=list)
    events: Sequence[Any] = ()
    """The batch's events (set by `Store.write_events` for after-commit callbacks; `inserted` flags them)."""


def skipped_counter(reason: str) -> str:
    """The `ingest_counters` row counting the records skipped for `reason` (`exporter.events.SKIP_REASONS`)."""
    return f"skipped_{reason}"


class BatchWriter:
    """Writes batches of priced events; one instance per store, used from one thread at a time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        style = "format" if self._postgres else "qmark"
        self._sql = {name: _placeholders(sql, style) for name, sql in _SQL.items()}
        if self._postgres:
            self._sql["counter_max"] = (
                "INSERT INTO ingest_counters (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = GREATEST(ingest_counters.value, excluded.value)"
            )
        else:
            self._sql["counter_max"] = (
                "INSERT INTO ingest_counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(ingest_counters.value, excluded.value)"
            )
        self._series_ids: dict[SeriesKey, int] = {}
        self.hooks: list[WriteHook] = []

    def write_prepared(
        self, batch: PreparedBatch, *, rejected: int = 0, skipped: Mapping[str, int] | None = None
    ) -> WriteResult:
        """Store a batch made by `prepare_batch` in one transaction and count `rejected` and `skipped` records.

        `skipped` counts records of no call to count by reason (`skipped_counter` names their counters).

        Returns which events were new. `prepare_batch` needs no database, so callers run it before
        taking the writer's turn. The batch is used up: its rows are dropped once they are written.
        """
        events = batch.events
        inserted = [False] * len(events)
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if not self._postgres:
                    cursor.execute("BEGIN IMMEDIATE")
                distinct_keys = batch.distinct_keys
                new_series = self._resolve_series(cursor, distinct_keys)
                ids = self._series_ids
                key_sid = {key: ids.get(key) or new_series[key] for key in distinct_keys}
                rows = batch.rows
                for (key, _bucket), group in batch.groups.items():
                    sid = key_sid[key]
                    for row in group:
                        row[2] = sid
                new_flags = self._insert_events(cursor, rows)
                # Written: a large batch's rows are not kept while its rollups are built.
                rows.clear()
                batch.groups.clear()
                fresh = [i for i, new in zip(batch.unique, new_flags, strict=True) if new]
                for i in fresh:
                    inserted[i] = True
                accepted = len(fresh)
                # Usually every row is new and the rollups summed in advance apply as they are; else
                # they are summed again over the new events only (a rare, duplicate-carrying batch).
                by_labels = batch.rollups
                if accepted < len(batch.unique):
                    by_labels = prepare_batch([events[i] for i in fresh], batch.now, postgres=self._postgres).rollups
                rollups = {(key_sid[key], bucket): acc for (key, bucket), acc in by_labels.items()}
                self._write_rollups(cursor, rollups)
                self._log_backfill(cursor, rollups, batch.now)
                sid_labels = {sid: key for key, sid in key_sid.items()}
                hook_results = []
                if rollups and self.hooks:
                    hook_results = [hook.apply(cursor, self._postgres, rollups, sid_labels) for hook in self.hooks]
                counters = [
                    ("accepted", accepted),
                    ("duplicate", len(events) - accepted),
                    ("rejected", rejected),
                    *((skipped_counter(reason), count) for reason, count in (skipped or {}).items()),
                ]
                cursor.executemany(self._sql["counter_add"], [c for c in counters if c[1]])
                if accepted:
                    cursor.execute(self._sql["counter_max"], ("last_accepted_ts", batch.now))
                raw.commit() if self._postgres else cursor.execute("COMMIT")
            except BaseException:
                self._roll_back(raw, cursor)
                raise
            finally:
                cursor.close()
        finally:
            raw.close()
        # Only a committed series id may be cached: a rolled-back one would point nowhere.
        if len(self._series_ids) + len(new_series) > SERIES_CACHE_MAX:
            self._series_ids.clear()  # a label flood must not stay in memory; a miss costs one SELECT
        if len(new_series) <= SERIES_CACHE_MAX:
            self._series_ids.update(new_series)
        return WriteResult(inserted, accepted, len(events) - accepted, new_series, hook_results)

    def _roll_back(self, raw: Any, cursor: Any) -> None:
        """Roll the failed batch back, or discard its connection when the rollback cannot reach the database.

        A database that stopped mid-batch (a PostgreSQL restart) fails the rollback too. Raised here, that
        error would hide the batch's own; and the connection, handed back to the pool with its transaction
        open, would fail the pool's rollback again, which SQLAlchemy logs as `Exception during reset` with
        a traceback. Invalidated, the pool drops it and opens a new one when the database is back.
        """
        try:
            if self._postgres:
                raw.rollback()
            elif raw.driver_connection.in_transaction:
                cursor.execute("ROLLBACK")
        except Exception:
            log.debug("rollback of a failed batch failed; discarding its connection", exc_info=True)
            raw.invalidate()

    def _log_backfill(self, cursor: Any, rollups: Mapping[tuple[int, int], Any], now: float) -> None:
        """Log a batch that wrote to buckets older than `LATE_SECONDS` (see `log_rollup_backfill`)."""
        if rollups:
            log_rollup_backfill(cursor, self._postgres, min(bucket for _sid, bucket in rollups), now)

    def _resolve_series(self, cursor: Any, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        known = self._series_ids
        missing = sorted({k for k in keys if k not in known})
        if not missing:
            return {}
        cursor.executemany(self._sql["series_insert"], missing)
        found: dict[SeriesKey, int] = {}
        for key in missing:
            cursor.execute(self._sql["series_select"], key)
            found[key] = cursor.fetchone()[0]
        return found

    def _insert_events(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> list[bool]:
        if not rows:
            return []
        if self._postgres:
            # One statement per batch (up to _PG_ROWS_PER_INSERT rows): the rows travel as 17 arrays and
            # `unnest` turns them back into rows. `executemany … RETURNING` would answer with one result
            # set per row, walked in Python. The rows are in request_id order, and so are the pieces.
            returned: set[str] = set()
            for start in range(0, len(rows), _PG_ROWS_PER_INSERT):
                piece = rows[start : start + _PG_ROWS_PER_INSERT]
                cursor.execute(_PG_EVENT_INSERT, [list(column) for column in zip(*piece, strict=True)])
                returned.update(r[0] for r in cursor.fetchall())
            return [row[0] in returned for row in rows]
        cursor.execute("SAVEPOINT batch")
        if self._insert_sqlite_rows(cursor, rows) == len(rows):
            cursor.execute("RELEASE batch")
            return [True] * len(rows)
        # Some ids exist already: undo, find them, insert only the new ones.
        cursor.execute("ROLLBACK TO batch")
        existing: set[str] = set()
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor.execute(
                f"SELECT request_id FROM usage_events WHERE request_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            existing.update(r[0] for r in cursor.fetchall())
        flags = [row[0] not in existing for row in rows]
        self._insert_sqlite_rows(cursor, [row for row, new in zip(rows, flags, strict=True) if new])
        cursor.execute("RELEASE batch")
        return flags

    def _insert_sqlite_rows(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> int:
        """Insert event rows on SQLite, many rows per statement; returns how many were new.

        A statement of `_SQLITE_ROWS_PER_INSERT` rows costs ~20% less per row than `executemany` of
        one-row statements: fewer statement steps and resets, and one bind call per statement.
        """
        inserted = 0
        whole = len(rows) - len(rows) % _SQLITE_ROWS_PER_INSERT
        for start in range(0, whole, _SQLITE_ROWS_PER_INSERT):
            params = list(chain.from_iterable(rows[start : start + _SQLITE_ROWS_PER_INSERT]))
            inserted += cursor.execute(self._sql["event_insert_many"], params).rowcount
        if whole < len(rows):
            cursor.executemany(self._sql["event_insert"], rows[whole:])
            inserted += cursor.rowcount
        return inserted

    def _write_rollups(self, cursor: Any, rollups: Mapping[tuple[int, int], list[int]]) -> None:
        """Add the increments to their 5-minute buckets and to the series' running totals."""
        if not rollups:
            return
        totals: dict[int, list[int]] = {}
        for (sid, _bucket), acc in rollups.items():
            tot = totals.get(sid)
            if tot is None:
                totals[sid] = list(acc)
            else:
                for j in range(8):
                    tot[j] += acc[j]
        cursor.executemany(self._sql["rollup_upsert"], [(*key, *rollups[key]) for key in sorted(rollups)])
        cursor.executemany(self._sql["series_update"], [(*totals[sid], sid) for sid in sorted(totals)])


def log_rollup_backfill(cursor: Any, postgres: bool, oldest_bucket: int, now: float) -> None:
    """Record, in the caller's transaction, that rollups from `oldest_bucket` on were written at `now`.

    Every writer of `usage_rollup` calls this (ingest does), so readers that keep buckets in memory (the
    spike detector) re-read what changed. Buckets newer than `LATE_SECONDS` are not logged: readers
    re-read that much on every pass anyway. The generation comes from one counter row, updated in this
    transaction: its row lock (PostgreSQL) or the database write lock (SQLite) makes the numbers commit
    in order, so a reader that has seen generation g has seen every row up to g.
    """
    if oldest_bucket >= now - LATE_SECONDS:
        return
    style = "format" if postgres else "qmark"
    cursor.execute(_placeholders(_SQL["generation_next"], style), (BACKFILL_GENERATION,))
    generation = int(cursor.fetchone()[0])
    cursor.execute(_placeholders(_SQL["backfill_insert"], style), (generation, oldest_bucket, now))
    if generation % 1000 == 0:
        cursor.execute(_placeholders(_SQL["backfill_prune"], style), (generation - _BACKFILL_KEEP,))


@dataclass
class PreparedBatch:
    """A batch made ready for the database outside the writer's turn (see `prepare_batch`)."""

    events: Sequence[UsageEvent]
    now: float
    unique: list[int]  # index of the first event of each request_id (PostgreSQL: sorted by request_id)
    rows: list[list[Any]]  # event rows in _EVENT_COLUMNS order; the series id (index 2) is filled in later
    groups: dict[tuple[SeriesKey, int], list[list[Any]]]  # the rows of each (series, bucket)
    rollups: dict[tuple[SeriesKey, int], list[int]]  # increments per (series, bucket) if every row is new

    @property
    def distinct_keys(self) -> set[SeriesKey]:
        """The series (label sets) of the batch."""
        return {key for key, _bucket in self.groups}


def prepare_batch(events: Sequence[UsageEvent], now: float, *, postgres: bool) -> PreparedBatch:
    """The per-event Python work of a write, done before taking the writer's turn.

    Writers take turns (one SQLite writer at a time), so what needs no database (row lists, the
    rollup sums) is done here, where the workers of `llmcost serve --workers` run it in parallel.
    """
    # The first event of each request_id; a batch rarely repeats one, so usually that is every event.
    first_index = {events[i].request_id: i for i in range(len(events) - 1, -1, -1)}
    unique = list(range(len(events))) if len(first_index) == len(events) else sorted(first_index.values())
    if postgres:
        unique.sort(key=lambda i: events[i].request_id)
    no_latency, no_metadata = (None, None) if postgres else (_NO_LATENCY, _NO_METADATA)
    no_session = None if postgres else ""
    rows: list[list[Any]] = []
    groups: dict[tuple[SeriesKey, int], list[list[Any]]] = {}
    # One pass that reads each attribute once and only files each row under its (series, bucket): this
    # loop runs for every event ingested. The sums are taken per group below, column by column in C.
    for i in unique:
        ev = events[i]
        # float(): an event built in Python may carry an int (`UsageEvent(..., timestamp=1764000000)`);
        # PostgreSQL's array parameters refuse a column mixing ints and floats.
        timestamp = float(ev.timestamp)
        latency = ev.latency_ms
        row = [
            ev.request_id,
            timestamp,
            None,
            ev.input_tokens,
            ev.cache_read_tokens,
            ev.cache_write_tokens,
            ev.output_tokens,
            ev.reasoning_tokens,
            ev.cost_nanousd or 0,
            ev.cost_source or "supplied",
            float(latency) if latency is not None else no_latency,
            ev.metadata_text or (orjson.dumps(ev.metadata).decode() if ev.metadata else no_metadata),
            now,
            ev.cache_write_1h_tokens,
            ev.price_source,
            ev.price_from,
            (session_of(ev) or no_session) if ev.session or ev.metadata else no_session,
        ]
        rows.append(row)
        # The label set the event is counted under, and its bucket.
        bucket_key = (
            (ev.provider, ev.model, ev.project, ev.service, ev.user, ev.status),
            int(timestamp // BUCKET_SECONDS) * BUCKET_SECONDS,
        )
        group = groups.get(bucket_key)
        if group is None:
            groups[bucket_key] = [row]
        else:
            group.append(row)
    rollups: dict[tuple[SeriesKey, int], list[int]] = {}
    for bucket_key, group in groups.items():
        columns = list(zip(*group, strict=True))
        # requests, input, cache read, cache write, output, reasoning, cost, unpriced requests
        rollups[bucket_key] = [len(group), *map(sum, columns[3:9]), columns[9].count("unpriced")]
    return PreparedBatch(events, now, unique, rows, groups, rollups)
