"""Scrape-time collector for the scheduler's self metrics and the spike detector's gauges.

Everything is read from the store on each scrape: the run counters and last-run times the scheduler
persists in `ingest_counters`, and the `spike_state` rows the last detection pass wrote. So every
process serving `/metrics` shows the same figures, whichever of them leads the scheduler.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting.scheduler import Outcome, last_run_name, runs_name
from alerting.spikes.state import read_spike_state
from exporter import metric_names
from exporter.store import Store

_LAST_RUN_PREFIX = last_run_name("")
_RUNS_PREFIX = runs_name("", "")[:-1]  # "scheduler.runs."
RECORDED_OUTCOMES = (Outcome.SUCCESS.value, Outcome.ERROR.value)


class SchedulerCollector(Collector):
    """`llm_scheduler_*` and `llm_spend_*` families; `jobs` are shown with zero runs before they first run.

    Last-run times are those of `jobs` only (of every job the store knows when none are given).
    """

    def __init__(self, store: Store, *, jobs: Sequence[str] = (), spikes: bool = True) -> None:
        self._store = store
        self._jobs = tuple(jobs)
        self._spikes = spikes

    def collect(self) -> Iterator[Metric]:
        """Read the persisted counters and the spike state."""
        counters = self._store.counters()
        last_run = GaugeMetricFamily(
            metric_names.SCHEDULER_LAST_RUN.name,
            metric_names.SCHEDULER_LAST_RUN.help,
            labels=list(metric_names.SCHEDULER_LAST_RUN.labels),
        )
        runs: dict[tuple[str, str], float] = {(job, o): 0.0 for job in self._jobs for o in RECORDED_OUTCOMES}
        for name, value in sorted(counters.items()):
            if name.startswith(_LAST_RUN_PREFIX):
                job = name[len(_LAST_RUN_PREFIX) :]
                # A job taken out of the config keeps its last run in the store: exported, it would
                # age past LLMCostSchedulerStalled's threshold and page for ever.
                if not self._jobs or job in self._jobs:
                    last_run.add_metric([job], value)
            elif name.startswith(_RUNS_PREFIX):
                job, _, outcome = name[len(_RUNS_PREFIX) :].rpartition(".")
                if job:
                    runs[(job, outcome)] = value
        yield last_run
        family = CounterMetricFamily(
            metric_names.SCHEDULER_RUNS.family_name,
            metric_names.SCHEDULER_RUNS.help,
            labels=list(metric_names.SCHEDULER_RUNS.labels),
        )
        for (job, outcome), value in sorted(runs.items()):
            family.add_metric([job, outcome], value)
        yield family
        if self._spikes:
            yield from self._spike_gauges()

    def _spike_gauges(self) -> Iterator[Metric]:
        labels = list(metric_names.SPIKE_LABELS)
        window = GaugeMetricFamily(metric_names.SPIKE_WINDOW.name, metric_names.SPIKE_WINDOW.help, labels=labels)
        baseline = GaugeMetricFamily(metric_names.SPIKE_BASELINE.name, metric_names.SPIKE_BASELINE.help, labels=labels)
        ratio = GaugeMetricFamily(metric_names.SPIKE_RATIO.name, metric_names.SPIKE_RATIO.help, labels=labels)
        for state in read_spike_state(self._store):
            values = state.metric_labels()
            window.add_metric(values, state.window_usd)
            baseline.add_metric(values, state.baseline_usd)
            if state.ratio is not None:  # no sample while the baseline is 0: the ratio is undefined
                ratio.add_metric(values, state.ratio)
        yield from (window, baseline, ratio)
