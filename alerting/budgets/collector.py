"""`llm_budget_*` gauges, read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting.budgets.service import BudgetService
from exporter import metric_names


class BudgetCollector(Collector):
    """Limit, spent, projected, usage ratio and period end of every budget instance."""

    def __init__(self, service: BudgetService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        """One sample per instance and gauge."""
        specs = (
            metric_names.BUDGET_LIMIT,
            metric_names.BUDGET_SPENT,
            metric_names.BUDGET_PROJECTED,
            metric_names.BUDGET_RATIO,
            metric_names.BUDGET_PERIOD_END,
        )
        families = [GaugeMetricFamily(s.name, s.help, labels=list(s.labels)) for s in specs]
        for instance in self._service.instances():
            b = instance.budget
            labels = [b.name, b.scope, instance.key, b.period, b.unit]
            end = instance.period_end.timestamp() if instance.period_end else float("inf")
            values = (b.limit, instance.spent, instance.projected, instance.ratio, end)
            for family, value in zip(families, values, strict=True):
                family.add_metric(labels, value)
        yield from families
