"""'Spend today' through a label promotion: a real Prometheus scraping a real `llmcost serve`.

Past `metrics.max_series_per_label` the lowest-cost values of a label are summed under `__other__`.
When a folded value climbs into the kept ones it gets its own series and `__other__` drops by what
that value held: Prometheus reads the drop as a counter reset, and `increase()` counts all that
`__other__` still holds as new spend. The dashboard's 'Spend today' summed `increase()` per series,
so a promotion showed spend that never happened (in runs of this test, the 200 USD spent read as
258 USD, or as 128 USD when the extrapolation of a short range fell the other way). Every
scrape's total is exact (the folding only moves money between series), so the total now less the
total at the start of the range is the spend, whatever was promoted in between, to the cent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import live_stack, llmcost_server
from tests.support import monitoring_assets as assets
from tests.support.llmcost_server import write_config
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

INTERVAL = 1.0
"""Prometheus' scrape and evaluation interval."""
REFRESH = 0.5
"""metrics.rank_refresh_seconds: a promotion shows within 2-3 epochs."""


@dataclass
class Stack:
    llmcost: LlmcostProcess
    prometheus: str


@pytest.fixture
def stack(tmp_path: Any) -> Iterator[Stack]:
    # Three series a label: the two highest-cost projects are kept, the rest are `__other__`.
    config = write_config(tmp_path, metrics={"max_series_per_label": 3, "rank_refresh_seconds": REFRESH})
    with ExitStack() as cleanup:
        llmcost = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config)
        cleanup.callback(llmcost.stop)
        llmcost.start(tmp_path)
        ports = live_stack.Ports(llmcost.port, *live_stack.free_ports(2, taken=(llmcost.port,)))
        rules = live_stack.fast_rule_files(tmp_path / "rules", {})
        prometheus = live_stack.prometheus_server(tmp_path / "prometheus", ports, rule_files=rules, interval=INTERVAL)
        cleanup.callback(prometheus.stop)
        prometheus.start()
        yield Stack(llmcost, ports.url("prometheus"))


def ingest(stack: Stack, spends: list[tuple[str, float, str]]) -> None:
    """One call per (project, cost, request id), posted in one request."""
    events = [
        {
            "request_id": rid,
            "timestamp": time.time(),
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1,
            "output_tokens": 1,
            "project": project,
            "cost_usd": usd,
        }
        for project, usd, rid in spends
    ]
    llmcost_server.ingest(stack.llmcost, events)


def query(stack: Stack, expr: str, at: float) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr, "time": at}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scraped_projects(stack: Stack) -> set[str]:
    """The projects of llm_cost_usd_total in Prometheus' latest scrape."""
    return {s["metric"]["project"] for s in query(stack, 'llm_cost_usd_total{job="llmcost"}', time.time())}


def scraped_after(stack: Stack, moment: float) -> bool:
    """Whether Prometheus holds a scrape of llmcost's store taken after `moment`."""
    found = query(stack, 'timestamp(llm_store_up{job="llmcost"} == 1)', time.time())
    return bool(found) and float(found[0]["value"][1]) > moment


def panel_query(title: str, range_seconds: int) -> str:
    for query_ in assets.live_dashboard_queries({"__range": f"{range_seconds}s"}):
        if query_.source == "llmcost-overview" and query_.name.startswith(f"{title} ["):
            return query_.expr
    raise AssertionError(f"no panel {title!r} on the overview")


def test_spend_today_is_the_spend_when_a_folded_project_is_promoted(stack: Stack) -> None:
    assert live_stack.wait_until(lambda: live_stack.scraped(stack.prometheus, "llmcost"), 30)
    ingest(stack, [(p, usd, f"seed-{p}") for p, usd in (("a", 100), ("b", 50), ("c", 30), ("d", 10), ("e", 5))])
    wait_until(lambda: scraped_projects(stack) == {"a", "b", "__other__"}, timeout=30, what="a, b and __other__")
    # The range starts here: the seeds are in every scrape from now on.
    start = math.ceil(time.time())
    wait_until(lambda: scraped_after(stack, start), timeout=10, what="a scrape inside the range")
    # `d` climbs above `a`: it is promoted and `b` folded, so `__other__` drops from 245 to 85.
    ingest(stack, [("d", 200, "climb")])
    wait_until(lambda: scraped_projects(stack) == {"a", "d", "__other__"}, timeout=30, what="d promoted")
    end = math.ceil(time.time())
    wait_until(lambda: scraped_after(stack, end), timeout=10, what="a scrape after the range")

    expr = panel_query("Spend today", end - start)
    shown = query(stack, expr, end)
    assert shown, f"'Spend today' shows No data:\n{expr}"
    # The one call made in the range: 200 USD, to the cent.
    assert float(shown[0]["value"][1]) == pytest.approx(200, abs=0.005), expr
