"""Spike detection as a service: store rollups in, `LLMCostSpike` alerts and persisted gauges out.

`SpikeService.evaluate(now)` is what the scheduler's `detection` job runs. For every watched label set
in `detection.series` it builds the dense (series × buckets) array of 5-minute spend the pure detector
needs (`bucket_layout`: ~7 days), zero-filled, from a `SpendCache` that re-reads only the newest buckets
from one pass to the next; calls `alerting.detection.detect_spikes` once for all series of the set; then:

- fires `LLMCostSpike` for series that start spiking and resolves the ones that returned to normal,
  through an `AlertSink` (the alert gateway in production);
- writes every series' window, baseline, ratio and firing flag to `spike_state`, so the `llm_spend_*`
  gauges read the same figures from any process, and the next pass (in whichever process leads then)
  continues the hysteresis from the stored firing flags.

Alerts are handed over before the state is written: a crash in between makes the next pass hand the
same transition over again, which the gateway's fingerprint dedup absorbs. Nothing is lost, nothing
notified twice.

Per label set at most `max_series_per_group` series are watched (the highest spend over the loaded range,
plus any that are firing); the rest are summed into one `__other__` series so the totals stay exact.
The fold starts before any array is built: the cache itself keeps at most `CACHE_KEYS_PER_SERIES` x
`max_series_per_group` label combinations (the highest spend at each full read) and sums the others
into one `__other__` row, so 100k distinct project names cost one row, not 100k rows of 7 days.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.exc import OperationalError

from alerting.detection import DetectionConfig, Reason, bucket_layout, detect_spikes
from exporter.config import SECTION_VALIDATORS, Config, ConfigError
from exporter.store import Store
from exporter.store.schema import (
    BACKFILL_GENERATION,
    BUCKET_SECONDS,
    LATE_SECONDS,
    ingest_counters,
    rollup_backfill,
    usage_series,
)
from exporter.store.store import StoreUnavailable

log = logging.getLogger(__name__)

ALERTNAME = "LLMCostSpike"
SEVERITY = "warning"
RUNBOOK_URL = "docs/runbook.md#llmcostspike"
WATCHABLE_LABELS = ("provider", "model", "project", "service", "user")
"""Labels a watched series may be split by (`status` is not a spend dimension)."""
OTHER = "__other__"
MAX_SETTLING_SECONDS = 3600.0
"""Longest a backfill in progress defers new spike alerts (see `SpikeService._settling`)."""
_NANOS_PER_USD = 1e9

# --------------------------------------------------------------------------------------------------
# Configuration (`detection:`)


@dataclass(frozen=True)
class SpikeSettings:
    """The `detection:` section: how often, over which label sets, and the detector's settings."""

    interval_seconds: float = 60.0
    series: tuple[tuple[str, ...], ...] = ((), ("project",), ("provider", "model"))
    max_series_per_group: int = 1000
    detector: DetectionConfig = field(default_factory=DetectionConfig)


