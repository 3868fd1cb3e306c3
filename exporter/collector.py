"""Custom Prometheus collectors that read the store at scrape time (client_python's collector pattern).

Nothing is accumulated in process memory: every scrape reads `usage_series` totals and the persisted
self counters, so counters survive restarts and any process serving `/metrics` gives the same numbers.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__, metric_names
from exporter.events import NANOS_PER_USD, SKIP_REASONS
from exporter.exposition import LabelWriter, family_header, format_value
from exporter.label_ranks import RANK_SECONDS, LabelRanks
from exporter.store import Store, StoreUnavailable, skipped_counter
from exporter.store.label_folding import NEW_VALUE
from exporter.store.store import SeriesTotals

OTHER = "__other__"
SHARED_SECONDS = 10.0
"""How old the usage totals of a scrape may be for the adjustment collector to take them (same thread)."""
__all__ = ["OTHER", "RANK_SECONDS", "AdjustmentCollector", "SelfCollector", "StoreUpCollector", "UsageCollector"]
_TOKEN_TYPES = (
    ("input", "input_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
)


def _counter(spec: metric_names.MetricSpec, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(spec.family_name, spec.help, labels=list(labels))


def _gauge(spec: metric_names.MetricSpec, labels: Sequence[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels if labels is None else labels))


class UsageCollector(Collector):
    """Usage counters: requests, tokens by type, reasoning tokens, cost and unpriced requests."""

    def __init__(
        self,
        store: Store,
        *,
        extra_labels: Sequence[str] = (),
        max_series_per_label: int = 1000,
        rank_refresh_seconds: float = RANK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._extra = tuple(extra_labels)
        self._cap = max_series_per_label
        self.ranks = LabelRanks(store, max_series_per_label, clock, refresh=rank_refresh_seconds)
        self._shared = threading.local()  # this scrape's totals per label set, for AdjustmentCollector

    @property
    def base_labels(self) -> tuple[str, ...]:
        """The labels of the usage families, without `status` and `token_type`."""
        return ("provider", "model", "project", "service", *self._extra)

    def prepare(self) -> None:
        """Rank every label now (the app calls it before it accepts scrapes; see exporter.label_ranks)."""
        self.ranks.rank_unranked(self.base_labels)

    def collect(self) -> Iterator[Metric]:
        """Read the series totals once and derive every usage family from them."""
        base, rows, per_labels, per_model = self._totals()
        requests = _counter(metric_names.REQUESTS, (*base, "status"))
        tokens = _counter(metric_names.TOKENS, (*base, "token_type"))
        reasoning = _counter(metric_names.REASONING_TOKENS, base)
        cost = _counter(metric_names.COST, base)
        unpriced = _counter(metric_names.UNPRICED, ("provider", "model"))
        for row in rows:
            requests.add_metric(list(row.labels), row.get("requests"))
        for labels, acc in per_labels.items():
            values = list(labels)
            for (token_type, _column), value in zip(_TOKEN_TYPES, acc[:4], strict=True):
                tokens.add_metric([*values, token_type], value)
            reasoning.add_metric(values, acc[4])
            cost.add_metric(values, acc[5] / NANOS_PER_USD)
        for (provider, model), value in per_model.items():
            unpriced.add_metric([provider, model], value)
        yield from (requests, tokens, reasoning, cost, unpriced)

    def render_text(self, escaped: dict[str, str], openmetrics: bool = False) -> str:
        """What rendering `collect()`'s families gives, written straight from the totals (a test pins it).

        At 100k series, a prometheus_client Sample (and its label dict) per series cost more than the
        line it becomes; this path writes each line once.
        """
        base, rows, per_labels, per_model = self._totals()
        out: list[str] = []
        append = out.append

        spec = metric_names.REQUESTS
        name, labels_of = spec.sample_name, LabelWriter((*base, "status"), escaped)
        append(family_header(spec.family_name, spec.help, spec.type, openmetrics=openmetrics))
        for row in rows:
            append(f"{name}{labels_of(row.labels)} {format_value(row.get('requests'))}\n")

        by_base = LabelWriter(base, escaped)
        escaped_base = [by_base.escape(labels) for labels in per_labels]  # shared by the next three families
        spec = metric_names.TOKENS
        name, labels_of = spec.sample_name, LabelWriter((*base, "token_type"), escaped)
        append(family_header(spec.family_name, spec.help, spec.type, openmetrics=openmetrics))
        for values, acc in zip(escaped_base, per_labels.values(), strict=True):
            for (token_type, _column), count in zip(_TOKEN_TYPES, acc[:4], strict=True):
                append(f"{name}{labels_of.with_escaped((*values, token_type))} {format_value(count)}\n")

        for spec, position, scale in ((metric_names.REASONING_TOKENS, 4, 1), (metric_names.COST, 5, NANOS_PER_USD)):
            name = spec.sample_name
            append(family_header(spec.family_name, spec.help, spec.type, openmetrics=openmetrics))
            for values, acc in zip(escaped_base, per_labels.values(), strict=True):
                amount = acc[position] if scale == 1 else acc[position] / scale
                append(f"{name}{by_base.with_escaped(values)} {format_value(amount)}\n")

        spec = metric_names.UNPRICED
        name, labels_of = spec.sample_name, LabelWriter(("provider", "model"), escaped)
        append(family_header(spec.family_name, spec.help, spec.type, openmetrics=openmetrics))
        for provider_model, count in per_model.items():
            append(f"{name}{labels_of(provider_model)} {format_value(count)}\n")
        return "".join(out)

    def _totals(
        self,
    ) -> tuple[tuple[str, ...], list[SeriesTotals], dict[tuple[str, ...], list[int]], dict[tuple[str, str], int]]:
        """The label names, the rows per full label set, and the sums without `status` and per model."""
        base = self.base_labels
        self._shared.totals = None
        rows = self._folded_rows(base)
        per_labels: dict[tuple[str, ...], list[int]] = {}
        per_model: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            labels = row.labels[:-1]
            acc = per_labels.get(labels)
            if acc is None:
                acc = per_labels[labels] = [0, 0, 0, 0, 0, 0, 0, 0]
            acc[0] += row.get("input_tokens")
            acc[1] += row.get("cache_read_tokens")
            acc[2] += row.get("cache_write_tokens")
            acc[3] += row.get("output_tokens")
            acc[4] += row.get("reasoning_tokens")
            acc[5] += row.get("cost_nanousd")
            acc[6] += row.get("cost_adjust_up_nanousd")
            acc[7] += row.get("cost_adjust_down_nanousd")
            if row.get("unpriced_requests"):
                per_model[labels[0], labels[1]] += row.get("unpriced_requests")
        self._shared.totals = (time.monotonic(), per_labels)
        if any(OTHER in pair for pair in per_model):
            # The lowest-cost values fold first, and an unpriced model costs 0: past the cap it would be
            # `__other__` here, and no one could tell which model needs a price (LLMCostUnpricedModel).
            # So unpriced calls are counted per model as stored, under a cap of their own.
            per_model = self._store.unpriced_models(self._cap)
        return base, rows, per_labels, per_model

    def take_adjustments(self) -> dict[tuple[str, ...], tuple[int, int]] | None:
        """The repricing corrections per usage label set (USAGE_LABELS) that this thread's scrape just read.

        The usage totals carry them from the same scan of the series, so the adjustment collector,
        next in the same scrape, needs no second scan (~0.2 s at 100,000 series on SQLite). None when
        this thread has no fresh totals: the caller reads the store itself.
        """
        shared = getattr(self._shared, "totals", None)
        self._shared.totals = None
        if shared is None or time.monotonic() - shared[0] > SHARED_SECONDS:
            return None
        width = len(metric_names.USAGE_LABELS)
        sums: dict[tuple[str, ...], list[int]] = {}
        for labels, acc in shared[1].items():
            pair = sums.setdefault(labels[:width], [0, 0])
            pair[0] += acc[6]
            pair[1] += acc[7]
        return {labels: (up, down) for labels, (up, down) in sums.items()}

    def _folded_rows(self, base: tuple[str, ...]) -> list[SeriesTotals]:
        """The totals with every label capped, not only the opt-in ones, in one scan of the series.

        100k project names from one client would otherwise make every scrape megabytes long and slower
        than Prometheus' scrape timeout. The work on ranks is bounded (exporter.label_ranks): what fits
        in GROWN_RANK_SECONDS (at least one label) a scrape, at an epoch's first scrape too (the folded
        labels not ranked ahead; the rest over the next scrapes), but a grown label still under the cap is
        always listed again at once; the query is repeated only when a label grew.
        """
        labels = (*base, "status")
        ranks = self.ranks
        ranks.rank_unranked(base)  # nothing, once the app's start-up has ranked them
        # A new epoch's ranks are taken before the query: this scrape shows the folding every other
        # process on the store shows now (exporter.label_ranks).
        ranks.switch_epoch(base)
        folding = ranks.folding
        rows = self._store.series_totals(labels, keep=folding.keep, known=folding.known, adjustments=True)
        grown = ranks.grown(base, (row.labels for row in rows))
        if grown:
            # A flood over several labels is absorbed over a few scrapes (exporter.label_ranks). The
            # labels ranked are read again at once: a new value (a new model, say) gets its own series
            # now rather than passing through `__other__` for one scrape, and a label that went past the
            # cap shows the folding other processes show, not this process's own for one scrape (its
            # `__other__` would be smaller than theirs, a counter reset through a load balancer).
            ranks.rank_grown(grown)
            folding = ranks.folding
            rows = self._store.series_totals(labels, keep=folding.keep, known=folding.known, adjustments=True)
        elif ranks.stale:
            ranks.rank_stale()  # labels a flood left on the last epoch's values, shown from the next scrape
        else:
            ranks.rank_ahead(base)  # the next epoch's, used from its first scrape on
        return _new_values_as_other(rows)

    def folding(self) -> dict[str, Sequence[str]]:
        """The values kept per label (the rest fold into `__other__`); see exporter.label_ranks for their age."""
        self.ranks.rank_unranked(self.base_labels)
        return self.ranks.as_keep()


def _new_values_as_other(rows: list[SeriesTotals]) -> list[SeriesTotals]:
    """Values of a label not ranked since they appeared go to `__other__` (rows that meet are summed)."""
    if not any(NEW_VALUE in row.labels for row in rows):
        return rows
    merged: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        labels = tuple(OTHER if value == NEW_VALUE else value for value in row.labels)
        sums = merged.get(labels)
        if sums is None:
            merged[labels] = list(row.counters)
        else:
            for i, value in enumerate(row.counters):
                sums[i] += value
    return [SeriesTotals(labels, tuple(sums)) for labels, sums in merged.items()]


class AdjustmentCollector(Collector):
    """`llm_cost_adjustment_usd_total{direction}`: repricing corrections, as two counters that only rise.

    Every usage label set is exported in both directions, at 0 until a correction: a series that
    appeared only with its first correction would hide that correction from `increase()`. Labels are
    folded into `__other__` exactly as `usage` folds them (its ranking is shared), so the corrections
    line up with `llm_cost_usd_total` and a label flood stays capped.
    """

    def __init__(self, store: Store, usage: UsageCollector | None = None) -> None:
        self._store = store
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        """Read the corrections per usage label set."""
        family = _counter(metric_names.COST_ADJUSTMENT, metric_names.COST_ADJUSTMENT.labels)
        shared = self._usage.take_adjustments() if self._usage is not None else None
        if shared is not None:
            rows = [(labels, up, down) for labels, (up, down) in shared.items()]
        else:
            keep = self._usage.folding() if self._usage is not None else None
            rows = self._store.cost_adjustments(metric_names.USAGE_LABELS, keep=keep)
        for labels, up, down in rows:
            family.add_metric([*labels, "up"], up / NANOS_PER_USD)
            family.add_metric([*labels, "down"], down / NANOS_PER_USD)
        yield family


class SelfCollector(Collector):
    """Ingest outcome counters (persisted in the store), last accepted time, and build info."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        """Read the persisted counters."""
        counters = self._store.counters()
        ingest = _counter(metric_names.INGEST_EVENTS, ("outcome",))
        for outcome in ("accepted", "duplicate", "rejected"):
            ingest.add_metric([outcome], counters.get(outcome, 0.0))
        yield ingest
        ingest_skipped = _counter(metric_names.INGEST_SKIPPED, ("reason",))
        for reason in SKIP_REASONS:
            ingest_skipped.add_metric([reason], counters.get(skipped_counter(reason), 0.0))
        yield ingest_skipped
        last = _gauge(metric_names.INGEST_LAST_EVENT)
        last.add_metric([], counters.get("last_accepted_ts", 0.0))
        yield last
        skipped = _counter(metric_names.OTLP_SPANS_SKIPPED, ())
        skipped.add_metric([], counters.get("otlp_spans_skipped", 0.0))
        yield skipped
        yield _build_info()


def _build_info() -> Metric:
    """`llm_exporter_build_info`: 1, labelled with this llmcost's version."""
    info = _gauge(metric_names.BUILD_INFO)
    info.add_metric([__version__], 1.0)
    return info


