"""`llmcost reprice` as the dashboards show it: a real Prometheus scraping a real `llmcost serve`.

Calls to a model priced by an override are recorded, Prometheus scrapes them, then the override's price
is lowered and `llmcost reprice` runs in its own process. What a user then reads on the shipped
dashboards (their queries, evaluated by Prometheus over the shipped recording rules) must agree with
llmcost's own corrected figures, and a budget's burn rate must not read the correction as spending.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import live_stack
from tests.support import monitoring_assets as assets
from tests.support.llmcost_server import ADMIN_TOKEN, ingest, write_config
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

# Budgets of UTC periods (all end at midnight UTC): spend, alerts and figures of one period per test.
pytestmark = [pytest.mark.real_process, pytest.mark.within_period("daily")]

INTERVAL = 1.0
MODEL = {"provider": "self-hosted", "model": "llama-internal", "project": "search", "service": "api"}
BUDGET = "all-monthly"
CALLS = 20
"""Each call: one million input tokens, 2 USD at the first price and 0.5 USD at the second."""
STEP = 15
"""The burn rate's grid (`[1h:15s]` in the shipped rule): Prometheus steps a subquery at multiples of 15 s."""


@dataclass
class Stack:
    llmcost: LlmcostProcess
    prometheus: str
    prices: Path
    config: Path


def write_prices(path: Path, input_per_mtok: float) -> None:
    entry = {**{k: MODEL[k] for k in ("provider", "model")}, "input_per_mtok": input_per_mtok, "output_per_mtok": 0}
    path.write_text(yaml.safe_dump({"prices": [entry]}), encoding="utf-8")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prices = tmp_path / "prices.yaml"
    write_prices(prices, 2.0)
    config = write_config(
        tmp_path,
        pricing={"overrides_file": str(prices)},
        budgets=[{"name": BUDGET, "scope": "global", "period": "monthly", "limit": 1000, "unit": "usd"}],
    )
    with ExitStack() as cleanup:
        llmcost = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config)
        cleanup.callback(llmcost.stop)
        llmcost.start(tmp_path)
        ports = live_stack.Ports(llmcost.port, *live_stack.free_ports(2, taken=(llmcost.port,)))
        rules = live_stack.fast_rule_files(tmp_path / "rules", {})
        prometheus = live_stack.prometheus_server(tmp_path / "prometheus", ports, rule_files=rules, interval=INTERVAL)
        cleanup.callback(prometheus.stop)
        prometheus.start()
        yield Stack(llmcost, ports.url("prometheus"), prices, config)


def value(stack: Stack, expr: str) -> float | None:
    """The one value of an instant query now, or None while it has no data."""
    result = live_stack.instant_query(stack.prometheus, expr)
    assert len(result) <= 1, (expr, result)
    return float(result[0]["value"][1]) if result else None


def scraped_value(stack: Stack, expr: str, expected: float) -> None:
    wait_until(lambda: value(stack, expr) == expected, timeout=30, interval=0.5, what=f"{expr} == {expected}")


def panel_query(dashboard: str, title: str) -> str:
    """A shipped panel's first query, its Grafana variables as a live Prometheus gets them."""
    # $__rate_interval as Grafana sets it at a short range: four scrape intervals (this stack's are 1 s).
    for query in assets.live_dashboard_queries({"__range": "1h", "__rate_interval": f"{4 * INTERVAL:g}s"}):
        if query.source == dashboard and query.name.startswith(f"{title} ["):
            return query.expr
    raise AssertionError(f"no panel {title!r} on {dashboard}")


