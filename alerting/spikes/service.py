"""`SpikeService`: one detection pass over the rollups, turning the detector's verdicts into alerts and gauges."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete

from alerting.model import SPIKE_PASS_ANNOTATION
from alerting.sink import AlertSink, Reasons, active_annotations, figures_key, fire_all, resolve_all, update
from alerting.spikes.cache import CACHE_KEYS_PER_SERIES, SpendCache
from alerting.spikes.detection import Reason, bucket_layout, detect_spikes
from alerting.spikes.messages import ALERTNAME, SEVERITY, alert_annotations, grew, pass_stamp, spike_ended, unwatched
from alerting.spikes.settings import WATCHABLE_LABELS, SpikeSettings, group_name
from alerting.spikes.state import SpikeState, read_spike_state, row_from_state, spike_state, state_row
from exporter.collector import OTHER
from exporter.store import Store
from exporter.store.schema import BUCKET_SECONDS

log = logging.getLogger(__name__)

MAX_SETTLING_SECONDS = 3600.0
"""Longest a backfill in progress defers new spike alerts (see `SpikeService._settling`)."""


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
        keep: set[frozenset[tuple[str, str]]] = set()  # series firing or spiking: their alerts stay open
        failures = deferred = 0
        # The figures each firing spike's messages show, to edit them in place once it grew (`grew`).
        notified = active_annotations(self.sink, [ALERTNAME]) if any(p.firing for p in previous.values()) else None
        to_fire_all: list[tuple[str, int, dict[str, str], dict[str, str]]] = []  # (label set, row, labels, notes)
        to_resolve_all: list[tuple[str, int, dict[str, str], str]] = []
        for group in groups:
            name = group_name(group.labels)
            prev = [previous.get((name, key)) for key in group.keys]
            was_firing = np.array([p is not None and p.firing for p in prev], dtype=bool)
            result = detect_spikes(
                group.values,
                cfg,
                now_fraction=layout.now_fraction,
                previously_firing=was_firing,
                firing_buckets=firing_buckets(prev, now, cfg.bucket_seconds),
            )
            gauges = detect_spikes(group.values, self._gauge_config, now_fraction=layout.now_fraction)
            to_fire: list[tuple[int, dict[str, str], dict[str, str]]] = []  # (row, labels, annotations)
            to_resolve: list[tuple[int, dict[str, str], str]] = []  # (row, labels, why it ended)
            for i, key in enumerate(group.keys):
                labels = dict(zip(group.labels, key, strict=True))
                firing = bool(result.is_spike[i])
                before = prev[i]
                since = before.firing_since if before is not None and before.firing else None
                if firing and not was_firing[i] and settling:
                    firing = False  # history is still arriving: the baseline may not be complete yet
                    deferred += 1
                elif firing and not was_firing[i]:
                    annotations = alert_annotations(
                        labels,
                        window=float(result.window_spend[i]),
                        baseline=float(result.baseline[i]),
                        ratio=float(result.ratio[i]),
                        minutes=int(result.window_minutes[i]),
                        cfg=cfg,
                    )
                    annotations[SPIKE_PASS_ANNOTATION] = pass_stamp(now)
                    to_fire.append((len(rows), labels, annotations))
                    since = now
                elif was_firing[i] and not firing:
                    why = spike_ended(
                        window=float(result.window_spend[i]),
                        baseline=float(result.baseline[i]),
                        ratio=float(result.ratio[i]),
                        minutes=int(result.window_minutes[i]),
                        cfg=cfg,
                    )
                    to_resolve.append((len(rows), labels, why))
                elif (
                    firing
                    and notified
                    and grew(float(result.ratio[i]), shown := notified.get(frozenset(labels.items()), {}))
                ):
                    annotations = alert_annotations(
                        labels,
                        window=float(result.window_spend[i]),
                        baseline=float(result.baseline[i]),
                        ratio=float(result.ratio[i]),
                        minutes=int(result.window_minutes[i]),
                        cfg=cfg,
                    )
                    if SPIKE_PASS_ANNOTATION in shown:  # still the problem its pass started: same group, same thread
                        annotations[SPIKE_PASS_ANNOTATION] = shown[SPIKE_PASS_ANNOTATION]
                    # Not retried by itself: a refused update leaves the old figures, so the next pass finds
                    # the growth again.
                    if not self._deliver(update, self.sink, ALERTNAME, labels, annotations, SEVERITY):
                        failures += 1
                if firing or result.is_spike[i]:
                    keep |= _forms(labels)
                rows.append(
                    state_row(
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
            to_fire_all += [(name, row, labels, notes) for row, labels, notes in to_fire]
            to_resolve_all += [(name, row, labels, why) for row, labels, why in to_resolve]

        # The series starting (or ending) in this pass are handed over together, in one transaction, whatever
        # label set watches them: one burst raises the total, its project and its model at once, one problem
        # that the gateway sends as one message per channel (`alerting.gateway.grouping`), as it does a
        # surge across many projects.
        fire_items = [(ALERTNAME, labels, notes, SEVERITY) for _, _, labels, notes in to_fire_all]
        if to_fire_all and self._deliver(self._fire_many, fire_items):
            fired += [{"group": name, **labels} for name, _, labels, _ in to_fire_all]
        elif to_fire_all:
            failures += len(to_fire_all)
            for _, row, _, _ in to_fire_all:
                rows[row].update(firing=False, firing_since=None)
        items = [(ALERTNAME, labels) for _, _, labels, _ in to_resolve_all]
        reasons = {figures_key(ALERTNAME, labels): why for _, _, labels, why in to_resolve_all}
        if to_resolve_all and self._deliver(self._resolve_many, items, now, reasons):
            resolved += [{"group": name, **labels} for name, _, labels, _ in to_resolve_all]
        elif to_resolve_all:
            failures += len(to_resolve_all)
            for name, row, labels, _ in to_resolve_all:
                before = previous[(name, tuple(labels.values()))]
                rows[row].update(firing=True, firing_since=before.firing_since)

        # Label sets no longer configured: resolve what they had firing, then forget them.
        watched = {group_name(g.labels) for g in groups}
        for (name, _key), state in previous.items():
            if name in watched:
                continue
            if state.firing and not self._deliver(self._resolve, ALERTNAME, state.labels, now, unwatched(state.labels)):
                failures += 1
                rows.append(row_from_state(state))
                keep |= _forms(state.labels)
            elif state.firing:
                resolved.append({"group": name, **state.labels})

        # An open alert of a series that is neither firing nor spiking now, though the stored state did not
        # say it was firing: a pass that read the state before another leader raised the alert left it open
        # (see `_resolve`) and stored "not firing" over it. Nothing else would ever end it.
        done = keep.union(*(_forms({k: v for k, v in r.items() if k != "group"}) for r in resolved))
        for _alertname, labels in self._active():
            if frozenset(labels.items()) in done:
                continue
            if self._deliver(self._resolve, ALERTNAME, labels, now):
                resolved.append({"group": self._group_of(labels), **labels})
            else:
                failures += 1

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

    def _resolve(self, alertname: str, labels: Mapping[str, str], started_by: float, why: str = "") -> None:
        """Resolve the alert only if it had started by `started_by`, when this pass began reading the state.

        (`_resolve_many` does so for several alerts in one transaction.) `why`: what ended it, said by its
        resolve (see `alerting.sink.resolve_all`'s `reasons`).

        An alert raised after that (by a new leader while this one was stalled, its spike over and another
        begun) is not the one this pass found over: resolving it would end the new spike's Slack thread and
        PagerDuty incident only for the next pass to open new ones (see `alerting.sink.resolve_all`).
        """
        reasons = {figures_key(alertname, labels): why} if why else None
        resolve_all(self.sink, [(alertname, dict(labels))], started_by=started_by, reasons=reasons)

    def _fire_many(self, items: list[tuple[str, dict[str, str], dict[str, str], str]]) -> None:
        fire_all(self.sink, items)

    def _resolve_many(self, items: list[tuple[str, dict[str, str]]], started_by: float, reasons: Reasons) -> None:
        resolve_all(self.sink, items, started_by=started_by, reasons=reasons)

    def _active(self) -> list[tuple[str, dict[str, str]]]:
        """The sink's open spike alerts (none from a sink that cannot say, such as a test recorder)."""
        active_labels = getattr(self.sink, "active_labels", None)
        return [] if active_labels is None else active_labels([ALERTNAME])

    def _group_of(self, labels: Mapping[str, str]) -> str:
        """The watched label set an alert's labels belong to (by their names)."""
        names = {k for k, v in labels.items() if v != ""}
        exact = [s for s in self.settings.series if set(s) == set(labels)]
        wider = [s for s in self.settings.series if set(s) >= names]  # Alertmanager dropped empty values
        return group_name((exact or wider or [tuple(sorted(labels))])[0])

    def _deliver(self, method: Callable[..., Any], *args: Any) -> bool:
        try:
            method(*args)
            return True
        except Exception:
            which = next(a for a in args if isinstance(a, dict | list))  # the labels, or the batch
            log.exception("handing %s %s to the alert gateway failed; retrying next pass", ALERTNAME, which)
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
        """Dense spend arrays for every watched label set (its kept series and `__other__`), from the cache."""
        cache = self._cache
        cache.update(
            self.store,
            now,
            first_bucket,
            n_buckets,
            reload_seconds=self.reload_seconds,
            full_reload_seconds=self.full_reload_seconds,
        )
        cap = self.settings.max_series_per_group
        groups: list[_Group] = []
        small: list[tuple[_Group, list[npt.NDArray[np.int64]]]] = []
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
            members = _members(to_group, len(keys))
            if len(keys) <= cap:  # no fold: made dense below, together with the other such label sets
                groups.append(_Group(tuple(labels), list(keys), np.zeros((0, 0))))
                small.append((groups[-1], members))
            else:
                group_keys, values = _fold(cache, list(keys), members, set(firing), cap, labels)
                groups.append(_Group(tuple(labels), group_keys, values))
        for (group, _), values in zip(small, cache.dense_many([members for _, members in small]), strict=True):
            group.values = values
        return groups

    def _save(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        with self.store.transaction() as conn:
            conn.execute(delete(spike_state))
            if rows:
                conn.execute(spike_state.insert(), rows)


def firing_buckets(states: list[SpikeState | None], now: float, bucket_seconds: int) -> npt.NDArray[np.int64]:
    """Per series, how many buckets ago its alert started (0 when it is not firing).

    With it `detect_spikes` compares a long spike with the day as it was before the spike, not with the
    spike itself.
    """
    return np.array(
        [
            max(0, math.ceil(now / bucket_seconds) - math.ceil(s.firing_since / bucket_seconds))
            if s is not None and s.firing and s.firing_since is not None
            else 0
            for s in states
        ],
        dtype=np.int64,
    )


def _forms(labels: Mapping[str, str]) -> set[frozenset[tuple[str, str]]]:
    """A series' labels as its alert may carry them: as they are, and without empty values (Alertmanager's)."""
    return {frozenset(labels.items()), frozenset((k, v) for k, v in labels.items() if v != "")}


def _members(to_group: npt.NDArray[np.int64], n_groups: int) -> list[npt.NDArray[np.int64]]:
    """The cache rows of each group (`to_group[i]` is row i's group), ascending."""
    order = np.argsort(to_group, kind="stable")
    bounds = np.searchsorted(to_group[order], np.arange(n_groups + 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(n_groups)]


def _fold(
    cache: SpendCache,
    keys: list[tuple[str, ...]],
    members: list[npt.NDArray[np.int64]],
    firing: set[tuple[str, ...]],
    cap: int,
    labels: Sequence[str],
) -> tuple[list[tuple[str, ...]], npt.NDArray[np.float64]]:
    """Of more than `cap` series, keep the `cap` highest-spend (and every firing one); the rest sum to `__other__`.

    Only the series kept are made dense at once; the others a block at a time, to rank them (each
    series' total over its dense line, as the detector's arrays sum) and to add them line after line
    into `__other__`, the order the dense sum over all of them took.
    """
    block = cache.lines_per_block
    totals = np.concatenate([cache.dense(members[k : k + block]).sum(axis=1) for k in range(0, len(keys), block)])
    order = np.argsort(-totals, kind="stable")
    keep = np.zeros(len(keys), dtype=bool)
    keep[order[:cap]] = True
    keep |= np.array([key in firing for key in keys], dtype=bool)
    other = (OTHER,) * len(labels)
    rest = np.zeros(cache.n_buckets)
    folded = np.flatnonzero(~keep)
    for k in range(0, len(folded), block):
        for line in cache.dense([members[i] for i in folded[k : k + block]]):
            rest += line
    kept_keys = [key for key, k in zip(keys, keep, strict=True) if k]
    kept = cache.dense([members[i] for i in np.flatnonzero(keep)])
    if other in kept_keys:
        kept[kept_keys.index(other)] += rest
        return kept_keys, kept
    return [*kept_keys, other], np.vstack([kept, rest[None, :]])