# Lower bounds of the detector keys docs/detection.md documents; the detector's other settings may be set
# too (advanced), with their type taken from their default. `bucket_seconds` is the store's, not a choice.
_MINIMUMS: dict[str, float] = {"window_minutes": 5, "baseline_days": 1, "multiplier": 1.0, "min_spend_usd": 0.0}
_DETECTOR_DEFAULTS = {f.name: f.default for f in fields(DetectionConfig) if f.name != "bucket_seconds"}
_KEYS = {"interval_seconds", "series", "max_series_per_group", *_DETECTOR_DEFAULTS}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_detection(section: Any, problems: list[str]) -> SpikeSettings:
    """Typed settings from the raw `detection:` section, appending every problem found to `problems`."""
    if section is None:
        return SpikeSettings()
    if not isinstance(section, Mapping):
        problems.append(f"detection: must be a mapping, got {type(section).__name__}")
        return SpikeSettings()
    start = len(problems)
    for key in section:
        if key not in _KEYS:
            problems.append(f"detection.{key}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    settings = SpikeSettings()
    detector: dict[str, Any] = {}

    interval: Any = section.get("interval_seconds", settings.interval_seconds)
    if not _is_number(interval) or interval < 1:
        problems.append(f"detection.interval_seconds: must be a number >= 1, got {interval!r}")
    cap = section.get("max_series_per_group", settings.max_series_per_group)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        problems.append(f"detection.max_series_per_group: must be an integer >= 1, got {cap!r}")
    series = _parse_series(section.get("series", [list(s) for s in settings.series]), problems)

    for key, default in _DETECTOR_DEFAULTS.items():
        if key in section:
            value = _detector_value(key, section[key], default, problems)
            if value is not None:
                detector[key] = value
    if len(problems) > start:
        return settings
    try:
        config = DetectionConfig(bucket_seconds=BUCKET_SECONDS, **detector)
    except ValueError as exc:
        problems.append(f"detection: {exc}")
        return settings
    return SpikeSettings(float(interval), series, cap, config)


def _detector_value(key: str, value: Any, default: Any, problems: list[str]) -> Any:
    """The value for a `DetectionConfig` field, checked against the type of its default; None if bad."""
    least = _MINIMUMS.get(key, 0)
    if isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in value):
            return tuple(value)
        problems.append(f"detection.{key}: must be a list of positive integers, got {value!r}")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            problems.append(f"detection.{key}: must be an integer >= {least}, got {value!r}")
        elif key.endswith("_minutes") and (value * 60) % BUCKET_SECONDS:
            problems.append(f"detection.{key}: must be a multiple of {BUCKET_SECONDS // 60} minutes")
        else:
            return value
    elif not _is_number(value) or value < least:
        problems.append(f"detection.{key}: must be a number >= {least:g}, got {value!r}")
    else:
        return float(value)
    return None


def _parse_series(value: Any, problems: list[str]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not value:
        problems.append("detection.series: must be a non-empty list of label lists, e.g. [[], [project]]")
        return ()
    out: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for i, labels in enumerate(value):
        path = f"detection.series[{i}]"
        if not isinstance(labels, list):
            problems.append(f"{path}: must be a list of labels ([] for the global total), got {labels!r}")
            continue
        bad = [label for label in labels if label not in WATCHABLE_LABELS]
        if bad:
            problems.append(f"{path}: unknown label(s) {bad} (allowed: {', '.join(WATCHABLE_LABELS)})")
            continue
        if len(set(labels)) != len(labels):
            problems.append(f"{path}: a label is repeated in {labels}")
            continue
        if frozenset(labels) in seen:
            problems.append(f"{path}: {labels} is watched twice")
            continue
        seen.add(frozenset(labels))
        out.append(tuple(labels))
    return tuple(out)


def detection_settings(config: Config) -> SpikeSettings:
    """Typed settings from a loaded `Config` (raises `ConfigError` listing every problem)."""
    problems: list[str] = []
    settings = parse_detection(config.raw.get("detection"), problems)
    if problems:
        raise ConfigError(problems)
    return settings


def _validate(section: Any, problems: list[str], _base: Path) -> None:
    parse_detection(section, problems)


SECTION_VALIDATORS["detection"] = _validate


def group_name(labels: Sequence[str]) -> str:
    """The `group` label of a watched label set: `global` for [], else the labels joined by `_`."""
    return "_".join(labels) if labels else "global"


# --------------------------------------------------------------------------------------------------
# Persisted state

metadata = MetaData()

spike_state = Table(
    "spike_state",
    metadata,
    Column("group_name", String(64), nullable=False),
    Column("series_key", String(32), nullable=False),
    *(Column(label, String(256), nullable=False, server_default="") for label in WATCHABLE_LABELS),
    Column("window_usd", Float, nullable=False),
    Column("baseline_usd", Float, nullable=False),
    Column("ratio", Float, nullable=True),  # NULL when the baseline is 0 (the ratio is undefined)
    Column("score", Float, nullable=True),
    Column("window_minutes", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("firing", Boolean, nullable=False),
    Column("firing_since", Float, nullable=True),
    Column("evaluated_at", Float, nullable=False),
    PrimaryKeyConstraint("group_name", "series_key", name="pk_spike_state"),
)


@dataclass(frozen=True)
class SpikeState:
    """One watched series as the last detection pass left it."""

    group: str
    labels: dict[str, str]
    """The watched labels and their values (empty for the global total)."""
    window_usd: float
    baseline_usd: float
    ratio: float | None
    score: float | None
    window_minutes: int
    reason: str
    firing: bool
    firing_since: float | None
    evaluated_at: float

    def summary(self, cfg: DetectionConfig | None = None) -> str:
        """Where this series stands and why, in one line (see `summarize`)."""
        reason = Reason[self.reason.upper()] if self.reason.upper() in Reason.__members__ else Reason.SHORT_HISTORY
        return summarize(
            self.labels,
            reason,
            window=self.window_usd,
            baseline=self.baseline_usd,
            minutes=self.window_minutes,
            cfg=cfg or DetectionConfig(),
        )

    def metric_labels(self) -> list[str]:
        """Values for the `llm_spend_*` gauges' labels (group, then every watchable label, "" if unused)."""
        return [self.group, *(self.labels.get(label, "") for label in WATCHABLE_LABELS)]


def series_key(labels: Mapping[str, str]) -> str:
    """A fixed-size key for a label set (its values may be long)."""
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def read_spike_state(store: Store) -> list[SpikeState]:
    """Every watched series as last evaluated, ordered by group and labels (what the collector exposes)."""
    cols = spike_state.c
    stmt = select(spike_state).order_by(cols.group_name, *(cols[label] for label in WATCHABLE_LABELS))
    try:
        with store.engine.connect() as conn:
            rows = list(conn.execute(stmt))
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig)) from exc
    return [_state_from_row(dict(row._mapping)) for row in rows]