def next_step(after: float) -> float:
    """The first point of the burn rate's grid later than `after` (a wall-clock time)."""
    return (after // STEP + 1) * STEP


def evaluated_at(stack: Stack, expr: str) -> float:
    """When Prometheus last evaluated the recorded series behind `expr` (0 while it has none)."""
    return value(stack, f"timestamp({expr})") or 0


def corrected_total(stack: Stack) -> float:
    """llmcost's own figure: /v1/usage/summary over the last day (what `llmcost report` reads)."""
    response = httpx.get(
        f"{stack.llmcost.base}/v1/usage/summary",
        params={"by": "project"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()
    return float(response.json()["total_cost_usd"])


def reprice(stack: Stack, input_per_mtok: float) -> None:
    write_prices(stack.prices, input_per_mtok)
    done = subprocess.run(
        [*LLMCOST, "reprice", "--config", str(stack.config), "--db", stack.llmcost.db_url, "--since", "1d"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_downward_reprice_shows_corrected_spend_and_no_burst_of_burning(stack: Stack) -> None:
    assert live_stack.wait_until(lambda: live_stack.scraped(stack.prometheus, "llmcost"), 30)
    now = time.time()
    # A call with a supplied cost of 0 first, so that Prometheus has the series at 0 before the spend
    # (increase() and the burn rate count from a series' first sample).
    ingest(stack.llmcost, [{**MODEL, "request_id": "zero", "timestamp": now, "input_tokens": 1, "cost_usd": 0}])
    scraped_value(stack, 'sum(llm_cost_usd_total{job="llmcost"})', 0)
    scraped_value(stack, 'max(llm_budget_spent{job="llmcost"})', 0)
    # A step of the burn rate's grid must see the budget at 0 too: its first sample is older than
    # now, so a spend scraped after the next grid point is first seen at a step whose step before
    # (15 s earlier) had that 0. Passing time is the subject: the grid is Prometheus's wall clock.
    time.sleep(next_step(time.time()) - time.time() + 0.1)
    ingest(
        stack.llmcost,
        [{**MODEL, "request_id": f"call-{i}", "timestamp": now, "input_tokens": 1_000_000} for i in range(CALLS)],
    )
    scraped_value(stack, 'sum(llm_cost_usd_total{job="llmcost"})', 40)
    scraped_value(stack, 'max(llm_budget_spent{job="llmcost"})', 40)

    spend_today = panel_query("llmcost-overview", "Spend today")
    burn = panel_query("llmcost-budgets", "Burn rate per hour")
    wait_until(lambda: (value(stack, burn) or 0) > 0, timeout=45, interval=0.5, what=f"{burn} above 0")
    # The panel averages the recorded rate over $__rate_interval (4 evaluations here): its first value
    # above 0 still averages in the evaluations from before the spend (a quarter of the rate, under
    # load: the full run once read 1,200 then 4,400). Read it once its window holds only later ones.
    first_seen = evaluated_at(stack, "budget:llm_budget_spent:rate1h")
    wait_until(
        lambda: evaluated_at(stack, "budget:llm_budget_spent:rate1h") >= first_seen + 4 * INTERVAL + 1,
        timeout=45,
        interval=0.5,
        what="the panel's window past the burn rate's first evaluation above 0",
    )
    burn_before = value(stack, burn)
    assert burn_before is not None

    reprice(stack, 0.5)
    assert corrected_total(stack) == pytest.approx(10.0)
    scraped_value(stack, 'sum(llm_cost_adjustment_usd_total{job="llmcost", direction="down"})', 30)
    scraped_value(stack, 'max(llm_budget_spent{job="llmcost"})', 10)
    # The corrected sample is older than now, so the next grid point is a step that sees the drop
    # (from 40 to 10); wait until the recording rule has been evaluated at or after it.
    corrected_step = next_step(time.time())
    wait_until(
        lambda: evaluated_at(stack, "budget:llm_budget_spent:rate1h") >= corrected_step,
        timeout=45,
        interval=0.5,
        what=f"the burn rate evaluated at or after the step at {corrected_step}",
    )

    # Nothing was spent since: the burn rate has not risen (rate() read the drop as a counter reset
    # and counted the 10 USD left in the budget as new spending).
    burn_after = value(stack, burn)
    assert burn_after is not None and burn_after <= burn_before, (burn_before, burn_after)
    # The dashboard's spend is the corrected spend (within increase()'s extrapolation), not 40 USD.
    shown = value(stack, spend_today)
    assert shown == pytest.approx(corrected_total(stack), rel=0.1), spend_today
