"""One real Prometheus scraping two llmcost installations (staging and prod), as a platform team runs it.

Both are scraped as their own job and the rules are rendered for both with `build_rules.py --selector
'job=~"llmcost-.*"'`, as docs/monitoring.md says. The recording rules summed `by (provider, model, …)`
and took `max without (instance, job)`, so what they recorded was both installations in one series:
prod's spend with staging's added, one budget's usage ratio the higher of the two. The Stack health
dashboard counted every installation's LLMCost* alerts whichever one it showed. Now every recorded
series keeps `job`, and the dashboards choose one installation with their `job` variable.

The two exporters are /metrics pages served here, their counters rising by a fixed step per scrape, so
that the spend of each installation has its own known proportion.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support import monitoring_assets as assets

Json = dict[str, Any]

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

INTERVAL = 1.0  # scrape and evaluation interval
STAGING, PROD = "llmcost-staging", "llmcost-prod"
SELECTOR = 'job=~"llmcost-.*"'  # both installations' jobs, for build_rules.py and build_dashboards.py
# Per scrape, in dollars: prod spends ten times what staging does.
STEP = {STAGING: 1.0, PROD: 10.0}
# The same budget name in both installations, at different usage.
USAGE = {STAGING: 0.9, PROD: 0.2}


class _Exporter:
    """A /metrics page like one llmcost installation's: spend rising by `step` per scrape, one budget."""

    def __init__(self, step: float, usage: float, *, store_up: int) -> None:
        self.step, self.usage, self.store_up = step, usage, store_up
        self.scrapes = 0
        self.lock = threading.Lock()

    def page(self) -> str:
        with self.lock:
            self.scrapes += 1
            cost = self.step * self.scrapes
        labels = 'provider="openai",model="gpt-4o",project="search",service="api"'
        budget = 'budget="monthly",scope="global",key="*",period="monthly",unit="usd"'
        return (
            "# TYPE llm_cost_usd_total counter\n"
            f"llm_cost_usd_total{{{labels}}} {cost}\n"
            "# TYPE llm_requests_total counter\n"
            f'llm_requests_total{{{labels},status="ok"}} {self.scrapes}\n'
            "# TYPE llm_budget_usage_ratio gauge\n"
            f"llm_budget_usage_ratio{{{budget}}} {self.usage}\n"
            "# TYPE llm_budget_limit gauge\n"
            f"llm_budget_limit{{{budget}}} 100\n"
            "# TYPE llm_budget_projected gauge\n"
            f"llm_budget_projected{{{budget}}} {self.usage * 100}\n"
            "# TYPE llm_store_up gauge\n"
            f"llm_store_up {self.store_up}\n"
        )


