"""Spend graphs over long ranges: the area under each one is the money spent, whatever Grafana's step.

At 30 days Grafana asks Prometheus for one point an hour (at 90 days one every two hours). A graph
that reads a 5-minute rate (or a trailing hour) at each point samples 5 minutes (or an hour) of every
step and misses the spend in between: a burst of calls between two points is not on the graph at all.
Each case runs a panel's query as Grafana sends it at that range (`$__interval`, and
`$__rate_interval`: the interval plus the datasource's 30 s scrape interval), in `promtool test
rules` over the recording rules, and adds its points up as the graph shows them (each point's value
per hour times the hours between points): they must come to the spend in the series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import monitoring_assets as assets

pytestmark = pytest.mark.real_process

# What Grafana substitutes on a dashboard-wide panel at 30 and 90 days (interval rounded to 1h, 2h).
RANGES = {
    "30 days": {"__interval": "1h", "__rate_interval": "1h30s", "__range": "30d"},
    "90 days": {"__interval": "2h", "__rate_interval": "2h30s", "__range": "90d"},
}
SCRAPE_SECONDS = 30
HOURS = 13
BURSTS = [(hour * 3600 + 20 * 60, 6.0) for hour in range(1, 10, 2)]
"""(second it starts, dollars): 3-minute bursts at 20 past every other hour, between Grafana's points.
The last ends well before 12h: graphs over a trailing hour show a burst for an hour after it."""
SPENT = sum(dollars for _, dollars in BURSTS)
"""Spent in (0, 12h], the points ending at 12h."""

USAGE = 'job="llmcost",instance="llmcost:9800",provider="openai",model="gpt-4o",project="search",service="api"'
BUDGET = (
    'job="llmcost",instance="llmcost:9800",budget="search",scope="project",key="search",period="monthly",unit="usd"'
)

# (dashboard file, panel title): each graph of spend per hour.
SPEND_GRAPHS = [
    ("llmcost-overview.json", "Spend rate by project"),
    ("llmcost-overview.json", "Spend rate by provider and model"),
    ("llmcost-overview.json", "Spend rate by service"),
    ("llmcost-overview.json", "Spend in the trailing hour by provider"),
    ("llmcost-budgets.json", "Burn rate per hour"),
]


def _spend_values() -> str:
    """The counter at every scrape: flat, rising by each burst over its 3 minutes (6 scrapes)."""
    values, total = [], 0.0
    for step in range(HOURS * 3600 // SCRAPE_SECONDS + 1):
        second = step * SCRAPE_SECONDS
        for start, dollars in BURSTS:
            if start < second <= start + 180:
                total += dollars / 6
        values.append(f"{total:.6f}")
    return " ".join(values)


def _panel_expr(dashboard: str, title: str, grafana: dict[str, str]) -> str:
    panel = next(p for p in assets.panels(assets.dashboards()[dashboard]) if p.get("title") == title)
    return assets.substitute(panel["targets"][0]["expr"], grafana)


def _promtool_case(expr: str, step_hours: int) -> dict[str, Any]:
    spend = _spend_values()
    area = f"sum(sum_over_time(({expr})[12h:{step_hours}h])) * {step_hours}"
    period_end = " ".join(["1800000000"] * (HOURS * 3600 // SCRAPE_SECONDS + 1))
    return {
        "name": "the graph adds up to the spend",
        "interval": f"{SCRAPE_SECONDS}s",
        "input_series": [
            {"series": f"llm_cost_usd_total{{{USAGE}}}", "values": spend},
            {"series": f"llm_budget_spent{{{BUDGET}}}", "values": spend},
            {"series": f"llm_budget_limit{{{BUDGET}}}", "values": period_end.replace("1800000000", "1000")},
            {"series": f"llm_budget_period_end_timestamp_seconds{{{BUDGET}}}", "values": period_end},
        ],
        # Grafana's points (aligned on multiples of the step) are what a subquery of that step evaluates;
        # their sum times the step is the area under the graph. 1 when within 3 % of the spend (rate()
        # extrapolates a little).
        "promql_expr_test": [
            {
                "expr": f"abs({area} / {SPENT} - 1) < bool 0.03",
                "eval_time": "12h",
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        ],
    }


@pytest.mark.parametrize("at", sorted(RANGES))
@pytest.mark.parametrize(("dashboard", "title"), SPEND_GRAPHS, ids=[title for _, title in SPEND_GRAPHS])
def test_a_spend_graph_over_a_long_range_adds_up_to_the_spend(
    dashboard: str, title: str, at: str, tmp_path: Path
) -> None:
    grafana = RANGES[at]
    expr = _panel_expr(dashboard, title, grafana)
    test_file = tmp_path / "long-range.test.yml"
    recording = assets.RULES_DIR / "llmcost-recording.rules.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(recording)],
                "evaluation_interval": f"{SCRAPE_SECONDS}s",
                "tests": [_promtool_case(expr, int(grafana["__interval"].removesuffix("h")))],
            }
        ),
        encoding="utf-8",
    )
    result = assets.run(["promtool", "test", "rules", str(test_file)], timeout=120)
    assert result.returncode == 0, f"{title} at {at}: the points do not add up to ${SPENT}:\n{expr}\n{result.stdout}"