def _state_from_row(m: Mapping[str, Any]) -> SpikeState:
    group = m["group_name"]
    watched = () if group == "global" else tuple(group.split("_"))
    return SpikeState(
        group=group,
        labels={label: m[label] for label in watched if label in WATCHABLE_LABELS},
        window_usd=float(m["window_usd"]),
        baseline_usd=float(m["baseline_usd"]),
        ratio=None if m["ratio"] is None else float(m["ratio"]),
        score=None if m["score"] is None else float(m["score"]),
        window_minutes=int(m["window_minutes"]),
        reason=m["reason"],
        firing=bool(m["firing"]),
        firing_since=None if m["firing_since"] is None else float(m["firing_since"]),
        evaluated_at=float(m["evaluated_at"]),
    )


# --------------------------------------------------------------------------------------------------
# Reading the rollups

_ROLLUP_SQL = "SELECT series_id, bucket, cost_nanousd FROM usage_rollup WHERE bucket >= {p} AND bucket < {p}"
_SPEND_SQL = (
    "SELECT series_id, SUM(cost_nanousd) FROM usage_rollup WHERE bucket >= {p} AND bucket < {p} GROUP BY series_id"
)
_CHUNK_ROWS = 100_000
CACHE_KEYS_PER_SERIES = 4
"""The cache's row cap, as a multiple of `max_series_per_group`: its keys combine every watched label."""


def backfill_since(store: Store, seen: int) -> tuple[int, int | None, bool]:
    """The newest `rollup_backfill` generation, the oldest bucket logged after `seen`, and whether complete.

    Complete is False when generations after `seen` were pruned (or the store is another one): the
    caller must read everything again.
    """
    counters = ingest_counters.c
    log_ = rollup_backfill.c
    try:
        with store.engine.connect() as conn:
            value = conn.execute(select(counters.value).where(counters.name == BACKFILL_GENERATION)).scalar()
            generation = int(value or 0)
            if generation <= seen:
                return generation, None, generation == seen
            count, oldest = conn.execute(
                select(func.count(), func.min(log_.oldest_bucket)).where(
                    log_.generation > seen, log_.generation <= generation
                )
            ).one()
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig)) from exc
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
        sql = _ROLLUP_SQL.format(p="?" if store.dialect == "sqlite" else "%s")
        driver_error: Any = getattr(store.engine.dialect.dbapi, "OperationalError", OperationalError)
        try:
            raw = store.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(sql, (start, end))
                while chunk := cursor.fetchmany(_CHUNK_ROWS):
                    data = np.array(chunk, dtype=np.int64).reshape(-1, 3)
                    rows, known = self._rows_of(store, data[:, 0])
                    cols = (data[known, 1] - self.first_bucket) // BUCKET_SECONDS
                    np.add.at(self.values, (rows, cols), data[known, 2] / _NANOS_PER_USD)
                cursor.close()
                raw.rollback()  # a read: end PostgreSQL's implicit transaction
            finally:
                raw.close()
        except (OperationalError, driver_error) as exc:
            raise StoreUnavailable(str(exc)) from exc

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


