"""The overview's spend figures through a label promotion, evaluated by `promtool test rules`.

Past `metrics.max_series_per_label` the lowest-cost values of a label are summed under `__other__`;
when one climbs into the kept values it gets its own series and `__other__` drops by its total, which
`rate()` and `increase()` read as a counter reset: the figures that summed them per series showed
what `__other__` still held as money just spent. Every scrape's total is exact, so the stats read the
difference of the totals. Here (as Prometheus stores llmcost's series): project `a` spends 1 USD a
minute, `c` and `e` (folded) 0.5 between them, and `d` 2, folded until minute 30 and on its own from
minute 31, when `__other__` drops from 120 to 50.5. 3.5 USD a minute all along, 210 an hour.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import monitoring_assets as assets

pytestmark = pytest.mark.real_process

TARGET = 'job="llmcost",instance="llmcost:9800",provider="openai",model="gpt-4o",service="api"'
SERIES = [
    (f'llm_cost_usd_total{{{TARGET},project="a"}}', "100+1x90"),
    # c + e: 35 + 0.5 t, and d: 10 + 2 t while folded.
    (f'llm_cost_usd_total{{{TARGET},project="__other__"}}', "45+2.5x30 50.5+0.5x59"),
    (f'llm_cost_usd_total{{{TARGET},project="d"}}', "_x31 72+2x59"),
    ('llm_store_up{job="llmcost",instance="llmcost:9800"}', "1x90"),
]
# (panel, $__range, evaluated at, USD spent in the range the panel shows)
CASES = [
    ("Spend today", "50m", "60m", 175.0),
    ("Spend in the last hour", "1h", "60m", 210.0),
    ("Spend rate (per hour)", "1h", "35m", 210.0),
]


def _panel_expr(title: str, range_: str) -> str:
    dashboard = assets.dashboards()["llmcost-overview.json"]
    panel = next(p for p in assets.panels(dashboard) if p.get("title") == title)
    return assets.substitute(panel["targets"][0]["expr"], {"__range": range_})


@pytest.mark.parametrize(("title", "range_", "at", "spent"), CASES, ids=[case[0] for case in CASES])
def test_a_promotion_out_of_other_is_no_spend_on_the_overview(
    title: str, range_: str, at: str, spent: float, tmp_path: Path
) -> None:
    expr = _panel_expr(title, range_)
    case = {
        "name": f"{title.lower()} is what was spent across a promotion",
        "interval": "1m",
        "input_series": [{"series": series, "values": values} for series, values in SERIES],
        "promql_expr_test": [
            {
                "expr": f"abs(({expr}) - {spent}) < bool 0.01",
                "eval_time": at,
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        ],
    }
    test_file = tmp_path / "totals.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(assets.RULES_DIR / "llmcost-recording.rules.yml")],
                "evaluation_interval": "1m",
                "tests": [case],
            }
        ),
        encoding="utf-8",
    )
    result = assets.run(["promtool", "test", "rules", str(test_file)], timeout=120)
    assert result.returncode == 0, f"{title} does not show {spent} USD:\n{expr}\n{result.stdout}"
