"""The lean renderer writes exactly what prometheus_client writes, only faster."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporter.exposition import render_families, render_registry
from exporter.services import Services
from tests.helpers import make_config


def test_matches_generate_latest_on_a_populated_store(sqlite_url: str) -> None:
    services = Services.build(make_config(sqlite_url), start_writer=False)
    now = time.time()
    records = [
        {
            "request_id": f"r{i}",
            "timestamp": now - i,
            "provider": "openai",
            "model": f"m{i % 7}",
            "project": ['we"ird', "back\\slash", "new\nline", "plain"][i % 4],
            "input_tokens": i,
            "cost_usd": i / 7,
        }
        for i in range(200)
    ]
    services.pipeline.ingest(enumerate(records))
    assert render_registry(services.registry) == generate_latest(services.registry)
    services.close()


def test_matches_generate_latest_for_special_values() -> None:
    counter = CounterMetricFamily("x", "help with \\ and\nnewline", labels=["b", "a"])
    counter.add_metric(["2", "1"], 1e21)
    counter.add_metric(["3", "4"], 0.1)
    gauge = GaugeMetricFamily("g", "a gauge", labels=[])
    gauge.add_metric([], float("inf"))

    class Registry:
        def collect(self):  # type: ignore[no-untyped-def]
            return [counter, gauge]

    assert render_families([counter, gauge]) == generate_latest(Registry())  # type: ignore[arg-type]