# --------------------------------------------------------------------------------------------------
# The service


class AlertSink(Protocol):
    """Where alerts go: the alert gateway in production, a recorder in tests."""

    def fire(
        self, alertname: str, labels: Mapping[str, str], annotations: Mapping[str, str], severity: str
    ) -> Any:  # pragma: no cover - protocol
        """Raise (or refresh) the alert identified by `alertname` and `labels`."""
        ...

    def resolve(self, alertname: str, labels: Mapping[str, str]) -> Any:  # pragma: no cover - protocol
        """Resolve the alert identified by `alertname` and `labels` (no-op when it is not firing)."""
        ...


class SpikeDeliveryError(RuntimeError):
    """Some alerts could not be handed to the sink; their state was kept so the next pass retries."""


@dataclass(frozen=True)
class SpikePass:
    """What one `evaluate` did."""

    now: float
    series: int
    """Series evaluated over all groups."""
    firing: int
    """Series firing after the pass."""
    fired: list[dict[str, str]]
    """Labels (with `group`) of the alerts raised in this pass."""
    resolved: list[dict[str, str]]
    """Labels (with `group`) of the alerts resolved in this pass."""
    seconds: float
    """Wall time the pass took."""


@dataclass
class _Group:
    """One label set's series for one pass: keys (label value tuples) and their spend per bucket."""

    labels: tuple[str, ...]
    keys: list[tuple[str, ...]]
    values: npt.NDArray[np.float64]


