"""Spend history for the console: 5-minute totals and hourly spend per project, model and service.

The console shows the last 30 days of spend stacked by a label, and today's and this month's spend in
any time zone. Asking the database for that on every page view means summing every rollup row of the
month (at 10,000 active series, millions of rows): far too slow for a page. So, as the spike detector's
`SpendCache` does, the rollups are read once into memory and then kept current cheaply:

- a full read of the last `HISTORY_DAYS` (one `usage_rollup` scan: series id, bucket, cost; no join,
  no GROUP BY) builds a 5-minute total vector and an hourly matrix per label;
- every page view re-reads only the buckets not yet settled (the current one, and the one before for
  `SETTLE_SECONDS` after it ended: the only ones live ingest still changes), subtracting what they
  held at the previous read and adding what they hold now;
- a background thread repeats the full read every `FULL_RELOAD_SECONDS`, so a late backfill (events
  into settled buckets, from `llmcost ingest` of an old file) appears within that delay.

Memory is (distinct projects + models + services) × 768 hours × 8 bytes: 0.8 MB for 125 values.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS, usage_series

log = logging.getLogger(__name__)

DIMENSIONS = ("project", "model", "service")
HISTORY_DAYS = 33
"""Kept in memory: enough for a 30-day chart and the month so far in any time zone."""
SETTLE_SECONDS = 120
"""A bucket read this long after its end is settled: later views no longer re-read it. Events reach the
store seconds after they happen (clients batch, the commit queue batches); a straggler later than this
shows at the next full read."""
FULL_RELOAD_SECONDS = 300.0
IDLE_SECONDS = 1800.0
"""No full reload when nobody looked at the console for this long (a full read costs CPU: ~8 s for
1.8 million rollup rows); the next view starts one at once and is served from the incremental state."""
HOUR = 3600
PER_HOUR = HOUR // BUCKET_SECONDS
_NANOS = 1e9
_SQL = "SELECT series_id, bucket, cost_nanousd FROM usage_rollup WHERE bucket >= {p} AND bucket < {p}"
_CHUNK = 100_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _settled(bucket: int, now: float) -> bool:
    """True when a read at `now` sees `bucket` as it will stay."""
    return now >= bucket + BUCKET_SECONDS + SETTLE_SECONDS


@dataclass(frozen=True)
class SpendSnapshot:
    """What one page render reads: copies, so a concurrent refresh cannot change them mid-render."""

    first_bucket: int
    """Epoch seconds of the first 5-minute bucket (and first hour: it is hour-aligned)."""
    totals: FloatArray
    """USD per 5-minute bucket."""
    names: dict[str, list[str]]
    """Per dimension, the label value of each row of `hourly[dimension]`."""
    hourly: dict[str, FloatArray]
    """Per dimension, USD per (value, hour)."""

    def total_between(self, start: float, end: float) -> float:
        """USD spent in [start, end), to the 5-minute bucket (exact for every real UTC offset)."""
        first = max(0, int((start - self.first_bucket) // BUCKET_SECONDS))
        last = max(0, int(-(-(end - self.first_bucket) // BUCKET_SECONDS)))
        return float(self.totals[first:last].sum())

    def hour_index(self, at: float) -> int:
        """The column of `hourly` holding epoch second `at` (may fall outside the matrix)."""
        return int((at - self.first_bucket) // HOUR)

    def by_value(self, dimension: str, start: float, end: float) -> list[tuple[str, float]]:
        """(value, USD) in the hours overlapping [start, end), highest first, zero rows left out."""
        matrix = self.hourly[dimension]
        first = max(0, self.hour_index(start))
        last = max(0, self.hour_index(end - 1) + 1)
        sums = matrix[:, first:last].sum(axis=1)
        order = np.argsort(-sums, kind="stable")
        names = self.names[dimension]
        return [(names[i], float(sums[i])) for i in order if sums[i] > 0]


@dataclass
class _State:
    """The in-memory history for one window of buckets; updated in place under the owner's lock."""

    first_bucket: int
    n_buckets: int
    totals: FloatArray
    names: dict[str, list[str]] = field(default_factory=lambda: {d: [] for d in DIMENSIONS})
    rows: dict[str, dict[str, int]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    hourly: dict[str, FloatArray] = field(default_factory=dict)
    # Per usage_series id (dense array index), the row of each dimension's matrix; -1 = not learnt yet.
    index: IntArray = field(default_factory=lambda: np.full((0, len(DIMENSIONS)), -1, dtype=np.int64))
    # For the newest buckets, the rows read last time (series ids, nano-USD), to subtract on re-read.
    recent: dict[int, tuple[IntArray, IntArray]] = field(default_factory=dict)
    loaded_at: float = 0.0

    @property
    def end(self) -> int:
        """First epoch second past the window."""
        return self.first_bucket + self.n_buckets * BUCKET_SECONDS

    def snapshot(self) -> SpendSnapshot:
        """A copy for one render."""
        return SpendSnapshot(
            self.first_bucket,
            self.totals.copy(),
            {d: list(v) for d, v in self.names.items()},
            {d: m.copy() for d, m in self.hourly.items()},
        )


class SpendHistory:
    """Keeps `_State` current for the console; thread-safe; `snapshot(now)` is what a render calls."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        days: int = HISTORY_DAYS,
        full_reload_seconds: float = FULL_RELOAD_SECONDS,
        background: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.days = days
        self.full_reload_seconds = full_reload_seconds
        self._background = background
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warming = False
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._last_view = -math.inf

    def warm_up(self) -> None:
        """Read the history in the background now (at server start), so the first page view is fast."""
        if self._background and self._thread is None:
            self._warming = True
            self._start_reloader()

    def snapshot(self, now: float | None = None) -> SpendSnapshot:
        """The history up to `now`: a full read the first time, else only the newest buckets re-read."""
        now = self.clock() if now is None else now
        self._last_view = time.monotonic()
        if self._warming:
            self._ready.wait(timeout=120)  # a warm-up read is under way: wait for it rather than read twice
        with self._lock:
            state = self._state
            current = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
            if state is None or current >= state.end or (not self._background and self._reload_due(state, now)):
                state = self._state = self._load(now)
                self._ready.set()
            else:
                self._refresh_recent(state, current, now)
                if self._reload_due(state, now):
                    self._wake.set()  # the reloader skipped while nobody looked: read everything again now
            self._start_reloader()
            return state.snapshot()

    def close(self) -> None:
        """Stop the background reloader."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- loading -------------------------------------------------------------------------------------

    def _reload_due(self, state: _State, now: float) -> bool:
        return now - state.loaded_at >= self.full_reload_seconds

    def _start_reloader(self) -> None:
        if self._background and self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._reload_loop, name="llmcost-console-history", daemon=True)
            self._thread.start()

    def _reload_loop(self) -> None:
        first = self._warming
        while not self._stop.is_set():
            if not first:
                self._wake.wait(self.full_reload_seconds)
                self._wake.clear()
                if self._stop.is_set() or time.monotonic() - self._last_view > IDLE_SECONDS:
                    continue
            first = False
            try:
                fresh = self._load(self.clock())
            except Exception:  # a store outage: keep the current state, try again next time
                log.warning("console spend history: full reload failed", exc_info=True)
                continue
            finally:
                self._warming = False
                self._ready.set()
            with self._lock:
                self._state = fresh

    def _load(self, now: float) -> _State:
        """A full read of the window ending two hours after `now` (room until the next full read)."""
        end_hour = (int(now) // HOUR + 2) * HOUR
        first = end_hour - self.days * 86400
        n = (end_hour - first) // BUCKET_SECONDS
        state = _State(first, n, np.zeros(n), loaded_at=now)
        state.hourly = {d: np.zeros((0, n // PER_HOUR)) for d in DIMENSIONS}
        current = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
        ids, buckets, cost = self._read(first, current + BUCKET_SECONDS)
        self._add(state, ids, buckets, cost, sign=1)
        for bucket in (current - BUCKET_SECONDS, current):
            if not _settled(bucket, now):
                mask = buckets == bucket
                state.recent[bucket] = (ids[mask], cost[mask])
        return state

    def _refresh_recent(self, state: _State, current: int, now: float) -> None:
        """Re-read the unsettled buckets: subtract what they held at the last read, add what they hold now.

        The re-read starts at the oldest bucket left unsettled by the last read, so buckets that were
        current then and are older now (no page view for a while) are read to their end too.
        """
        start = min(current, *state.recent) if state.recent else current
        ids, buckets, cost = self._read(start, current + BUCKET_SECONDS)
        for bucket in range(start, current + BUCKET_SECONDS, BUCKET_SECONDS):
            old_ids, old_cost = state.recent.pop(bucket, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
            self._add(state, old_ids, np.full(len(old_ids), bucket, np.int64), old_cost, sign=-1)
            mask = buckets == bucket
            state.recent[bucket] = (ids[mask], cost[mask])
        self._add(state, ids, buckets, cost, sign=1)
        for bucket in [b for b in state.recent if _settled(b, now)]:
            del state.recent[bucket]

    def _add(self, state: _State, ids: IntArray, buckets: IntArray, cost: IntArray, *, sign: int) -> None:
        if not len(ids):
            return
        self._learn(state, ids)
        usd = sign * cost / _NANOS
        cols = (buckets - state.first_bucket) // BUCKET_SECONDS
        np.add.at(state.totals, cols, usd)
        hours = cols // PER_HOUR
        for k, dimension in enumerate(DIMENSIONS):
            np.add.at(state.hourly[dimension], (state.index[ids, k], hours), usd)

    def _learn(self, state: _State, ids: IntArray) -> None:
        """Give every series id in `ids` its row in each dimension's matrix (new values get new rows)."""
        top = int(ids.max()) + 1
        if top > len(state.index):
            grown = np.full((max(top, 2 * len(state.index)), len(DIMENSIONS)), -1, dtype=np.int64)
            grown[: len(state.index)] = state.index
            state.index = grown
        unknown = np.unique(ids[state.index[ids, 0] < 0]).tolist()
        if not unknown:
            return
        cols = [usage_series.c.id, *(usage_series.c[d] for d in DIMENSIONS)]
        found: list[Any] = []
        with self.store.reading() as conn:
            for k in range(0, len(unknown), 500):
                found += conn.execute(select(*cols).where(usage_series.c.id.in_(unknown[k : k + 500]))).all()
        for row in found:
            for k, dimension in enumerate(DIMENSIONS):
                value = row[k + 1]
                rows = state.rows[dimension]
                if value not in rows:
                    rows[value] = len(rows)
                    state.names[dimension].append(value)
                state.index[int(row[0]), k] = rows[value]
        for dimension in DIMENSIONS:
            matrix = state.hourly[dimension]
            grow = len(state.names[dimension]) - matrix.shape[0]
            if grow:
                state.hourly[dimension] = np.vstack([matrix, np.zeros((grow, matrix.shape[1]))])

    def _read(self, start: int, end: int) -> tuple[IntArray, IntArray, IntArray]:
        """(series ids, buckets, nano-USD) of the rollup rows with bucket in [start, end)."""
        chunks: list[IntArray] = []
        # The store's raw read cursor: no row objects for up to millions of rows; errors → StoreUnavailable.
        with self.store.raw_cursor() as (cursor, placeholder):
            cursor.execute(_SQL.format(p=placeholder), (start, end))
            while chunk := cursor.fetchmany(_CHUNK):
                chunks.append(np.array(chunk, dtype=np.int64).reshape(-1, 3))
        data = np.concatenate(chunks) if chunks else np.zeros((0, 3), dtype=np.int64)
        return data[:, 0], data[:, 1], data[:, 2]