def _serve(exporter: _Exporter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.page().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _build(script: str, out: Path) -> list[Path]:
    """Run prometheus/build_rules.py or grafana/build_dashboards.py for both jobs into `out`."""
    argv = [sys.executable, str(assets.REPO / script), "--out", str(out), "--selector", SELECTOR]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return sorted(out.iterdir())


def _rendered_rules(dest: Path) -> list[Path]:
    """The shipped rules rendered for both jobs, fast: no group intervals, LLMCostStoreDown after 1 s."""
    fast = []
    for path in _build("prometheus/build_rules.py", dest / "rendered"):
        data = assets.load_yaml(path)
        for group in data["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if rule.get("alert") == "LLMCostStoreDown":
                    rule["for"] = "1s"
        fast.append(live_stack.stack.dump_yaml(data, dest / path.name, source=None))
    return fast


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping staging (its store down) and prod, with the rules rendered for both."""
    workdir = tmp_path_factory.mktemp("prometheus")
    exporters = {
        STAGING: _Exporter(STEP[STAGING], USAGE[STAGING], store_up=0),
        PROD: _Exporter(STEP[PROD], USAGE[PROD], store_up=1),
    }
    with ExitStack() as cleanup:
        jobs = []
        for job, exporter in exporters.items():
            server = _serve(exporter)
            cleanup.callback(server.server_close)
            cleanup.callback(server.shutdown)
            jobs.append({"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}]})
        step = f"{INTERVAL:g}s"
        config = {
            "global": {"scrape_interval": step, "scrape_timeout": step, "evaluation_interval": step},
            "rule_files": [str(p) for p in _rendered_rules(workdir / "rules")],
            "scrape_configs": jobs,
        }
        path = live_stack.stack.dump_yaml(config, workdir / "prometheus.yml")
        (port,) = live_stack.free_ports(1)
        server = live_stack.stack.prometheus_server(path, workdir / "data", port, workdir / "prometheus.log")
        cleanup.callback(server.stop)
        server.start()
        url = f"http://127.0.0.1:{port}"
        assert live_stack.wait_until(lambda: len(_by_job(url, ":llm_cost_usd:rate5m")) > 0, 30), "spend recorded"
        live_stack.wait_until(lambda: _has_both(url, ":llm_cost_usd:rate5m"), 5)  # the tests say what it is
        yield url


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Json]:
    """The dashboards rendered for both jobs: file name -> JSON."""
    out = tmp_path_factory.mktemp("grafana")
    return {path.name: json.loads(path.read_text()) for path in _build("grafana/build_dashboards.py", out)}


def _by_job(prometheus: str, expr: str) -> dict[str | None, float]:
    """The value of each series of `expr`, by its job (None: a series without one)."""
    return {s["metric"].get("job"): float(s["value"][1]) for s in live_stack.instant_query(prometheus, expr)}


def _has_both(prometheus: str, expr: str) -> bool:
    return set(_by_job(prometheus, expr)) == {STAGING, PROD}


def _shown(prometheus: str, query: assets.Query, job: str) -> list[dict[str, Any]]:
    """What a dashboard query shows with its `job` variable on `job` (and every filter on All)."""
    return live_stack.instant_query(prometheus, assets.substitute(query.expr, {"job": job}))


def _query(board: Json, title: str) -> assets.Query:
    (query,) = [q for q in assets.dashboard_queries(board) if q.name.startswith(title)]
    return query


def test_every_recorded_series_is_one_installations_own(prometheus: str) -> None:
    spend = _by_job(prometheus, ":llm_cost_usd:rate5m")
    assert set(spend) == {STAGING, PROD}, f"one recorded spend series per installation: {spend}"
    # Scrapes of the two are not aligned: a scrape's worth either way around prod = 10 x staging.
    assert 5 < spend[PROD] / spend[STAGING] < 20, f"each installation's own spend, not their sum: {spend}"
    for record in (
        "provider_model_project_service:llm_cost_usd:rate5m",
        "provider:llm_cost_usd:rate5m",
        "project:llm_cost_usd:increase1h",
        ":llm_cost_usd:increase1d",
        ":llm_requests:rate5m",
        "provider_model:llm_cost_usd_per_request:ratio_rate5m",
    ):
        assert live_stack.wait_until(lambda r=record: _has_both(prometheus, r), 10), (
            f"{record}: {live_stack.instant_query(prometheus, record)}"
        )
    usage = 'budget:llm_budget_usage_ratio:max{budget="monthly"}'
    assert live_stack.wait_until(lambda: _has_both(prometheus, usage), 10), live_stack.instant_query(prometheus, usage)
    assert _by_job(prometheus, usage) == USAGE, "each installation's own budget, not the higher of the two"
    projected = 'budget:llm_budget_projected_usage:ratio{budget="monthly"}'
    assert _by_job(prometheus, projected) == pytest.approx(USAGE)
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        for rule in group["rules"]
        if rule.get("health") != "ok"
    ]
    assert not unhealthy, unhealthy


def test_stack_health_counts_only_the_chosen_installations_alerts(prometheus: str, dashboards: dict[str, Json]) -> None:
    firing = 'ALERTS{alertname="LLMCostStoreDown", alertstate="firing"}'
    assert live_stack.wait_until(lambda: set(_by_job(prometheus, firing)) == {STAGING}, 20), "staging's alert"
    board = dashboards["llmcost-stack-health.json"]
    count, table = _query(board, "Stack alerts firing"), _query(board, "Stack alerts [")
    for job, expected in ((STAGING, 1.0), (PROD, 0.0)):
        (sample,) = _shown(prometheus, count, job)
        assert float(sample["value"][1]) == expected, f"Stack health of {job} counts {sample}"
        assert {s["metric"]["job"] for s in _shown(prometheus, table, job)} <= {job}


def test_each_dashboard_shows_the_installation_its_job_variable_chooses(
    prometheus: str, dashboards: dict[str, Json]
) -> None:
    variable = next(v for v in dashboards["llmcost-overview.json"]["templating"]["list"] if v["name"] == "job")
    (listing,) = assets.variable_queries({"uid": "overview", "templating": {"list": [variable]}})
    assert {s["metric"]["job"] for s in live_stack.instant_query(prometheus, listing.expr)} == {STAGING, PROD}

    for job in (STAGING, PROD):  # every query runs on either (no vector matching error)
        for board in dashboards.values():
            for query in [*assets.dashboard_queries(board), *assets.variable_queries(board)]:
                _shown(prometheus, query, job)
    by_project = _query(dashboards["llmcost-overview.json"], "Spend rate by project")
    shown = {job: float(_shown(prometheus, by_project, job)[0]["value"][1]) for job in (STAGING, PROD)}
    assert 5 < shown[PROD] / shown[STAGING] < 20, f"each installation's own spend rate: {shown}"