class SpikeService:
    """Runs the detector over the store's rollups and turns its verdicts into alerts and gauges."""

    def __init__(
        self,
        store: Store,
        settings: SpikeSettings | None,
        sink: AlertSink,
        *,
        clock: Callable[[], float] = time.time,
        reload_seconds: float = 3600.0,
        full_reload_seconds: float = 3600.0,
    ) -> None:
        self.store = store
        self.settings = settings or SpikeSettings()
        if self.settings.detector.bucket_seconds != BUCKET_SECONDS:
            raise ValueError(f"the detector must use the store's {BUCKET_SECONDS} s buckets")
        self.reload_seconds = reload_seconds
        self.full_reload_seconds = full_reload_seconds
        series = self.settings.series
        self._cache = SpendCache(
            tuple(label for label in WATCHABLE_LABELS if any(label in s for s in series)),
            max_keys=CACHE_KEYS_PER_SERIES * self.settings.max_series_per_group,
        )
        self._lock = threading.Lock()
        self.sink = sink
        self.clock = clock
        # The gauges show the configured window (a stable series for dashboards); alerts may come from a
        # shorter window too, and say which in their annotations.
        self._gauge_config = replace(self.settings.detector, short_windows_minutes=())
        self._settling_since: float | None = None

    def evaluate(self, now: float | None = None) -> SpikePass:
        """One detection pass at `now`: fire and resolve alerts, persist the state. Raises on store errors.

        `SpikeDeliveryError` after the state is saved when the sink refused some alerts (retried next pass).
        """
        with self._lock:  # one pass at a time: the cache and the state table are per pass
            return self._evaluate(self.clock() if now is None else now)

    def _evaluate(self, now: float) -> SpikePass:
        started = time.perf_counter()
        cfg = self.settings.detector
        layout = bucket_layout(now, cfg)
        previous = self._previous_state()
        groups = self._load(now, layout.first_bucket_start, layout.n_buckets, previous)
        settling = self._settling(now)

        rows: list[dict[str, Any]] = []
        fired: list[dict[str, str]] = []
        resolved: list[dict[str, str]] = []
        failures = deferred = 0
        for group in groups:
            name = group_name(group.labels)
            prev = [previous.get((name, key)) for key in group.keys]
            was_firing = np.array([p is not None and p.firing for p in prev], dtype=bool)
            result = detect_spikes(group.values, cfg, now_fraction=layout.now_fraction, previously_firing=was_firing)
            gauges = detect_spikes(group.values, self._gauge_config, now_fraction=layout.now_fraction)
            for i, key in enumerate(group.keys):
                labels = dict(zip(group.labels, key, strict=True))
                firing = bool(result.is_spike[i])
                before = prev[i]
                since = before.firing_since if before is not None and before.firing else None
                if firing and not was_firing[i] and settling:
                    firing = False  # history is still arriving: the baseline may not be complete yet
                    deferred += 1
                elif firing and not was_firing[i]:
                    annotations = _annotations(
                        labels,
                        window=float(result.window_spend[i]),
                        baseline=float(result.baseline[i]),
                        ratio=float(result.ratio[i]),
                        minutes=int(result.window_minutes[i]),
                        cfg=cfg,
                    )
                    if self._deliver(self.sink.fire, ALERTNAME, labels, annotations, SEVERITY):
                        fired.append({"group": name, **labels})
                        since = now
                    else:
                        firing, failures = False, failures + 1
                elif was_firing[i] and not firing:
                    if self._deliver(self.sink.resolve, ALERTNAME, labels):
                        resolved.append({"group": name, **labels})
                    else:
                        firing, failures = True, failures + 1
                rows.append(
                    _row(
                        name,
                        labels,
                        window=float(gauges.window_spend[i]),
                        baseline=float(gauges.baseline[i]),
                        ratio=float(gauges.ratio[i]),
                        score=float(gauges.score[i]),
                        minutes=cfg.window_minutes,
                        reason=Reason(int(result.reason[i])).name.lower(),
                        firing=firing,
                        since=since if firing else None,
                        now=now,
                    )
                )

        # Label sets no longer configured: resolve what they had firing, then forget them.
        watched = {group_name(g.labels) for g in groups}
        for (name, _key), state in previous.items():
            if name in watched:
                continue
            if state.firing and not self._deliver(self.sink.resolve, ALERTNAME, state.labels):
                failures += 1
                rows.append(_row_from_state(state))
            elif state.firing:
                resolved.append({"group": name, **state.labels})

        self._save(rows)
        outcome = SpikePass(
            now=now,
            series=sum(len(g.keys) for g in groups),
            firing=sum(1 for r in rows if r["firing"]),
            fired=fired,
            resolved=resolved,
            seconds=time.perf_counter() - started,
        )
        if fired or resolved:
            log.info("spike detection: %d fired, %d resolved, %d firing", len(fired), len(resolved), outcome.firing)
        if deferred:
            log.info("spike detection: history is being written; %d new spike(s) wait until it settles", deferred)
        if failures:
            raise SpikeDeliveryError(f"{failures} spike alert transition(s) could not be handed to the gateway")
        return outcome

    def _settling(self, now: float) -> bool:
        """True while history older than the detector's recent reach is being written (a backfill).

        Until it has all arrived, a series may have its old days but not the hours before now (a load runs
        oldest first), which reads as a sudden drop of today's level and makes ordinary spend look like a
        spike. So no new spike starts while a pass finds such writes since the previous one: the first
        pass after they stop fires what is real. Firing alerts still resolve. Deferral lasts at most
        `MAX_SETTLING_SECONDS`, so a process that keeps writing old data cannot silence detection.
        """
        cfg = self.settings.detector
        written = self._cache.history_written
        reach = (cfg.window_minutes + cfg.recent_minutes) * 60
        if written is None or written >= now - reach:
            self._settling_since = None
            return False
        if self._settling_since is None:
            self._settling_since = now
        if now - self._settling_since > MAX_SETTLING_SECONDS:
            log.warning(
                "old spend has kept arriving for over %.0f s; detecting spikes regardless", MAX_SETTLING_SECONDS
            )
            return False
        return True

    def _deliver(self, method: Callable[..., Any], *args: Any) -> bool:
        try:
            method(*args)
            return True
        except Exception:
            log.exception("handing %s %s to the alert gateway failed; retrying next pass", ALERTNAME, args[1])
            return False

    def _previous_state(self) -> dict[tuple[str, tuple[str, ...]], SpikeState]:
        out: dict[tuple[str, tuple[str, ...]], SpikeState] = {}
        for state in read_spike_state(self.store):
            watched = () if state.group == "global" else tuple(state.group.split("_"))
            out[(state.group, tuple(state.labels.get(label, "") for label in watched))] = state
        return out

    def _load(
        self,
        now: float,
        first_bucket: int,
        n_buckets: int,
        previous: Mapping[tuple[str, tuple[str, ...]], SpikeState],
    ) -> list[_Group]:
        """Dense spend arrays for every watched label set, aggregated from the cache's finest grain."""
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

    def _save(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        with self.store.transaction() as conn:
            conn.execute(delete(spike_state))
            if rows:
                conn.execute(spike_state.insert(), rows)


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


def _describe(labels: Mapping[str, str]) -> str:
    if not labels:
        return "total LLM spend"
    return "LLM spend of " + ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def summarize(
    labels: Mapping[str, str],
    reason: Reason,
    *,
    window: float,
    baseline: float,
    minutes: int,
    cfg: DetectionConfig,
) -> str:
    """One line saying where a series stands and why, in plain words, for every `Reason`.

    A ratio is only ever shown against an established baseline: a series without one is described by
    its spend alone.
    """
    what = _describe(labels)
    spent = f"{what} was {_usd(window)} in the last {minutes} minutes"
    if reason is Reason.SHORT_HISTORY or not baseline > 0:
        return f"No baseline yet: {spent}; a series needs spend history before it can alert."
    against = f"{window / baseline:.1f}x its baseline of {_usd(baseline)}"
    if reason is Reason.LOW_SPEND:
        return f"Normal: {spent} ({against}), below the {_usd(cfg.min_spend_usd)} that may alert."
    if reason is Reason.BELOW_MULTIPLIER:
        return f"Normal: {spent} ({against}; alerting at {cfg.multiplier:g}x)."
    if reason is Reason.BELOW_RECENT_LEVEL:
        return f"Normal: {spent} ({against}), no sudden rise over its level of the last few hours."
    if reason is Reason.NEAR_USUAL_PEAK:
        return f"Normal: {spent} ({against}), within its usual busiest window at this time of day."
    if reason is Reason.SCORE_DISAGREES:
        return f"Normal: {spent} ({against}), within its usual variation."
    if reason is Reason.HELD:
        return f"Spend spike continuing: {spent} ({against}; resolves below {cfg.resolve_multiplier:g}x)."
    return f"Spend spike: {spent} ({against})."


def _annotations(
    labels: Mapping[str, str], *, window: float, baseline: float, ratio: float, minutes: int, cfg: DetectionConfig
) -> dict[str, str]:
    ratio_text = f"{ratio:.1f}x" if math.isfinite(ratio) else "no baseline spend"
    what = _describe(labels)
    return {
        "observed": f"{_usd(window)} in {minutes} min",
        "baseline": _usd(baseline),
        "ratio": ratio_text,
        "summary": summarize(labels, Reason.SPIKE, window=window, baseline=baseline, minutes=minutes, cfg=cfg),
        "description": (
            f"{what[0].upper()}{what[1:]} reached {_usd(window)} in the last {minutes} minutes, against a "
            f"baseline of {_usd(baseline)} for a window of that length (comparable windows of the previous "
            f"{cfg.baseline_days} days and recent hours). Alerting at {cfg.multiplier:g}x the baseline and at "
            f"least {_usd(cfg.min_spend_usd)}; it resolves when spend falls back below "
            f"{cfg.resolve_multiplier:g}x the baseline."
        ),
        "runbook_url": RUNBOOK_URL,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _row(
    group: str,
    labels: Mapping[str, str],
    *,
    window: float,
    baseline: float,
    ratio: float,
    score: float,
    minutes: int,
    reason: str,
    firing: bool,
    since: float | None,
    now: float,
) -> dict[str, Any]:
    return {
        "group_name": group,
        "series_key": series_key(labels),
        **{label: labels.get(label, "") for label in WATCHABLE_LABELS},
        "window_usd": window,
        "baseline_usd": baseline,
        "ratio": _finite(ratio),
        "score": _finite(score),
        "window_minutes": minutes,
        "reason": reason,
        "firing": firing,
        "firing_since": since,
        "evaluated_at": now,
    }


def _row_from_state(state: SpikeState) -> dict[str, Any]:
    return _row(
        state.group,
        state.labels,
        window=state.window_usd,
        baseline=state.baseline_usd,
        ratio=math.inf if state.ratio is None else state.ratio,
        score=math.inf if state.score is None else state.score,
        minutes=state.window_minutes,
        reason=state.reason,
        firing=state.firing,
        since=state.firing_since,
        now=state.evaluated_at,
    )
