"""A closed range's spend per project, read from a real Prometheus as docs/promql.md and the dashboard say.

A real `llmcost serve` is scraped every second by a real Prometheus. Calls are recorded before a range,
inside it (one by a project new in the range) and, after it closed, one late call stamped inside it. The
month query of docs/promql.md (its instants replaced by the range's) and the *Spend overview*'s "Top
projects in the time range" must give what `llmcost report` gives for the calls recorded in the range,
to the cent, and the late call must land in the next range, as the docs say.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import live_stack
from tests.support import monitoring_assets as assets
from tests.support.llmcost_server import ingest, write_config
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

INTERVAL = 1.0
BUCKET = 300
DOC_START, DOC_END = "1793516400", "1796112000"
"""The instants of the month query in docs/promql.md (November 2026 in Los Angeles)."""


class Stack:
    def __init__(self, llmcost: LlmcostProcess, prometheus: str) -> None:
        self.llmcost = llmcost
        self.prometheus = prometheus


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    llmcost = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=write_config(tmp_path))
    llmcost.start(tmp_path)
    try:
        ports = live_stack.Ports(llmcost.port, *live_stack.free_ports(2, taken=(llmcost.port,)))
        prometheus = live_stack.prometheus_server(tmp_path / "prometheus", ports, rule_files=[], interval=INTERVAL)
        prometheus.start()
        try:
            yield Stack(llmcost, ports.url("prometheus"))
        finally:
            prometheus.stop()
    finally:
        llmcost.stop()


def call(request_id: str, project: str, cost: float, ts: float) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "timestamp": ts,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 1,
        "cost_usd": cost,
        "project": project,
    }


def per_project(stack: Stack, expr: str, at: float | None = None) -> dict[str, float]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    body = httpx.get(f"{stack.prometheus}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return {s["metric"].get("project", ""): round(float(s["value"][1]), 9) for s in body["data"]["result"]}


def scraped_total(stack: Stack, expected: float) -> None:
    """Wait until Prometheus' newest scrape holds `expected` dollars in all."""

    def seen() -> bool:
        return sum(per_project(stack, "sum by (project) (llm_cost_usd_total)").values()) == expected

    wait_until(seen, timeout=30, interval=0.2, what=f"a scrape holding ${expected}")


def scrapes_after(stack: Stack, moment: float, count: int = 5) -> None:
    """Wait until Prometheus scraped llmcost `count` intervals after `moment`: a range with samples inside."""

    def later() -> bool:
        found = live_stack.instant_query(stack.prometheus, 'timestamp(up{job="llmcost"})')
        return bool(found) and float(found[0]["value"][1]) >= moment + count * INTERVAL

    wait_until(later, timeout=30, interval=0.2, what=f"{count} scrapes after {moment}")


def month_query() -> str:
    text = (assets.REPO / "docs" / "promql.md").read_text(encoding="utf-8")
    section = text[text.index("## Spend in a calendar month") :]
    return re.search(r"```promql\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


def top_projects_query(window: str) -> str:
    for query in assets.live_dashboard_queries({"__range": window}):
        if query.name.startswith("Top projects in the time range ["):
            return query.expr
    raise AssertionError("no 'Top projects in the time range' panel")


def report(stack: Stack, since: float, until: float) -> dict[str, float]:
    argv = ["report", "--since", _iso(since), "--until", _iso(until), "--by", "project", "--format", "json"]
    done = subprocess.run(
        [*LLMCOST, *argv, "--no-hints", "--db", stack.llmcost.db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {row["project"]: row["cost_usd"] for row in json.loads(done.stdout)["rows"]}


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def test_a_closed_ranges_spend_per_project_agrees_with_the_report_and_a_late_call_lands_in_the_next(
    stack: Stack,
) -> None:
    assert live_stack.wait_until(lambda: live_stack.scraped(stack.prometheus, "llmcost"), 30)
    # Before the range: calls stamped in an earlier 5-minute bucket, so the report's range (whole buckets)
    # leaves them out as Prometheus' start instant does.
    now = time.time()
    earlier = now - now % BUCKET - 1
    ingest(stack.llmcost, [call("before-search", "search", 1.0, earlier), call("before-chat", "chat", 2.0, earlier)])
    scraped_total(stack, 3.0)
    start = time.time()
    scrapes_after(stack, start)
    # In the range: more for search, and a project whose first call it is.
    ingest(stack.llmcost, [call("in-search", "search", 4.0, time.time()), call("in-new", "new", 8.0, time.time())])
    scraped_total(stack, 15.0)
    scrapes_after(stack, time.time())
    end = time.time()
    window = f"{math.ceil(end - start)}s"

    promql = per_project(stack, month_query().replace(DOC_START, f"{start:.3f}").replace(DOC_END, f"{end:.3f}"))
    assert promql == {"search": 4.0, "new": 8.0, "chat": 0.0}
    # The dashboard's panel, evaluated at the range's end over the range, as Grafana asks it. With
    # increase() it read search's $4 as $4.67 (extrapolated to the range's edges) and the new project as $0.
    top = per_project(stack, top_projects_query(window), at=start + math.ceil(end - start))
    assert {k: v for k, v in top.items() if v} == {"search": 4.0, "new": 8.0}

    # The report over the range's whole 5-minute buckets agrees. Then a late call, stamped in the range
    # and recorded after it closed: the report counts it in the range, Prometheus after.
    since, until = start - start % BUCKET, end - end % BUCKET + BUCKET
    assert report(stack, since, until) == {"search": 4.0, "new": 8.0}
    ingest(stack.llmcost, [call("late-search", "search", 16.0, (start + end) / 2)])
    scraped_total(stack, 31.0)
    assert report(stack, since, until) == {"search": 20.0, "new": 8.0}
    closed = per_project(stack, month_query().replace(DOC_START, f"{start:.3f}").replace(DOC_END, f"{end:.3f}"))
    assert closed == promql
    after = per_project(stack, month_query().replace(DOC_START, f"{end:.3f}").replace(DOC_END, f"{time.time():.3f}"))
    assert after["search"] == 16.0
