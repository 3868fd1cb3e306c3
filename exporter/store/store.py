"""The `Store` facade: opens the database, migrates it, writes batches and answers the read queries.

Every read here works on `usage_series` (one row per label set) or the rollups (5-minute buckets, and
hourly ones where those were pruned), never on raw events, so scrapes and budget checks cost the same
at a million events as at ten.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from exporter.events import UsageEvent
from exporter.store.driver_sql import driver_cursor
from exporter.store.engine import POOL_TIMEOUT, create_store_engine, normalise_url
from exporter.store.known_silent import STORE_KNOWN_SILENT
from exporter.store.label_folding import (
    INGEST_ORDER_SLACK_SECONDS,
    OTHER_VALUE,
    Folding,
    distinct_values_sql,
    folded_sums_sql,
    last_id_ingested_before,
    top_values_as_of_sql,
    top_values_sql,
    unpriced_models_sql,
)
from exporter.store.migration import (
    EXPORTER_SCHEMA,
    SchemaInUse,
    SchemaLocked,
    SchemaPart,
    migrate,
    require_existing_store,
)
from exporter.store.rollups import rollups_in_range
from exporter.store.schema import (
    ADJUSTMENT_COLUMNS,
    BUCKET_SECONDS,
    COUNTER_COLUMNS,
    LABEL_COLUMNS,
    ingest_counters,
    usage_events,
    usage_series,
)
from exporter.store.writer import (
    BatchWriter,
    Corrections,
    SeriesKey,
    WriteHook,
    WriteResult,
    counter_add_sql,
    prepare_batch,
)
from exporter.store.writer_turn import WriterTurn, sqlite_lock_path

log = logging.getLogger(__name__)

_TOTALS_INDEX = {name: i for i, name in enumerate((*COUNTER_COLUMNS, *ADJUSTMENT_COLUMNS))}


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or refused the operation; the caller may retry later."""


@dataclass(frozen=True)
class SeriesTotals:
    """Cumulative counters of one label group.

    The labels are as asked for, the counters in COUNTER_COLUMNS order, then ADJUSTMENT_COLUMNS when
    they were asked for.
    """

    labels: tuple[str, ...]
    counters: tuple[int, ...]

    def get(self, name: str) -> int:
        """One counter by column name."""
        return self.counters[_TOTALS_INDEX[name]]


