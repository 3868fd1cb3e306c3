"""The spike detector's spend cache as it was before it held spend sparsely: the oracle for
`tests/alerting/test_spike_sparse_cache.py`, which checks that the sparse cache gives the same floats.

A copy of `alerting/spikes/cache.py`'s `SpendCache` and of `SpikeService._load` as they stood when every
cached label combination had a dense row of ~2,100 buckets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from alerting.spikes.cache import _CHUNK_ROWS, _NANOS_PER_USD, _ROLLUP_SQL, _SPEND_SQL, backfill_since
from alerting.spikes.service import SpikeService, _Group
from alerting.spikes.settings import group_name
from alerting.spikes.state import SpikeState
from exporter.collector import OTHER
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS, LATE_SECONDS, usage_series


class DenseSpendCache:
    """The cache as it was: a dense float64 array of (label combinations x buckets)."""

    def __init__(self, labels: tuple[str, ...], max_keys: int = 4000) -> None:
        self.labels = labels
        self.max_keys = max_keys
        """Rows kept, `__other__` included; label combinations beyond it share the `__other__` row."""
        self.keys: list[tuple[str, ...]] = []
        self.values = np.zeros((0, 0))
        """USD, (len(keys), n_buckets)."""
        self.first_bucket = 0
        self._rows: dict[tuple[str, ...], int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        """Known usage_series ids, sorted, and the cache row each maps to."""
        self._id_rows = np.zeros(0, dtype=np.int64)
        self._last_bucket: int | None = None
        self._full_at = -math.inf
        self._generation = 0
        """The newest `rollup_backfill` generation already reflected in `values`."""
        self.history_written: int | None = None
        """Oldest bucket that other writes touched between the previous update and this one (None: none,
        or this is the first update, which reads everything anyway)."""

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
            or self.values.shape[1] != n_buckets
            or not 0 <= shift < n_buckets
            or now - self._full_at >= full_reload_seconds
            or not complete
        )
        if full:
            try:
                self._rank(store, first_bucket, last_bucket + size)
            except Exception:
                self._last_bucket = None
                raise
            self.values = np.zeros((len(self.keys), n_buckets))
            reload_from = first_bucket
            self._full_at = now
        else:
            assert self._last_bucket is not None
            if shift:
                kept = self.values[:, shift:]
                self.values = np.concatenate([kept, np.zeros((len(self.keys), shift))], axis=1)
            recent = int((last_bucket - max(reload_seconds, LATE_SECONDS + size)) // size) * size
            if backfilled is not None:
                recent = min(recent, backfilled)
            reload_from = max(first_bucket, min(self._last_bucket, recent))
            self.values[:, (reload_from - first_bucket) // size :] = 0.0
        self.first_bucket = first_bucket
        self._last_bucket = last_bucket
        try:
            self._read(store, reload_from, last_bucket + size)
        except Exception:
            self._last_bucket = None  # half-read: start again from scratch next pass
            raise
        self._generation = generation

    def _read(self, store: Store, start: int, end: int) -> None:
        """Add the cost of every rollup row with start <= bucket < end to `values`."""
        with store.raw_cursor() as (cursor, placeholder):
            cursor.execute(_ROLLUP_SQL.format(p=placeholder), (start, end))
            while chunk := cursor.fetchmany(_CHUNK_ROWS):
                data = np.array(chunk, dtype=np.int64).reshape(-1, 3)
                rows, known = self._rows_of(store, data[:, 0])
                cols = (data[known, 1] - self.first_bucket) // BUCKET_SECONDS
                np.add.at(self.values, (rows, cols), data[known, 2] / _NANOS_PER_USD)

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
        grow = len(self.keys) - self.values.shape[0]
        if grow:
            self.values = np.vstack([self.values, np.zeros((grow, self.values.shape[1]))])
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


class DenseSpikeService(SpikeService):
    """`SpikeService` over the dense cache, building every group's arrays as before."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._cache = DenseSpendCache(self._cache.labels, max_keys=self._cache.max_keys)  # type: ignore[assignment]

    def _load(
        self,
        now: float,
        first_bucket: int,
        n_buckets: int,
        previous: Mapping[tuple[str, tuple[str, ...]], SpikeState],
    ) -> list[_Group]:
        cache = self._cache
        cache.update(
            self.store,
            now,
            first_bucket,
            n_buckets,
            reload_seconds=self.reload_seconds,
            full_reload_seconds=self.full_reload_seconds,
        )
        groups = []
        for labels in self.settings.series:
            name = group_name(labels)
            positions = [cache.labels.index(label) for label in labels]
            keys: dict[tuple[str, ...], int] = {(): 0} if not labels else {}  # the total exists even at $0
            to_group = np.array(
                [keys.setdefault(tuple(k[p] for p in positions), len(keys)) for k in cache.keys], dtype=np.int64
            )
            firing = [key for (group, key), state in previous.items() if group == name and state.firing]
            for key in firing:  # a firing series with no spend left must still be evaluated (and resolve)
                keys.setdefault(key, len(keys))
            dense = _sum_rows(cache.values, to_group, len(keys))
            group_keys, values = _fold(list(keys), dense, set(firing), self.settings.max_series_per_group, labels)
            groups.append(_Group(tuple(labels), group_keys, values))
        return groups


def _sum_rows(
    values: npt.NDArray[np.float64], to_group: npt.NDArray[np.int64], n_groups: int
) -> npt.NDArray[np.float64]:
    """Rows of `values` summed by group (`to_group[i]` is row i's group): sort, then `add.reduceat`."""
    out = np.zeros((n_groups, values.shape[1]))
    if not len(to_group):
        return out
    order = np.argsort(to_group, kind="stable")
    ordered = to_group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out[ordered[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def _fold(
    keys: list[tuple[str, ...]],
    values: npt.NDArray[np.float64],
    firing: set[tuple[str, ...]],
    cap: int,
    labels: Sequence[str],
) -> tuple[list[tuple[str, ...]], npt.NDArray[np.float64]]:
    """Keep the `cap` highest-spend series (and every firing one); sum the rest into `__other__`."""
    if len(keys) <= cap:
        return keys, values
    order = np.argsort(-values.sum(axis=1), kind="stable")
    keep = np.zeros(len(keys), dtype=bool)
    keep[order[:cap]] = True
    keep |= np.array([key in firing for key in keys], dtype=bool)
    other = (OTHER,) * len(labels)
    rest = values[~keep].sum(axis=0)
    kept_keys = [key for key, k in zip(keys, keep, strict=True) if k]
    kept = values[keep]
    if other in kept_keys:
        kept[kept_keys.index(other)] += rest
        return kept_keys, kept
    return [*kept_keys, other], np.vstack([kept, rest[None, :]])
