"""Spike detection as a service: store rollups in, `LLMCostSpike` alerts and persisted gauges out.

`SpikeService.evaluate(now)` is what the scheduler's `detection` job runs. For every watched label set
in `detection.series` it reads the 5-minute cost rollups the pure detector needs (`bucket_layout`) as a
dense (series × buckets) array, zero-filled, calls `alerting.detection.detect_spikes`, and then:

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
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Boolean, Column, Float, Integer, MetaData, PrimaryKeyConstraint, String, Table, delete, select

from alerting.detection import DetectionConfig, Reason, bucket_layout, detect_spikes
from exporter.config import SECTION_VALIDATORS, Config, ConfigError
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS
from exporter.store.store import StoreUnavailable

log = logging.getLogger(__name__)

ALERTNAME = "LLMCostSpike"
SEVERITY = "warning"
RUNBOOK_URL = "docs/runbook.md#llmcostspike"
WATCHABLE_LABELS = ("provider", "model", "project", "service", "user")
"""Labels a watched series may be split by (`status` is not a spend dimension)."""
OTHER = "__other__"
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


# Detector settings a config may set beyond SPEC.md's four (bucket_seconds is the store's, not a choice).
_INT_KEYS = {
    "window_minutes": 5,
    "baseline_days": 1,
    "min_history_windows": 0,
    "recent_minutes": 5,
    "seasonal_spread_minutes": 0,
    "min_baseline_days": 1,
}
_FLOAT_KEYS = {
    "multiplier": 1.0,
    "min_spend_usd": 0.0,
    "robust_z": 0.0,
    "min_scale_ratio": 0.0,
    "max_level_change": 1.0,
    "resolve_multiplier": 0.0,
}
_KEYS = {"interval_seconds", "series", "max_series_per_group", "short_windows_minutes", *_INT_KEYS, *_FLOAT_KEYS}


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

    for key, minimum in _INT_KEYS.items():
        if key in section:
            value = section[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                problems.append(f"detection.{key}: must be an integer >= {minimum}, got {value!r}")
            else:
                detector[key] = value
    for key, least in _FLOAT_KEYS.items():
        if key in section:
            value = section[key]
            if not _is_number(value) or value < least:
                problems.append(f"detection.{key}: must be a number >= {least}, got {value!r}")
            else:
                detector[key] = float(value)
    if "short_windows_minutes" in section:
        value = section["short_windows_minutes"]
        if not isinstance(value, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in value):
            problems.append(f"detection.short_windows_minutes: must be a list of integers, got {value!r}")
        else:
            detector["short_windows_minutes"] = tuple(value)
    for key in ("window_minutes", "recent_minutes", "seasonal_spread_minutes"):
        if key in detector and (detector[key] * 60) % BUCKET_SECONDS:
            problems.append(f"detection.{key}: must be a multiple of {BUCKET_SECONDS // 60} minutes")
            del detector[key]
    if len(problems) > start:
        return settings
    try:
        config = DetectionConfig(bucket_seconds=BUCKET_SECONDS, **detector)
    except ValueError as exc:
        problems.append(f"detection: {exc}")
        return settings
    return SpikeSettings(float(interval), series, cap, config)


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
    except Exception as exc:
        raise StoreUnavailable(str(exc)) from exc
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
    ) -> None:
        self.store = store
        self.settings = settings or SpikeSettings()
        if self.settings.detector.bucket_seconds != BUCKET_SECONDS:
            raise ValueError(f"the detector must use the store's {BUCKET_SECONDS} s buckets")
        self.sink = sink
        self.clock = clock
        # The gauges show the configured window (a stable series for dashboards); alerts may come from a
        # shorter window too, and say which in their annotations.
        self._gauge_config = replace(self.settings.detector, short_windows_minutes=())

    def evaluate(self, now: float | None = None) -> SpikePass:
        """One detection pass at `now`: fire and resolve alerts, persist the state. Raises on store errors.

        `SpikeDeliveryError` after the state is saved when the sink refused some alerts (retried next pass).
        """
        started = time.perf_counter()
        now = self.clock() if now is None else now
        cfg = self.settings.detector
        layout = bucket_layout(now, cfg)
        previous = self._previous_state()
        groups = self._load(layout.first_bucket_start, layout.n_buckets, previous)

        rows: list[dict[str, Any]] = []
        fired: list[dict[str, str]] = []
        resolved: list[dict[str, str]] = []
        failures = 0
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
                if firing and not was_firing[i]:
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
        if failures:
            raise SpikeDeliveryError(f"{failures} spike alert transition(s) could not be handed to the gateway")
        return outcome

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
        first_bucket: int,
        n_buckets: int,
        previous: Mapping[tuple[str, tuple[str, ...]], SpikeState],
    ) -> list[_Group]:
        """Dense spend arrays for every watched label set, from one rollup query at the finest grain."""
        series = self.settings.series
        finest = [label for label in WATCHABLE_LABELS if any(label in labels for labels in series)]
        end = first_bucket + n_buckets * BUCKET_SECONDS
        rows = self.store.rollup_buckets(first_bucket, end, group_by=finest, columns=["cost_nanousd"])
        width = len(finest)
        index: dict[tuple[str, ...], int] = {}
        codes = np.fromiter((index.setdefault(r[:width], len(index)) for r in rows), dtype=np.int64, count=len(rows))
        cols = np.fromiter((r[width] for r in rows), dtype=np.int64, count=len(rows))
        cols = (cols - first_bucket) // BUCKET_SECONDS
        cost = np.fromiter((float(r[width + 1] or 0) for r in rows), dtype=np.float64, count=len(rows))
        cost /= _NANOS_PER_USD
        fine_keys = list(index)

        groups = []
        for labels in series:
            name = group_name(labels)
            positions = [finest.index(label) for label in labels]
            keys: dict[tuple[str, ...], int] = {(): 0} if not labels else {}  # the total exists even at $0
            to_group = np.array(
                [keys.setdefault(tuple(k[p] for p in positions), len(keys)) for k in fine_keys], dtype=np.int64
            )
            firing = [key for (group, key), state in previous.items() if group == name and state.firing]
            for key in firing:  # a firing series with no spend left must still be evaluated (and resolve)
                keys.setdefault(key, len(keys))
            flat = to_group[codes] * n_buckets + cols if len(rows) else np.zeros(0, dtype=np.int64)
            dense = np.bincount(flat, weights=cost, minlength=len(keys) * n_buckets).astype(np.float64, copy=False)
            group_keys, values = _fold(
                list(keys), dense.reshape(len(keys), n_buckets), set(firing), self.settings.max_series_per_group, labels
            )
            groups.append(_Group(tuple(labels), group_keys, values))
        return groups

    def _save(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        with self.store.transaction() as conn:
            conn.execute(delete(spike_state))
            if rows:
                conn.execute(spike_state.insert(), rows)


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


def _annotations(
    labels: Mapping[str, str], *, window: float, baseline: float, ratio: float, minutes: int, cfg: DetectionConfig
) -> dict[str, str]:
    ratio_text = f"{ratio:.1f}x" if math.isfinite(ratio) else "no baseline spend"
    what = _describe(labels)
    return {
        "observed": f"{_usd(window)} in {minutes} min",
        "baseline": _usd(baseline),
        "ratio": ratio_text,
        "summary": f"Spend spike: {what} was {_usd(window)} in the last {minutes} minutes ({ratio_text} its baseline).",
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
