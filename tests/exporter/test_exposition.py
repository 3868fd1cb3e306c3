"""The lean renderer writes exactly what prometheus_client writes, only faster."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from starlette.testclient import TestClient

from exporter.exposition import lean_renderer, render_families, render_registry
from exporter.http.app import build_app
from exporter.services import Services
from llmcost.services import open_services
from llmcost.wiring import attach_alerting
from tests.support.helpers import make_config, rank_epochs_later


@pytest.mark.parametrize("metrics", [{}, {"extra_labels": ["user"], "max_series_per_label": 3}])
def test_matches_generate_latest_on_a_populated_store(sqlite_url: str, metrics: dict[str, object]) -> None:
    """Byte-equal to prometheus_client, including the usage collector's direct text path.

    Odd label values (quotes, backslashes, newlines), counts past a million (exponent form), unpriced
    models, errors, and an extra label folded into `__other__`.
    """
    services = Services.build(make_config(sqlite_url, metrics=metrics), start_writer=False)
    now = time.time()
    records = [
        {
            "request_id": f"r{i}",
            "timestamp": now - i,
            "provider": "openai",
            "model": f"m{i % 7}" if i % 11 else "gpt-4o",
            "project": ['we"ird', "back\\slash", "new\nline", "plain"][i % 4],
            "user": f"user-{i % 5}",
            "status": "error" if i % 13 == 0 else "success",
            "input_tokens": i * 50_000 if i % 17 == 0 else i,
            "output_tokens": i % 9,
            **({"cost_usd": i / 7} if i % 3 else {}),
        }
        for i in range(200)
    ]
    services.pipeline.ingest(enumerate(records))
    rank_epochs_later(services.registry)  # the folded `user` keeps its top values
    text = render_registry(services.registry)
    assert text == generate_latest(services.registry)
    assert b"e+06" in text and b"llm_unpriced_requests_total{" in text and b'status="error"' in text
    if metrics:
        assert b'user="__other__"' in text
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


# What Prometheus 2.x sends when it scrapes: OpenMetrics first, the text format as a fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize("accept", ["*/*", "text/plain;version=0.0.4", PROMETHEUS_ACCEPT])
def test_metrics_answers_byte_for_byte_what_prometheus_client_would(sqlite_url: str, accept: str) -> None:
    """Every collector a server registers (usage, self, gateway, budgets, scheduler), text and OpenMetrics."""
    config = make_config(sqlite_url, budgets=[{"name": "daily", "scope": "global", "period": "daily", "limit": 100.0}])
    services = open_services(config, start_writer=False)
    routes = attach_alerting(services, "ingest").routes
    now = time.time()
    services.pipeline.ingest(
        enumerate(
            {"request_id": f"r{i}", "timestamp": now - i, "provider": "openai", "model": f"m{i % 3}", "cost_usd": i}
            for i in range(30)
        )
    )
    encoder, content_type = choose_encoder(accept)
    assert lean_renderer(content_type) is not None, "this format is meant to take the lean path"
    with TestClient(build_app(services, routes)) as client:
        response = client.get("/metrics", headers={"Accept": accept})
    assert response.headers["content-type"] == content_type
    assert response.content == encoder(services.registry)
    assert (b"# EOF" in response.content) == ("openmetrics" in content_type)
    services.close()


def test_a_closed_gate_exposes_only_the_other_collector_and_prepares_every_one() -> None:
    """`metrics.store_series: leader` on a follower: its own collector, never the store's (llmcost/wiring.py)."""
    from exporter.exposition import OrderedRegistry, prepare_registry

    class Family:
        def __init__(self, name: str) -> None:
            self.name = name
            self.prepared = False

        def prepare(self) -> None:
            self.prepared = True

        def collect(self):  # type: ignore[no-untyped-def]
            family = GaugeMetricFamily(self.name, "help")
            family.add_metric([], 1.0)
            yield family

    store_series, own = Family("store_series"), Family("own")
    registry = OrderedRegistry()
    registry.register(store_series)
    leading = [True]
    registry.expose_only_while(lambda: leading[0], own)
    assert b"store_series 1.0" in render_registry(registry) and b"own" not in render_registry(registry)
    leading[0] = False
    assert b"store_series" not in render_registry(registry) and b"own 1.0" in render_registry(registry)
    assert b"store_series" not in generate_latest(registry)  # prometheus_client's encoders read collect()
    prepare_registry(registry)
    assert store_series.prepared  # ready for the scrape after it takes the lease


def test_a_follower_answers_its_build_info_or_store_down_when_the_store_does_not_answer() -> None:
    """No `llm_store_up 1` on a follower: the rules read that an hour back as "it exposed the store's series"."""
    import asyncio

    from exporter.collector import FollowerCollector
    from exporter.exposition import OrderedRegistry
    from exporter.http.scrape import BoundedScrapes

    answers = [True]
    registry = OrderedRegistry()
    registry.expose_only_while(lambda: False, FollowerCollector(lambda: answers[0]))
    scrapes = BoundedScrapes(registry)
    text = asyncio.run(scrapes.render(render_registry, "text/plain", 5)).decode()
    assert "llm_exporter_build_info{" in text and "llm_store_up" not in text
    answers[0] = False
    assert "llm_store_up 0.0" in asyncio.run(scrapes.render(render_registry, "text/plain", 5)).decode()
