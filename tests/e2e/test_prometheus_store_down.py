"""The real Prometheus scraping a `llmcost serve` whose PostgreSQL hangs (its processes stopped).

The scrape hung until Prometheus' scrape timeout: the target went down with no reason given, every
series went stale, and only LLMCostExporterDown could say something was wrong, the wrong thing. Now the
target stays up, `llm_store_up` says 0, and the shipped LLMCostStoreDown rule fires; all clears once the
database answers.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import live_stack
from tests.support.pg import PostgresCluster
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

INTERVAL = 2.0  # scrape and evaluation interval; the scrape timeout is the same, so llmcost waits 1 s


def _value(prometheus: str, expr: str) -> float | None:
    result = live_stack.instant_query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_keeps_the_target_up_and_fires_llmcoststoredown_while_postgresql_hangs(tmp_path: Path) -> None:
    cluster = PostgresCluster().start()  # its own: paused below
    with ExitStack() as cleanup:
        cleanup.callback(cluster.destroy)
        ports = live_stack.Ports(*live_stack.free_ports(3))
        server = LlmcostProcess(cluster.create_database(), role="ingest")
        server.port = ports.llmcost
        cleanup.callback(server.stop)
        server.start(tmp_path)
        rules = live_stack.fast_rule_files(tmp_path / "rules", {"LLMCostStoreDown": "4s"})
        prometheus = live_stack.prometheus_server(tmp_path / "prometheus", ports, rule_files=rules, interval=INTERVAL)
        cleanup.callback(prometheus.stop)
        prometheus.start()
        prom = ports.url("prometheus")
        assert live_stack.wait_until(lambda: _value(prom, 'llm_store_up{job="llmcost"}') == 1, 30), "first scrape"

        firing = 'ALERTS{alertname="LLMCostStoreDown", alertstate="firing"}'
        cluster.pause()
        try:
            assert live_stack.wait_until(lambda: _value(prom, firing) == 1, 30), "LLMCostStoreDown firing"
            assert _value(prom, 'up{job="llmcost"}') == 1, "the target stays up: its scrapes are answered"
            assert _value(prom, 'llm_store_up{job="llmcost"}') == 0
        finally:
            cluster.resume()
        assert live_stack.wait_until(lambda: _value(prom, 'llm_store_up{job="llmcost"}') == 1, 30), "store back"
        assert live_stack.wait_until(lambda: _value(prom, firing) is None, 30), "LLMCostStoreDown resolved"