def _is_connection_error(exc: BaseException) -> bool:
    """Errors worth a retry: the database is down, restarting, locked, or dropped the connection.

    The raw write path sees the drivers' own PEP 249 exceptions (psycopg, sqlite3), not SQLAlchemy's.
    A pool with no free connection for `pool_timeout` (PoolTimeout) is one too: every connection is
    held by a query the database does not answer (paused, partitioned), and the caller should get a
    503 to retry or its fail mode, not a 500 with a traceback.
    """
    if isinstance(exc, (OperationalError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and bool(exc.connection_invalidated):
        return True
    return type(exc).__name__ in ("OperationalError", "InterfaceError") or any(
        base.__name__ in ("OperationalError", "InterfaceError") for base in type(exc).__mro__
    )


def _refuse_if_known_silent() -> None:
    """Fail at once, holding no thread, in a request started while the store does not answer (known_silent.py)."""
    if STORE_KNOWN_SILENT.get():
        raise StoreUnavailable("the store does not answer (known from the store probe's unanswered ping)")


def _reason(exc: BaseException) -> str:
    """What a StoreUnavailable says: the driver's error where there is one (SQLAlchemy's adds a URL to docs)."""
    return str(getattr(exc, "orig", None) or exc)


class Store:
    """Owns the engine and the single writer; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        auto_migrate: bool = True,
        read_only: bool = False,
        must_exist: bool = False,
        migrations: Sequence[SchemaPart] = (),
        pool_timeout: float = POOL_TIMEOUT,
    ) -> None:
        """Open the store at `url`; `read_only`: the database refuses writes and nothing is migrated.

        `read_only` or `must_exist`: a missing store is a `StoreNotFound`, never created empty.
        `pool_timeout`: see `create_store_engine` (a pool with no free connection is StoreUnavailable).
        `migrations`: the schema parts of other packages, migrated (and required) besides exporter's
        usage tables; the product's store passes alerting's (see alerting/store.py).
        """
        self.url = normalise_url(url)
        self.read_only = read_only
        self.schema: tuple[SchemaPart, ...] = (EXPORTER_SCHEMA, *migrations)
        if read_only or must_exist:
            # Checked before the engine exists: SQLite would create an empty file on the first connect.
            probe = create_store_engine(self.url, pool_size=1, read_only=True)
            try:
                require_existing_store(probe, self.url, self.schema, current=read_only)
            finally:
                probe.dispose()
        self.engine = create_store_engine(self.url, read_only=read_only, pool_timeout=pool_timeout)
        self.dialect = self.engine.dialect.name
        self.clock = clock
        self._writer = BatchWriter(self.engine)
        self._sqlite = self.dialect == "sqlite"
        pool = self.engine.pool
        self._postgres_pool = pool if isinstance(pool, QueuePool) and not self._sqlite else None
        self._unpooled: Engine | None = None
        self._unpooled_lock = threading.Lock()
        # SQLite has one writer at a time: writers of this process and of other llmcost processes on the
        # same file queue on a lock that wakes the next one at once (see writer_turn). On PostgreSQL it
        # only keeps the batch writer to one thread. Re-entrant: a transaction may call a write helper.
        self._write_lock = WriterTurn(sqlite_lock_path(make_url(self.url).database) if self._sqlite else None)
        self._after_commit: list[Callable[[WriteResult], None]] = []
        if auto_migrate and not read_only:
            try:
                self.migrate()
            except BaseException:
                self.engine.dispose()  # the caller never gets this Store to close
                raise

    def migrate(self) -> None:
        """Create or upgrade the schema (every part in `self.schema`)."""
        try:
            migrate(self.engine, self.schema)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot migrate the store: {exc.orig}") from exc
        except (SchemaLocked, SchemaInUse) as exc:
            raise StoreUnavailable(f"cannot migrate the store: {exc}") from exc

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        if self._unpooled is not None:
            self._unpooled.dispose()
        self._write_lock.close()

    def write_events(
        self, events: Sequence[UsageEvent], *, rejected: int = 0, skipped: Mapping[str, int] | None = None
    ) -> WriteResult:
        """Store priced events durably (committed on return); duplicates by request_id are not stored again.

        `rejected` and `skipped` (by reason) are counted in the same transaction.
        """
        # The per-event Python work needs no database, so it is done before queueing for the turn.
        batch = prepare_batch(events, self.clock(), postgres=not self._sqlite)
        with self._write_lock:
            try:
                result = self._writer.write_prepared(batch, rejected=rejected, skipped=skipped)
                result.events = events
            except Exception as exc:
                if _is_connection_error(exc):
                    raise StoreUnavailable(_reason(exc)) from exc
                raise
        self.run_after_commit(result)
        return result

    def run_write_hooks(
        self,
        conn: Connection,
        rollups: Mapping[tuple[int, int], Sequence[int]],
        series: Mapping[int, SeriesKey],
        corrections: Corrections | None = None,
    ) -> list[Any]:
        """Run the ingest write hooks (budget spend) on increments made outside an ingest (repricing).

        `rollups` maps (series id, bucket) to increments in COUNTER_COLUMNS order (negative allowed);
        `corrections` breaks the cost increments down by the corrected events' ingest times (see
        `WriteHook`). Call `run_after_commit` with the results once `conn`'s transaction committed.
        """
        cursor = driver_cursor(conn)
        return [hook.apply(cursor, not self._sqlite, rollups, series, corrections) for hook in self._writer.hooks]

    def run_after_commit(self, result: WriteResult) -> None:
        """Tell the after-commit observers (e.g. the budget check cache) what a committed write did."""
        for callback in self._after_commit:
            try:
                callback(result)
            except Exception:  # committed already; a failing observer must not fail the caller
                log.exception("after-commit callback failed")

    def add_write_hook(self, hook: WriteHook, after_commit: Callable[[WriteResult], None] | None = None) -> None:
        """Run `hook` inside every ingest transaction, and `after_commit` once it committed.

        One hook per type: adding a second of the same type only adds its `after_commit`.
        """
        if not any(type(existing) is type(hook) for existing in self._writer.hooks):
            self._writer.hooks.append(hook)
        if after_commit is not None:
            self._after_commit.append(after_commit)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE); commits on success, rolls back on error.

        Connection failures surface as `StoreUnavailable` so callers can answer 503 and retry.
        """
        _refuse_if_known_silent()
        try:
            with self._sqlite_writer_turn(), self.engine.connect() as conn:
                if self._sqlite:
                    conn = conn.execution_options(sqlite_immediate=True)
                with conn.begin():
                    yield conn
        except (OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    def writer_turn(self) -> Any:
        """Hold this process's writer turn (SQLite; a no-op on PostgreSQL) for work outside `transaction`."""
        return self._sqlite_writer_turn()

    @contextmanager
    def _sqlite_writer_turn(self) -> Iterator[None]:
        """On SQLite, wait for this process's other writers first (see `__init__`); on PostgreSQL, nothing."""
        if not self._sqlite:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads; connection failures surface as `StoreUnavailable`."""
        _refuse_if_known_silent()
        try:
            with self.engine.connect() as conn:
                yield conn
        except (OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    @contextmanager
    def raw_cursor(self) -> Iterator[tuple[Any, str]]:
        """A DB-API cursor and its placeholder (`?` or `%s`) for hot *read* paths; errors → StoreUnavailable.

        On PostgreSQL the cursor runs in autocommit: each query is one round trip, without the BEGIN and
        COMMIT round trips of a transaction (each statement still sees a consistent snapshot).
        """
        _refuse_if_known_silent()
        try:
            raw = self.engine.raw_connection()
        except Exception as exc:
            if _is_connection_error(exc):
                raise StoreUnavailable(_reason(exc)) from exc
            raise
        postgres = self.dialect == "postgresql"
        try:
            if postgres:
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor = raw.cursor()
            try:
                yield cursor, "%s" if postgres else "?"
            finally:
                cursor.close()
            if not postgres:
                raw.commit()
        except Exception as exc:
            if not postgres:
                raw.rollback()
            if _is_connection_error(exc):
                raise StoreUnavailable(_reason(exc)) from exc
            raise
        finally:
            if postgres:
                try:
                    raw.driver_connection.autocommit = False  # type: ignore[union-attr]
                except Exception:
                    # Lost with the database (a restart). Handed back, the pool's rollback of it would fail
                    # too and log `Exception during reset` with a traceback: discarded, a new one is opened.
                    log.debug("could not reset autocommit on a pooled connection; discarding it", exc_info=True)
                    raw.invalidate()
            raw.close()

    def add_counters(self, deltas: Mapping[str, float], conn: Connection | None = None) -> None:
        """Add to persisted counters (created at 0), inside `conn`'s transaction or a new one."""
        rows = [(name, float(delta)) for name, delta in deltas.items() if delta]
        if not rows:
            return
        sql = counter_add_sql(postgres=not self._sqlite)
        # On the driver's cursor: the gateway adds counters in every delivery round.
        if conn is not None:
            driver_cursor(conn).executemany(sql, rows)
            return
        with self.transaction() as own:
            driver_cursor(own).executemany(sql, rows)

    def set_gauge(self, name: str, value: float, conn: Connection | None = None) -> None:
        """Store a persisted value (e.g. a last-run timestamp) that every process reads back."""
        sql = text(
            "INSERT INTO ingest_counters (name, value) VALUES (:name, :value) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        if conn is not None:
            conn.execute(sql, {"name": name, "value": float(value)})
            return
        with self.transaction() as own:
            own.execute(sql, {"name": name, "value": float(value)})

    def ping(self) -> bool:
        """True when the database answers a trivial query.

        On PostgreSQL with every pooled connection taken (reads waiting on a lock, say), the ping connects
        afresh instead of waiting for one: waiting would read a database that is only busy as one that does
        not answer, and turn its reads away with 503 (`exporter/http/bounded_requests.py`). The fresh
        connection is bounded by `connect_timeout`, so a silent database does not keep the ping's thread.
        """
        engine, pool = self.engine, self._postgres_pool
        # pool_size + max_overflow (equal in create_store_engine): every connection the pool may hand out.
        if pool is not None and pool.checkedout() >= 2 * pool.size():
            engine = self._unpooled_engine()
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def _unpooled_engine(self) -> Engine:
        with self._unpooled_lock:
            if self._unpooled is None:
                self._unpooled = create_store_engine(self.url, read_only=self.read_only, pooled=False)
            return self._unpooled

    def _read(self, statement: Any) -> list[Any]:
        _refuse_if_known_silent()
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except (OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(_reason(exc)) from exc

    def series_totals(
        self,
        labels: Sequence[str],
        *,
        keep: Mapping[str, Sequence[str]] | None = None,
        known: Mapping[str, Sequence[str]] | None = None,
        adjustments: bool = False,
    ) -> list[SeriesTotals]:
        """Cumulative counters summed per distinct value of `labels` (a subset of LABEL_COLUMNS).

        For each label in `keep`, values not listed are summed under `__other__` (`OTHER_VALUE`), so
        every total stays exact; for each label in `known`, values not listed are summed under
        `NEW_VALUE` (see `exporter.store.label_folding`). The folding is done by the database: a scrape
        then reads at most a few thousand rows, not one per series. With `adjustments`, the counters
        also hold the repricing corrections (ADJUSTMENT_COLUMNS), from the same scan.
        """
        width = len(labels)
        columns = (*COUNTER_COLUMNS, *ADJUSTMENT_COLUMNS) if adjustments else COUNTER_COLUMNS
        rows = self._folded_sums(labels, Folding(keep or {}, known or {}), columns)
        return [SeriesTotals(tuple(r[:width]), tuple(int(v or 0) for v in r[width:])) for r in rows]

    def cost_adjustments(
        self, labels: Sequence[str], *, keep: Mapping[str, Sequence[str]] | None = None
    ) -> list[tuple[tuple[str, ...], int, int]]:
        """Cost corrections from repricing per distinct value of `labels`: (labels, up, down) nano-dollars.

        `keep` folds values into `__other__` as for `series_totals`, so a label flood is capped here too.
        """
        width = len(labels)
        rows = self._folded_sums(labels, Folding(keep or {}), ADJUSTMENT_COLUMNS)
        return [(tuple(r[:width]), int(r[width] or 0), int(r[width + 1] or 0)) for r in rows]

    def _folded_sums(self, labels: Sequence[str], folding: Folding, columns: Sequence[str]) -> list[Any]:
        """Rows of `labels` (folded per `folding`) followed by the SUM of each of `columns` over usage_series."""
        sql, params = folded_sums_sql(labels, folding, columns, postgres=self.dialect == "postgresql")
        with self.raw_cursor() as (cursor, _placeholder):
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def unpriced_models(self, cap: int) -> dict[tuple[str, str], int]:
        """Unpriced calls per (provider, model) as stored, never folded by the usage labels' caps.

        At most `cap` pairs: past it, the `cap - 1` with the most unpriced calls and the rest summed
        under (`__other__`, `__other__`), so the total stays exact.
        """
        with self.raw_cursor() as (cursor, _placeholder):
            cursor.execute(unpriced_models_sql(cap))
            rows = cursor.fetchall()
        if len(rows) <= cap:
            return {(provider, model): int(calls) for provider, model, calls, _all in rows}
        kept = {(provider, model): int(calls) for provider, model, calls, _all in rows[: cap - 1]}
        kept[OTHER_VALUE, OTHER_VALUE] = int(rows[0][3]) - sum(kept.values())
        return kept

    def values_under_cap(self, name: str, cap: int) -> list[str] | None:
        """Every value of label `name`, sorted, when it has at most `cap` of them; None when it has more.

        One pass over `usage_series` (no events read): what a label under the cap shows is all of
        its values, whatever they cost, so knowing them needs no ranking.
        """
        with self.raw_cursor() as (cursor, _placeholder):
            return self._values_under_cap(cursor, name, cap)

    @staticmethod
    def _values_under_cap(cursor: Any, name: str, cap: int) -> list[str] | None:
        cursor.execute(distinct_values_sql(name, cap))
        values = sorted(row[0] for row in cursor.fetchall())
        return values if len(values) <= cap else None

    def rank_values(self, name: str, cap: int, *, as_of: float | None = None) -> tuple[list[str], bool]:
        """Label `name`'s values ranked for a cap, and whether the label is folded.

        `(the cap - 1 highest-cost values, True)` when it has more than `cap` values (the rest fold
        into `__other__`), else `(all of its values, False)`. With `as_of`, a folded label's values are
        ranked by what was ingested before that time (the values that had a call by then, by cost, then
        by value): every process that ranks for the same `as_of` gets the same list, whenever it ranks
        (see exporter.label_ranks).
        """
        with self.raw_cursor() as (cursor, placeholder):
            if as_of is None:
                cursor.execute(top_values_sql(name, cap))
                values = [row[0] for row in cursor.fetchall()]
                return (values[: cap - 1], True) if len(values) > cap else (values, False)
            # A label under the cap keeps every value whatever their spend: no need to read the recent
            # events that rank a folded one (a fresh store's first burst is all recent events; ranking
            # them took a scrape's whole budget for one label, the others showing `__other__`).
            every = self._values_under_cap(cursor, name, cap)
            if every is not None:
                return every, False
            floor = last_id_ingested_before(cursor, placeholder, as_of - INGEST_ORDER_SLACK_SECONDS)
            cursor.execute(top_values_as_of_sql(name, cap, postgres=placeholder == "%s"), (floor, as_of))
            rows = cursor.fetchall()
        if len(rows) <= cap:
            return [row[0] for row in rows], False  # every value, as it is now
        return [row[0] for row in rows[: cap - 1] if row[1]], True

    def counters(self) -> dict[str, float]:
        """Persisted self counters (accepted, duplicate, rejected, last_accepted_ts, …)."""
        return {name: float(value) for name, value in self._read(select(ingest_counters))}

    def event_count(self) -> int:
        """How many distinct events are stored (tests and reports; scans an index)."""
        return int(self._read(select(func.count()).select_from(usage_events))[0][0])

    def rollup_buckets(
        self,
        start: float,
        end: float,
        *,
        group_by: Sequence[str] = (),
        where: dict[str, str] | None = None,
        columns: Iterable[str] = ("cost_nanousd",),
    ) -> list[tuple[Any, ...]]:
        """Rows `(*group values, bucket, *sums)` of buckets in [start, end), grouped as asked.

        Buckets are 5 minutes long, or one hour where the 5-minute rollups were pruned (see
        `exporter.store.rollups`); a bucket is named by its start.
        """
        first = int(start // BUCKET_SECONDS) * BUCKET_SECONDS
        rollups = rollups_in_range(first, math.ceil(end))
        group_cols = [usage_series.c[name] for name in group_by]
        sums = [func.sum(rollups.c[name]) for name in columns]
        stmt = (
            select(*group_cols, rollups.c.bucket, *sums)
            .select_from(rollups.join(usage_series, usage_series.c.id == rollups.c.series_id))
            .group_by(*group_cols, rollups.c.bucket)
            .order_by(rollups.c.bucket)
        )
        for name, value in (where or {}).items():
            if name not in LABEL_COLUMNS:
                raise ValueError(f"unknown label {name!r}")
            stmt = stmt.where(usage_series.c[name] == value)
        return [tuple(r) for r in self._read(stmt)]