class StoreUpCollector(Collector):
    """`llm_store_up`: 1 in a scrape that read the store; 0 (with the build info) in one answered without it.

    A scrape whose store does not answer is answered from what the process holds without it (see
    exporter/http/scrape.py): that is this gauge at 0 and `llm_exporter_build_info`, so Prometheus keeps
    the target up and a rule can say why the usage series stopped.
    """

    def __init__(self, *, up: bool) -> None:
        self._up = up

    def collect(self) -> Iterator[Metric]:
        """The gauge; the build info too when the store's own collectors (SelfCollector) did not run."""
        gauge = _gauge(metric_names.STORE_UP)
        gauge.add_metric([], 1.0 if self._up else 0.0)
        yield gauge
        if not self._up:
            yield _build_info()


class FollowerCollector(Collector):
    """What a process that does not expose the store's series answers: its build info.

    With `metrics.store_series: leader` only the scheduler's leader exposes the series read from the store
    (docs/deployment.md). A follower leaves `llm_store_up 1` out too: the shipped rules read "`llm_store_up`
    was 1 an hour ago" as "this target exposed the store's series then", so a series new on a target that
    was a follower an hour ago counts as new. A store that does not answer still gets `llm_store_up 0`.
    """

    def __init__(self, ping: Callable[[], bool]) -> None:
        self._ping = ping

    def collect(self) -> Iterator[Metric]:
        """The build info; StoreUnavailable when the store does not answer (answered in exporter/http/scrape.py)."""
        if not self._ping():
            raise StoreUnavailable("the store does not answer")
        yield _build_info()
