"""`SpendCache`: spend per 5-minute bucket of the watched labels, read from the rollups, kept between passes.

The spend is held sparsely, one entry per non-zero (row, bucket) cell, so that a label flood (many rows with
spend in a few buckets each) costs what it holds, not rows x ~2,100 buckets; `SpendCache.dense` builds the
(series x buckets) arrays the detector reads, only for the series it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from exporter.collector import OTHER
from exporter.store import Store
from exporter.store.schema import (
    BACKFILL_GENERATION,
    BUCKET_SECONDS,
    LATE_SECONDS,
    ingest_counters,
    rollup_backfill,
    usage_series,
)

_NANOS_PER_USD = 1e9
_ROLLUP_SQL = "SELECT series_id, bucket, cost_nanousd FROM usage_rollup WHERE bucket >= {p} AND bucket < {p}"
_SPEND_SQL = (
    "SELECT series_id, SUM(cost_nanousd) FROM usage_rollup WHERE bucket >= {p} AND bucket < {p} GROUP BY series_id"
)
_CHUNK_ROWS = 100_000
_MERGE_ROWS = 1 << 20
"""Rollup rows read before they are added into the cells (bounds the read's own memory)."""
_DENSE_BYTES = 8 << 20
"""Most a dense block of cache rows may take while `SpendCache.dense` sums them."""
CACHE_KEYS_PER_SERIES = 4
"""The cache's row cap, as a multiple of `max_series_per_group`: its keys combine every watched label."""


def backfill_since(store: Store, seen: int) -> tuple[int, int | None, bool]:
    """The newest `rollup_backfill` generation, the oldest bucket logged after `seen`, and whether complete.

    Complete is False when generations after `seen` were pruned (or the store is another one): the
    caller must read everything again.
    """
    counters = ingest_counters.c
    log_ = rollup_backfill.c
    with store.reading() as conn:
        value = conn.execute(select(counters.value).where(counters.name == BACKFILL_GENERATION)).scalar()
        generation = int(value or 0)
        if generation <= seen:
            return generation, None, generation == seen
        count, oldest = conn.execute(
            select(func.count(), func.min(log_.oldest_bucket)).where(
                log_.generation > seen, log_.generation <= generation
            )
        ).one()
    return generation, None if oldest is None else int(oldest), int(count) == generation - seen


class SpendCache:
    """Spend per 5-minute bucket for each distinct value of the watched labels, kept between passes.

    A detection pass needs ~7 days of buckets, but from one minute to the next only the newest ones
    change. The first pass (and one every `full_reload_seconds`) reads the whole range; the others
    re-read only the buckets from the last pass's newest one, or the last `reload_seconds` (at least
    `LATE_SECONDS` and a bucket) if that is earlier, and shift the rest. Anything older that any process
    wrote since the last pass (a backfill, late events) is named by the store's `rollup_backfill` log,
    whose rows are numbered in commit order: the pass reads the log's newest number first, then re-reads
    from the oldest bucket logged since the number it saw last, so history loaded by another process
    reaches the baselines by the next pass. The read goes to `usage_rollup` directly (series id, bucket,
    cost: no join and no GROUP BY), and rows are mapped to label values through `usage_series`, whose
    labels never change.
    """

    def __init__(self, labels: tuple[str, ...], max_keys: int = 4000) -> None:
        self.labels = labels
        self.max_keys = max_keys
        """Rows kept, `__other__` included; label combinations beyond it share the `__other__` row."""
        self.keys: list[tuple[str, ...]] = []
        self.n_buckets = 0
        self.first_bucket = 0
        self._bucket = np.zeros(0, dtype=np.int32)
        """The non-zero cells, sorted by bucket then row: bucket // 300, cache row, USD. Bucket first, so the
        buckets a pass drops or reads again are the two ends, and what it reads goes on at the end."""
        self._row = np.zeros(0, dtype=np.int32)
        self._spend = np.zeros(0)
        self._rows: dict[tuple[str, ...], int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        """Known usage_series ids, sorted, and the cache row each maps to."""
        self._id_rows = np.zeros(0, dtype=np.int64)
        self._last_bucket: int | None = None
        self._full_at = -math.inf
        self._generation = 0
        """The newest `rollup_backfill` generation already reflected in the cells."""
        self.history_written: int | None = None
        """Oldest bucket that other writes touched between the previous update and this one (None: none,
        or this is the first update, which reads everything anyway)."""

    @property
    def nbytes(self) -> int:
        """Bytes the cache's arrays hold between passes (cells and the series id map)."""
        cells = self._bucket.nbytes + self._row.nbytes + self._spend.nbytes
        return cells + self._ids.nbytes + self._id_rows.nbytes

    @property
    def lines_per_block(self) -> int:
        """Dense lines of `n_buckets` that fit in the working memory `dense` allows itself."""
        return max(1, _DENSE_BYTES // (8 * max(1, self.n_buckets)))

    def update(
        self,
        store: Store,
        now: float,
        first_bucket: int,
        n_buckets: int,
        *,
        reload_seconds: float,
        full_reload_seconds: float,
    ) -> None:
        """Bring the cache to the bucket range [first_bucket, first_bucket + n_buckets x 300)."""
        size = BUCKET_SECONDS
        last_bucket = first_bucket + (n_buckets - 1) * size
        shift = (first_bucket - self.first_bucket) // size
        # Read before the rollups: whatever is logged up to `generation` has committed, so it is seen.
        generation, backfilled, complete = backfill_since(store, self._generation)
        first = self._last_bucket is None
        self.history_written = None if first else backfilled if complete else first_bucket
        full = (
            self._last_bucket is None
            or self.n_buckets != n_buckets
            or not 0 <= shift < n_buckets
            or now - self._full_at >= full_reload_seconds
            or not complete
        )
        if full:
            # Let the old cells go now (views would keep them alive through the read).
            self._bucket, self._row = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
            self._spend = np.zeros(0)
            try:
                self._rank(store, first_bucket, last_bucket + size)
            except Exception:
                self._last_bucket = None
                raise
            reload_from = first_bucket
            self._full_at = now
        else:
            assert self._last_bucket is not None
            recent = int((last_bucket - max(reload_seconds, LATE_SECONDS + size)) // size) * size
            if backfilled is not None:
                recent = min(recent, backfilled)
            reload_from = max(first_bucket, min(self._last_bucket, recent))
            # Drop the buckets shifted out and those read again (the dense layout zeroed them).
            lo, hi = np.searchsorted(self._bucket, np.array([first_bucket, reload_from], dtype=np.int32) // size)
            self._bucket, self._row, self._spend = self._bucket[lo:hi], self._row[lo:hi], self._spend[lo:hi]
        self.n_buckets = n_buckets
        self.first_bucket = first_bucket
        self._last_bucket = last_bucket
        try:
            self._read(store, reload_from, last_bucket + size)
        except Exception:
            self._last_bucket = None  # half-read: start again from scratch next pass
            raise
        self._generation = generation

    def _read(self, store: Store, start: int, end: int) -> None:
        """Add the cost of every rollup row with start <= bucket < end to the cells (none held there yet)."""
        cells, spend = np.zeros(0, dtype=np.int64), np.zeros(0)
        pending: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
        count = 0
        with store.raw_cursor() as (cursor, placeholder):
            cursor.execute(_ROLLUP_SQL.format(p=placeholder), (start, end))
            while chunk := cursor.fetchmany(_CHUNK_ROWS):
                data = np.array(chunk, dtype=np.int64).reshape(-1, 3)
                rows, known = self._rows_of(store, data[:, 0])
                key = ((data[known, 1] // BUCKET_SECONDS) << 32) | rows
                pending.append((key, data[known, 2] / _NANOS_PER_USD))
                count += len(rows)
                if count >= _MERGE_ROWS:
                    cells, spend = _add(cells, spend, pending)
                    pending, count = [], 0
        cells, spend = _add(cells, spend, pending)
        # Every bucket read is after the ones kept: the order stays sorted.
        self._bucket = np.concatenate([self._bucket, (cells >> 32).astype(np.int32)])
        self._row = np.concatenate([self._row, (cells & 0xFFFFFFFF).astype(np.int32)])
        self._spend = np.concatenate([self._spend, spend])

    def dense(self, rows_of: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.float64]:
        """Spend per bucket, (len(rows_of), n_buckets): line i sums the cache rows `rows_of[i]` (ascending)."""
        return self.dense_many([rows_of])[0]

    def dense_many(self, requests: Sequence[Sequence[npt.NDArray[np.int64]]]) -> list[npt.NDArray[np.float64]]:
        """`dense` for several label sets at once, making each block of cache rows dense only once.

        Each line is `np.add.reduceat` over its rows' dense lines, as when every row was kept dense (the
        floats depend on how numpy adds a column, zeros included, so the same call makes them). Rows are
        made dense a block of buckets at a time, in at most `_DENSE_BYTES`.
        """
        outs = [np.zeros((len(rows_of), self.n_buckets)) for rows_of in requests]
        plans: list[tuple[npt.NDArray[np.float64], list[int] | None, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for out, rows_of in zip(outs, requests, strict=True):
            lines = [i for i, r in enumerate(rows_of) if len(r)]
            if lines:
                rows = np.concatenate([rows_of[i] for i in lines])
                segments = np.cumsum([0, *(len(rows_of[i]) for i in lines[:-1])])
                plans.append((out, lines if len(lines) < len(rows_of) else None, rows, segments))
        if not plans:
            return outs
        needed = np.unique(np.concatenate([rows for _, _, rows, _ in plans]))
        line_of = np.full(len(self.keys), -1, dtype=np.int32)  # int32: a block holds under 2**31 values
        line_of[needed] = np.arange(len(needed), dtype=np.int32)
        every = len(needed) == len(self.keys)
        picks: list[npt.NDArray[np.int32] | None] = []
        for _, _, rows, _ in plans:
            pick = line_of[rows]
            in_order = len(pick) == len(needed) and bool((pick == np.arange(len(needed))).all())
            picks.append(None if in_order else pick)  # None: the block as it is, no copy
        base = self.first_bucket // BUCKET_SECONDS
        width = max(1, _DENSE_BYTES // (8 * len(self.keys)))
        for c0 in range(0, self.n_buckets, width):
            c1 = min(self.n_buckets, c0 + width)
            lo, hi = np.searchsorted(self._bucket, np.array([base + c0, base + c1], dtype=np.int32))
            line = self._row[lo:hi] if every else line_of[self._row[lo:hi]]  # every: row i is line i
            col = self._bucket[lo:hi] - np.int32(base + c0)
            spend = self._spend[lo:hi]
            if not every:
                sel = line >= 0
                line, col, spend = line[sel], col[sel], spend[sel]
            block = np.zeros((len(needed), c1 - c0))
            block.ravel()[line * np.int32(c1 - c0) + col] = spend
            for (out, where, _, segments), chosen in zip(plans, picks, strict=True):
                summed = np.add.reduceat(block if chosen is None else block[chosen], segments, axis=0)
                if where is None:  # every line has rows
                    out[:, c0:c1] = summed
                else:
                    out[where, c0:c1] = summed
        return outs

    def _rank(self, store: Store, start: int, end: int) -> None:
        """Start the key mapping afresh: the highest-spend label combinations get rows, the rest `__other__`."""
        self.keys, self._rows = [], {}
        self._ids, self._id_rows = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        with store.raw_cursor() as (cursor, placeholder):
            cursor.execute(_SPEND_SQL.format(p=placeholder), (start, end))
            spend_of = {int(series_id): int(spend) for series_id, spend in cursor.fetchall()}
        labels_of = self._labels_of(store, sorted(spend_of))
        by_key: dict[tuple[str, ...], int] = {}
        for series_id, key in labels_of.items():
            by_key[key] = by_key.get(key, 0) + spend_of[series_id]
        if len(by_key) > self.max_keys:  # the top ones by spend, in a stable order
            ranked = sorted(by_key, key=lambda k: (-by_key[k], k))[: self.max_keys - 1]
            by_key = {key: by_key[key] for key in sorted(ranked)}
        for key in by_key:
            self._rows[key] = len(self.keys)
            self.keys.append(key)
        self._map(labels_of)

    def _labels_of(self, store: Store, ids: list[int]) -> dict[int, tuple[str, ...]]:
        cols = [usage_series.c.id, *(usage_series.c[label] for label in self.labels)]
        found: dict[int, tuple[str, ...]] = {}
        with store.engine.connect() as conn:
            for k in range(0, len(ids), 500):
                for row in conn.execute(select(*cols).where(usage_series.c.id.in_(ids[k : k + 500]))):
                    found[int(row[0])] = tuple(row[1:])
        return found

    def _map(self, labels_of: Mapping[int, tuple[str, ...]]) -> None:
        """Give each series id its row: its key's, a new one while under the cap, else `__other__`."""
        new_ids, new_rows = [], []
        for series_id, key in labels_of.items():
            index = self._rows.get(key)
            if index is None:
                if len(self.keys) >= self.max_keys - 1:
                    key = (OTHER,) * len(self.labels)
                    index = self._rows.get(key)
                if index is None:
                    index = self._rows[key] = len(self.keys)
                    self.keys.append(key)
            new_ids.append(series_id)
            new_rows.append(index)
        ids_all = np.concatenate([self._ids, np.array(new_ids, dtype=np.int64)])
        rows_all = np.concatenate([self._id_rows, np.array(new_rows, dtype=np.int64)])
        order = np.argsort(ids_all, kind="stable")
        self._ids, self._id_rows = ids_all[order], rows_all[order]

    def _rows_of(
        self, store: Store, series_ids: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The cache row of each usage_series id (learning new ids' labels), and which ids have one."""
        known = self._known(series_ids)
        if not known.all():
            self._learn(store, np.unique(series_ids[~known]).tolist())
            known = self._known(series_ids)
        return self._id_rows[np.searchsorted(self._ids, series_ids[known])], known

    def _known(self, series_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        if not len(self._ids):
            return np.zeros(len(series_ids), dtype=bool)
        pos = np.minimum(np.searchsorted(self._ids, series_ids), len(self._ids) - 1)
        return np.asarray(self._ids[pos] == series_ids)

    def _learn(self, store: Store, ids: list[int]) -> None:
        self._map(self._labels_of(store, ids))


def _add(
    cells: npt.NDArray[np.int64],
    spend: npt.NDArray[np.float64],
    pending: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Add rollup rows (cell key: bucket << 32 | row, USD) to sorted cells, each cell's in the order read.

    `np.add.at` adds one row after the other, as it did into the dense array: a cell's sum is the same
    float whichever merge its rows arrive in.
    """
    if not pending:
        return cells, spend
    keys = np.concatenate([k for k, _ in pending])
    usd = np.concatenate([v for _, v in pending])
    pos = np.searchsorted(cells, keys)
    found = pos < len(cells)
    found[found] = cells[pos[found]] == keys[found]
    if not found.all():
        new = np.sort(keys[~found])  # sort, not np.unique: it hashes, several times slower here
        new = new[np.r_[True, new[1:] != new[:-1]]]
        at = np.searchsorted(cells, new)
        cells, spend = np.insert(cells, at, new), np.insert(spend, at, 0.0)
        pos = np.searchsorted(cells, keys)
    np.add.at(spend, pos, usd)
    return cells, spend
