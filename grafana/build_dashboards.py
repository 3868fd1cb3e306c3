"""Generate the llmcost Grafana dashboards in grafana/dashboards/ deterministically.

    python grafana/build_dashboards.py          # rewrite the JSON files
    python grafana/build_dashboards.py --check  # exit 1 if a committed file differs from the output
    python grafana/build_dashboards.py --selector 'job="llm-cost"' --out DIR   # for your Prometheus

Every query selects llmcost's own series with the mixin-style `--selector` (default `job="llmcost"`,
the same as prometheus/build_rules.py): it is put into every selector of an exporter metric, so
another exporter publishing `llm_cost_usd_total` is never summed in. Every dashboard shows llmcost's
alerts as annotations: the Prometheus rules' (`ALERTS{alertname=~"LLM.*"}`) and the scheduler's own
(`llm_alerts_active`).

Dashboards are plain data built by small functions; the JSON is written with sorted keys and a fixed
indent so diffs show only what changed. Edit this file, never the JSON (provisioning forbids saving
from the UI anyway), and commit both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "prometheus"))
from build_rules import DEFAULT_SELECTOR, add_selector, check_selector

Json = dict[str, Any]
SELECTOR = DEFAULT_SELECTOR
"""The selector of llmcost's series (`--selector`); the committed JSON uses the default."""


def select(expr: str) -> str:
    """`expr` with the selector in every exporter-metric selector (and in place of the default one)."""
    return add_selector(expr, SELECTOR).replace(DEFAULT_SELECTOR, SELECTOR)


OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "llmcost-prometheus"
DS: Json = {"type": "prometheus", "uid": "${datasource}"}
TAG = "llmcost"
SCHEMA_VERSION = 39

# Label filters shared by the queries of one dashboard.
USAGE = 'provider=~"$provider", model=~"$model", project=~"$project", service=~"$service"'
BUDGET = 'budget=~"$budget", scope=~"$scope", period=~"$period"'
SPIKE = 'group=~"$group", provider=~"$provider", model=~"$model", project=~"$project", service=~"$service"'
TARGET = 'job="llmcost", instance=~"$instance"'

BUDGET_STEPS = [
    {"color": "green", "value": None},
    {"color": "blue", "value": 0.5},
    {"color": "orange", "value": 0.8},
    {"color": "red", "value": 0.95},
    {"color": "dark-red", "value": 1},
]


# --- targets and panels --------------------------------------------------------------------------


def _target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": select(expr),
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": "",  # numbered by _panel
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[Json],
    *,
    defaults: Json | None = None,
    options: Json | None = None,
    overrides: Sequence[Json] = (),
    extra: Json | None = None,
) -> Json:
    numbered = [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]
    panel: Json = {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": list(overrides)},
        "options": options or {},
        "targets": numbered,
        "title": title,
        "type": kind,
    }
    panel.update(extra or {})
    return panel


def _thresholds(steps: Sequence[Json] | None = None) -> Json:
    return {"mode": "absolute", "steps": list(steps or [{"color": "green", "value": None}])}


def _reduce() -> Json:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    legend: str = "",
    decimals: int | None = None,
    steps: Sequence[Json] | None = None,
    mappings: Sequence[Json] = (),
    no_value: str | None = None,
    text_mode: str = "auto",
    time_from: str | None = None,
) -> Json:
    """A single-number panel from an instant query."""
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
        "thresholds": _thresholds(steps),
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    options = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": _reduce(),
        "textMode": text_mode,
    }
    extra = {"timeFrom": time_from} if time_from else None
    return _panel(
        "stat",
        title,
        description,
        unit,
        [_target(expr, legend, instant=True)],
        defaults=defaults,
        options=options,
        extra=extra,
    )


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[tuple[str, str]],
    *,
    stack: bool = False,
    threshold: float | None = None,
    overrides: Sequence[Json] = (),
    minimum: float | None = 0,
) -> Json:
    """A graph of one or more (expression, legend) range queries."""
    custom: Json = {
        "drawStyle": "line",
        "fillOpacity": 20 if stack else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "line" if threshold is not None else "off"},
    }
    steps: list[Json] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    defaults: Json = {"color": {"mode": "palette-classic"}, "custom": custom, "thresholds": _thresholds(steps)}
    if minimum is not None:
        defaults["min"] = minimum
    options = {
        "legend": {
            "calcs": ["mean", "lastNotNull"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
            "sortBy": "Last *",
            "sortDesc": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries",
        title,
        description,
        unit,
        [_target(expr, legend) for expr, legend in targets],
        defaults=defaults,
        options=options,
        overrides=overrides,
    )


def bargauge(
    title: str,
    description: str,
    unit: str,
    expr: str,
    legend: str,
    *,
    steps: Sequence[Json] | None = None,
    maximum: float | None = None,
) -> Json:
    """Horizontal bars, one per series of an instant query (top-N lists, budget usage)."""
    defaults: Json = {"color": {"mode": "thresholds"}, "min": 0, "thresholds": _thresholds(steps)}
    if maximum is not None:
        defaults["max"] = maximum
    options = {
        "displayMode": "gradient",
        "minVizHeight": 16,
        "orientation": "horizontal",
        "reduceOptions": _reduce(),
        "showUnfilled": True,
        "valueMode": "color",
    }
    return _panel(
        "bargauge",
        title,
        description,
        unit,
        [_target(expr, legend, instant=True)],
        defaults=defaults,
        options=options,
    )


def table(
    title: str,
    description: str,
    unit: str,
    columns: Sequence[tuple[str, str, str]],
    *,
    hide: Sequence[str] = ("Time",),
) -> Json:
    """Instant queries merged into one table: columns are (expression, header, unit)."""
    targets = [_target(expr, instant=True, table=True) for expr, _, _ in columns]
    names = {f"Value #{chr(ord('A') + i)}": header for i, (_, header, _) in enumerate(columns)}
    if len(columns) == 1:
        names = {"Value": columns[0][1]}
    overrides = [
        {"matcher": {"id": "byName", "options": header}, "properties": [{"id": "unit", "value": col_unit}]}
        for _, header, col_unit in columns
        if col_unit != unit
    ]
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": dict.fromkeys(hide, True), "renameByName": names},
        },
    ]
    options = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
    return _panel(
        "table",
        title,
        description,
        unit,
        targets,
        defaults={"custom": {"align": "auto", "filterable": True}, "thresholds": _thresholds()},
        options=options,
        overrides=overrides,
        extra={"transformations": transformations},
    )


def row(title: str) -> Json:
    """A section header (rows hold no queries, so they carry no datasource, description or unit)."""
    return {"collapsed": False, "panels": [], "title": title, "type": "row"}


def _layout(rows: Iterable[Sequence[tuple[Json, int, int]]]) -> list[Json]:
    """Place (panel, width, height) rows on Grafana's 24-column grid, top to bottom, and number them."""
    panels: list[Json] = []
    y = 0
    for line in rows:
        x, height = 0, 0
        for panel, width, h in line:
            if x + width > 24:
                raise ValueError(f"row overflows 24 columns at {panel['title']!r}")
            panels.append(dict(panel, gridPos={"h": h, "w": width, "x": x, "y": y}, id=len(panels) + 1))
            x, height = x + width, max(height, h)
        y += height
    return panels


def _section(title: str) -> list[tuple[Json, int, int]]:
    return [(row(title), 24, 1)]


# --- variables and dashboards --------------------------------------------------------------------


def datasource_variable() -> Json:
    """The ${datasource} variable every panel and query uses; defaults to the provisioned source."""
    return {
        "current": {"selected": False, "text": "Prometheus (llmcost)", "value": DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str) -> Json:
    """A multi-select label filter; "All" is `.*`, so it also matches empty values (no attribution)."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DS,
        "definition": select(query),
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": select(query),
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def usage_variables(metric: str) -> list[Json]:
    """Provider, model, project and service filters, each narrowed by the ones before it."""
    return [
        query_variable("provider", "Provider", f"label_values({metric}, provider)"),
        query_variable("model", "Model", f'label_values({metric}{{provider=~"$provider"}}, model)'),
        query_variable(
            "project", "Project", f'label_values({metric}{{provider=~"$provider", model=~"$model"}}, project)'
        ),
        query_variable(
            "service",
            "Service",
            f'label_values({metric}{{provider=~"$provider", model=~"$model", project=~"$project"}}, service)',
        ),
    ]


def alert_annotations() -> list[Json]:
    """The alerts on every time axis: those of the Prometheus rules, and those llmcost raises itself."""

    def annotation(name: str, expr: str, color: str, title: str) -> Json:
        return {
            "datasource": DS,
            "enable": True,
            "expr": expr,
            "hide": False,
            "iconColor": color,
            "name": name,
            "step": "1m",
            "tagKeys": "alertname,severity",
            "textFormat": "",
            "titleFormat": title,
            "useValueForTime": False,
        }

    return [
        annotation(
            "Prometheus alerts",
            select('ALERTS{alertname=~"LLM.*", alertstate="firing", job="llmcost"}'),
            "red",
            "{{alertname}}",
        ),
        annotation(
            "llmcost alerts",
            select('sum by (alertname, severity) (llm_alerts_active{state="firing"}) > 0'),
            "orange",
            "{{alertname}} ({{severity}})",
        ),
    ]


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Json],
    rows: Iterable[Sequence[tuple[Json, int, int]]],
    *,
    time_from: str = "now-24h",
) -> Json:
    """A complete dashboard with the shared tag, links, refresh and time settings."""
    return {
        "annotations": {"list": alert_annotations()},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "LLM cost dashboards",
                "tooltip": "",
                "type": "dashboards",
                "url": "",
            }
        ],
        "liveNow": False,
        "panels": _layout(rows),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        # Budget periods are calendar-aligned in UTC unless configured otherwise; "today" here agrees.
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "monday",
    }


# --- the dashboards ------------------------------------------------------------------------------


def overview() -> Json:
    """Spend overview: how much, where, how fast, and how efficiently."""
    f = USAGE
    fine_cost_rate = f"provider_model_project_service:llm_cost_usd:rate5m{{{f}}}"
    fine_tokens = "provider_model_project_service_token_type:llm_tokens:rate5m"
    cache_hit_by_model = (
        "(\n"
        f'    sum by (provider, model) ({fine_tokens}{{{f}, token_type="cache_read"}})\n'
        "  or\n"
        f'    0 * sum by (provider, model) ({fine_tokens}{{{f}, token_type="input"}})\n'
        ")\n/\n"
        f'(sum by (provider, model) ({fine_tokens}{{{f}, token_type=~"input|cache_read"}}) > 0)'
    )
    return dashboard(
        "llmcost-overview",
        "LLM cost / Spend overview",
        "What LLM calls cost: today, this month, by provider, model, project and service.",
        usage_variables("llm_cost_usd_total"),
        [
            _section("Spend"),
            [
                (
                    stat(
                        "Spend today",
                        "Spend since midnight UTC for the selected filters "
                        "(increase of llm_cost_usd_total over the day so far).",
                        "currencyUSD",
                        f"sum(increase(llm_cost_usd_total{{{f}}}[$__range]))",
                        decimals=2,
                        time_from="now/d",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend this month",
                        "Spend since the first of the month (UTC), within five minutes: the 5-minute spend "
                        "rate recording rule sampled every 5 minutes, which stays cheap over a month of samples.",
                        "currencyUSD",
                        f"sum(sum_over_time(provider_model_project_service:llm_cost_usd:rate5m{{{f}}}"
                        "[$__range:5m])) * 300",
                        decimals=2,
                        time_from="now/M",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend in the last hour",
                        "Spend over the trailing 60 minutes.",
                        "currencyUSD",
                        f"sum(provider_model_project_service:llm_cost_usd:increase1h{{{f}}})",
                        decimals=2,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend rate (per hour)",
                        "Current spend rate over the last 5 minutes, in dollars per hour.",
                        "currencyUSD",
                        f"sum({fine_cost_rate}) * 3600",
                        decimals=2,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Cost per request",
                        "Average cost of one call in the selected time range (failed calls count: "
                        "they are billed too).",
                        "currencyUSD",
                        f"sum(increase(llm_cost_usd_total{{{f}}}[$__range]))\n/\n"
                        f"sum(increase(llm_requests_total{{{f}}}[$__range]))",
                        decimals=4,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Cache-hit share",
                        "Share of input tokens served from the prompt cache in the selected time "
                        "range: cache_read / (input + cache_read).",
                        "percentunit",
                        f'sum(increase(llm_tokens_total{{{f}, token_type="cache_read"}}[$__range]))\n/\n'
                        f'sum(increase(llm_tokens_total{{{f}, token_type=~"input|cache_read"}}[$__range]))',
                        decimals=1,
                    ),
                    4,
                    4,
                ),
            ],
            _section("Spend over time"),
            [
                (
                    timeseries(
                        "Spend rate by project",
                        "Dollars per hour, from the 5-minute spend rate. An empty project means the "
                        "calls carried no project attribution.",
                        "currencyUSD",
                        [(f"sum by (project) ({fine_cost_rate}) * 3600", "{{project}}")],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Spend rate by provider and model",
                        "Dollars per hour, from the 5-minute spend rate.",
                        "currencyUSD",
                        [(f"sum by (provider, model) ({fine_cost_rate}) * 3600", "{{provider}} / {{model}}")],
                        stack=True,
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Spend rate by service",
                        "Dollars per hour, from the 5-minute spend rate.",
                        "currencyUSD",
                        [(f"sum by (service) ({fine_cost_rate}) * 3600", "{{service}}")],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Spend in the trailing hour by provider",
                        "Dollars spent in the 60 minutes before each point: smoother than the rate.",
                        "currencyUSD",
                        [
                            (
                                f"sum by (provider) (provider_model_project_service:llm_cost_usd:increase1h{{{f}}})",
                                "{{provider}}",
                            )
                        ],
                        stack=True,
                    ),
                    12,
                    8,
                ),
            ],
            _section("Top spenders"),
            [
                (
                    bargauge(
                        "Top projects in the time range",
                        "The ten projects that spent most in the selected time range.",
                        "currencyUSD",
                        f"topk(10, sum by (project) (increase(llm_cost_usd_total{{{f}}}[$__range])))",
                        "{{project}}",
                    ),
                    8,
                    9,
                ),
                (
                    bargauge(
                        "Top models in the time range",
                        "The ten provider/model pairs that cost most in the selected time range.",
                        "currencyUSD",
                        f"topk(10, sum by (provider, model) (increase(llm_cost_usd_total{{{f}}}[$__range])))",
                        "{{provider}} / {{model}}",
                    ),
                    8,
                    9,
                ),
                (
                    bargauge(
                        "Top services in the last 24 hours",
                        "The ten services that spent most in the trailing 24 hours (daily recording "
                        "rule, refreshed every 5 minutes).",
                        "currencyUSD",
                        f"topk(10, sum by (service) (provider_model_project_service:llm_cost_usd:increase1d{{{f}}}))",
                        "{{service}}",
                    ),
                    8,
                    9,
                ),
            ],
            _section("Efficiency"),
            [
                (
                    timeseries(
                        "Cost per request by model",
                        "Average dollars per call over 5-minute windows; no point while a model gets no calls.",
                        "currencyUSD",
                        [
                            (
                                f"sum by (provider, model) ({fine_cost_rate})\n/\n"
                                "(sum by (provider, model) "
                                f"(provider_model_project_service:llm_requests:rate5m{{{f}}}) > 0)",
                                "{{provider}} / {{model}}",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Cache-hit share by model",
                        "Share of input tokens read from the prompt cache: cache_read / (input + "
                        "cache_read). 0 for a model that never reports cache reads.",
                        "percentunit",
                        [(cache_hit_by_model, "{{provider}} / {{model}}")],
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Cache savings: input tokens read from cache",
                        "Input tokens per second served from the prompt cache, which providers bill "
                        "at a fraction of the input price. Dollar savings need per-model prices, "
                        "which llmcost does not export as metrics.",
                        "short",
                        [
                            (
                                f'sum by (provider, model) ({fine_tokens}{{{f}, token_type="cache_read"}})',
                                "{{provider}} / {{model}}",
                            )
                        ],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Tokens per second by type",
                        "Token throughput by type; input is uncached input only, output includes "
                        "reasoning tokens (shown separately as well).",
                        "short",
                        [
                            (f"sum by (token_type) ({fine_tokens}{{{f}}})", "{{token_type}}"),
                            (
                                f"sum(provider_model_project_service:llm_reasoning_tokens:rate5m{{{f}}})",
                                "reasoning (part of output)",
                            ),
                        ],
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Requests per second by status",
                        "Recorded LLM calls per second, successful and failed.",
                        "reqps",
                        [
                            (
                                f"sum by (status) (provider_model_project_service_status:llm_requests:rate5m{{{f}}})",
                                "{{status}}",
                            )
                        ],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Unpriced calls in the time range",
                        "Calls stored with cost 0 because their model has no known price and the "
                        "event carried no cost_usd: spend above is understated by these.",
                        "short",
                        [
                            (
                                "sum by (provider, model) (increase(llm_unpriced_requests_total"
                                '{provider=~"$provider", model=~"$model"}[$__range])) > 0',
                                "Unpriced calls",
                                "short",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
            ],
        ],
        time_from="now-24h",
    )


def budgets() -> Json:
    """Budgets: how much of each is used, where it is heading, and when it runs out."""
    b = BUDGET
    gauge = "max without (instance, job)"
    return dashboard(
        "llmcost-budgets",
        "LLM cost / Budgets",
        "Budget usage, projected spend at period end and time until each limit is reached.",
        [
            query_variable("scope", "Scope", "label_values(llm_budget_limit, scope)"),
            query_variable("period", "Period", 'label_values(llm_budget_limit{scope=~"$scope"}, period)'),
            query_variable(
                "budget", "Budget", 'label_values(llm_budget_limit{scope=~"$scope", period=~"$period"}, budget)'
            ),
        ],
        [
            _section("Now"),
            [
                (
                    stat(
                        "Budgets over their limit",
                        "Budgets whose spend has reached the limit in the current period.",
                        "none",
                        f"count(budget:llm_budget_usage_ratio:max{{{b}}} >= 1) or vector(0)",
                        steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Budgets projected to overrun",
                        "Budgets whose projected spend at period end is above the limit.",
                        "none",
                        f"count(budget:llm_budget_projected_usage:ratio{{{b}}} > 1) or vector(0)",
                        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Highest usage",
                        "The largest spent / limit among the selected budgets.",
                        "percentunit",
                        f"max(budget:llm_budget_usage_ratio:max{{{b}}})",
                        decimals=1,
                        steps=BUDGET_STEPS,
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Soonest exhaustion",
                        "Shortest time until a selected budget reaches its limit at the last hour's "
                        "burn rate (may lie beyond the end of its period).",
                        "s",
                        f"min(budget:llm_budget_time_to_exhaustion_seconds:rate1h{{{b}}})",
                        no_value="not burning",
                    ),
                    6,
                    4,
                ),
            ],
            [
                (
                    bargauge(
                        "Usage by budget",
                        "Spent / limit in the current period; colours follow the default alert "
                        "thresholds (info 50%, warning 80%, critical 95%, exceeded 100%).",
                        "percentunit",
                        f"sort_desc(budget:llm_budget_usage_ratio:max{{{b}}})",
                        "{{budget}} ({{scope}} {{key}})",
                        steps=BUDGET_STEPS,
                        maximum=1,
                    ),
                    12,
                    9,
                ),
                (
                    bargauge(
                        "Projected usage at period end",
                        "Projected spend at period end / limit: above 100% the budget is on course "
                        "to overrun (LLMBudgetForecastOverrun).",
                        "percentunit",
                        f"sort_desc(budget:llm_budget_projected_usage:ratio{{{b}}})",
                        "{{budget}} ({{scope}} {{key}})",
                        steps=BUDGET_STEPS,
                        maximum=1.5,
                    ),
                    12,
                    9,
                ),
            ],
            [
                (
                    table(
                        "Budget status",
                        "Every selected budget now. Limit, spent, projected and burn are in the "
                        "budget's own unit (usd, tokens or requests: see the unit column).",
                        "short",
                        [
                            (f"{gauge} (llm_budget_limit{{{b}}})", "Limit", "short"),
                            (f"{gauge} (llm_budget_spent{{{b}}})", "Spent", "short"),
                            (f"{gauge} (llm_budget_projected{{{b}}})", "Projected", "short"),
                            (f"budget:llm_budget_usage_ratio:max{{{b}}}", "Usage", "percentunit"),
                            (f"budget:llm_budget_projected_usage:ratio{{{b}}}", "Projected usage", "percentunit"),
                            (f"budget:llm_budget_spent:rate1h{{{b}}} * 3600", "Burn per hour", "short"),
                            (
                                f"budget:llm_budget_time_to_exhaustion_seconds:rate1h{{{b}}}",
                                "Time to exhaustion",
                                "s",
                            ),
                            (
                                f"{gauge} (llm_budget_period_end_timestamp_seconds{{{b}}}) - time()",
                                "Period ends in",
                                "s",
                            ),
                        ],
                    ),
                    24,
                    10,
                ),
            ],
            _section("Over time"),
            [
                (
                    timeseries(
                        "Spent against limit",
                        "Spend in the current period (solid) and the limit (dashed), in each budget's "
                        "unit. Spend drops to zero when a new period starts.",
                        "short",
                        [
                            (f"{gauge} (llm_budget_spent{{{b}}})", "{{budget}} spent"),
                            (f"{gauge} (llm_budget_limit{{{b}}})", "{{budget}} limit"),
                        ],
                        overrides=[
                            {
                                "matcher": {"id": "byRegexp", "options": ".* limit$"},
                                "properties": [
                                    {
                                        "id": "custom.lineStyle",
                                        "value": {"dash": [10, 10], "fill": "dash"},
                                    }
                                ],
                            }
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Projected usage at period end",
                        "Projected spend at period end / limit over time; the red line is the limit.",
                        "percentunit",
                        [(f"budget:llm_budget_projected_usage:ratio{{{b}}}", "{{budget}}")],
                        threshold=1,
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Burn rate per hour",
                        "How fast each budget is being used, in its unit per hour, over the last hour.",
                        "short",
                        [(f"budget:llm_budget_spent:rate1h{{{b}}} * 3600", "{{budget}}")],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Time to exhaustion and period end",
                        "Time until the limit is reached at the last hour's burn rate, against the "
                        "time left in the period: exhaustion before period end means an overrun.",
                        "s",
                        [
                            (f"budget:llm_budget_time_to_exhaustion_seconds:rate1h{{{b}}}", "{{budget}} exhausted in"),
                            (
                                f"{gauge} (llm_budget_period_end_timestamp_seconds{{{b}}}) - time()",
                                "{{budget}} period ends in",
                            ),
                        ],
                    ),
                    12,
                    8,
                ),
            ],
        ],
        time_from="now-7d",
    )


def spikes_and_alerts() -> Json:
    """Spikes and alerts: spend against its baseline, and what the gateway is alerting on."""
    s = SPIKE
    series = "max without (instance, job)"
    legend = "{{group}}: {{provider}} {{model}} {{project}} {{service}}"
    return dashboard(
        "llmcost-spikes-alerts",
        "LLM cost / Spikes and alerts",
        "Spend in the detection window against its seasonal baseline, and the alerts llmcost holds.",
        [
            query_variable("group", "Watched series", "label_values(llm_spend_spike_ratio, group)"),
            *usage_variables("llm_spend_spike_ratio"),
        ],
        [
            _section("Alerts"),
            [
                (
                    stat(
                        "Firing alerts",
                        "Alerts the gateway holds as firing and unacknowledged (budget, spike and "
                        "alerts received from Alertmanager).",
                        "none",
                        'sum(llm_alerts_active{state="firing"}) or vector(0)',
                        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Critical alerts firing",
                        "Firing, unacknowledged alerts with severity critical.",
                        "none",
                        'sum(llm_alerts_active{state="firing", severity="critical"}) or vector(0)',
                        steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Acknowledged alerts",
                        "Alerts someone acknowledged that have not resolved yet: no notifications are sent for them.",
                        "none",
                        'sum(llm_alerts_active{state="acknowledged"}) or vector(0)',
                        steps=[{"color": "blue", "value": None}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Highest spike ratio",
                        "The largest window spend / baseline among the selected series (an "
                        "LLMCostSpike needs the configured multiplier, 3x by default).",
                        "suffix:×",
                        f"max({series} (llm_spend_spike_ratio{{{s}}}))",
                        decimals=2,
                        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 3}],
                    ),
                    6,
                    4,
                ),
            ],
            [
                (
                    table(
                        "Active alerts",
                        "Alerts the gateway holds now, by name, severity and state.",
                        "none",
                        [
                            (
                                "sum by (alertname, severity, state) (llm_alerts_active) > 0",
                                "Alerts",
                                "none",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Active alerts by state",
                        "Firing and acknowledged alerts over time.",
                        "none",
                        [("sum by (state) (llm_alerts_active)", "{{state}}")],
                    ),
                    12,
                    8,
                ),
            ],
            _section("Spikes"),
            [
                (
                    timeseries(
                        "Window spend against baseline",
                        "Spend in the current detection window (solid) and the rolling, "
                        "seasonality-aware baseline for a window of the same length (dashed).",
                        "currencyUSD",
                        [
                            (f"{series} (llm_spend_window_usd{{{s}}})", f"{legend} actual"),
                            (f"{series} (llm_spend_baseline_usd{{{s}}})", f"{legend} baseline"),
                        ],
                        overrides=[
                            {
                                "matcher": {"id": "byRegexp", "options": ".* baseline$"},
                                "properties": [
                                    {
                                        "id": "custom.lineStyle",
                                        "value": {"dash": [10, 10], "fill": "dash"},
                                    }
                                ],
                            }
                        ],
                    ),
                    24,
                    9,
                ),
            ],
            [
                (
                    timeseries(
                        "Spike ratio",
                        "Window spend / baseline per watched series; the red line is the default multiplier (3x).",
                        "suffix:×",
                        [(f"{series} (llm_spend_spike_ratio{{{s}}})", legend)],
                        threshold=3,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Top spikes now",
                        "The ten watched series furthest above their baseline right now.",
                        "suffix:×",
                        [(f"topk(10, {series} (llm_spend_spike_ratio{{{s}}}))", "Spike ratio", "suffix:×")],
                    ),
                    12,
                    8,
                ),
            ],
        ],
        time_from="now-24h",
    )


def stack_health() -> Json:
    """Stack health: is llmcost scraped, ingesting, scheduling and notifying."""
    t = TARGET
    return dashboard(
        "llmcost-stack-health",
        "LLM cost / Stack health",
        "The llmcost process itself: scrapes, ingest, scheduler, notifications and Alertmanager delivery.",
        [query_variable("instance", "Instance", 'label_values(up{job="llmcost"}, instance)')],
        [
            _section("Process"),
            [
                (
                    stat(
                        "llmcost up",
                        "Whether Prometheus' last scrape of llmcost succeeded.",
                        "none",
                        f"min(up{{{t}}})",
                        steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
                        mappings=[
                            {
                                "options": {
                                    "0": {"index": 0, "text": "DOWN"},
                                    "1": {"index": 1, "text": "UP"},
                                },
                                "type": "value",
                            }
                        ],
                        no_value="NOT SCRAPED",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Version",
                        "The llmcost version running (llm_exporter_build_info).",
                        "none",
                        f"llm_exporter_build_info{{{t}}}",
                        legend="{{version}}",
                        text_mode="name",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Last event accepted",
                        "Time since the store last accepted a new usage event.",
                        "s",
                        f"time() - max(llm_ingest_last_accepted_timestamp_seconds{{{t}}} > 0)",
                        no_value="never",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Scrape duration",
                        "How long the last scrape of /metrics took (the scrape timeout is 20s).",
                        "s",
                        f"max(scrape_duration_seconds{{{t}}})",
                        decimals=2,
                        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 10}],
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Samples exposed",
                        "Samples in the last scrape of /metrics: grows with providers x models x "
                        "projects x services (and users, if enabled).",
                        "short",
                        f"sum(scrape_samples_scraped{{{t}}})",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Stack alerts firing",
                        "Prometheus-side LLMCost* alerts firing now (see docs/runbook.md).",
                        "none",
                        'count(ALERTS{alertname=~"LLMCost.*", alertstate="firing"}) or vector(0)',
                        steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    ),
                    4,
                    4,
                ),
            ],
            _section("Ingest"),
            [
                (
                    timeseries(
                        "Ingest events by outcome",
                        "Events offered to ingest per second: accepted, duplicate (same request_id "
                        "seen before) and rejected (invalid).",
                        "cps",
                        [
                            (
                                f"sum by (outcome) (rate(llm_ingest_events_total{{{t}}}[$__rate_interval]))",
                                "{{outcome}}",
                            )
                        ],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Rejected share",
                        "Share of offered events rejected as invalid; their cost is missing "
                        "everywhere (LLMCostIngestRejecting above 10%).",
                        "percentunit",
                        [
                            (
                                f'sum(rate(llm_ingest_events_total{{{t}, outcome="rejected"}}[$__rate_interval]))\n'
                                f"/\nsum(rate(llm_ingest_events_total{{{t}}}[$__rate_interval]))",
                                "rejected",
                            )
                        ],
                        threshold=0.1,
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Scrape duration",
                        "Time to build and serve /metrics from the store.",
                        "s",
                        [(f"scrape_duration_seconds{{{t}}}", "{{instance}}")],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Samples per scrape",
                        "Samples exposed on each scrape.",
                        "short",
                        [(f"scrape_samples_scraped{{{t}}}", "{{instance}}")],
                    ),
                    12,
                    8,
                ),
            ],
            _section("Scheduler"),
            [
                (
                    timeseries(
                        "Time since last scheduler run",
                        "Per job (detection, budgets, outbox); the red line is the LLMCostSchedulerStalled threshold.",
                        "s",
                        [(f"time() - llm_scheduler_last_run_timestamp_seconds{{{t}}}", "{{task}}")],
                        threshold=900,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Scheduler runs by job and outcome",
                        "Job runs per minute, successful and failed.",
                        "opm",
                        [
                            (
                                "sum by (task, outcome) "
                                f"(rate(llm_scheduler_runs_total{{{t}}}[$__rate_interval])) * 60",
                                "{{task}} {{outcome}}",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
            ],
            _section("Notifications"),
            [
                (
                    timeseries(
                        "Notification attempts by channel and outcome",
                        "Delivery attempts per minute: sent, retried (retryable failure) and failed (final).",
                        "opm",
                        [
                            (
                                "sum by (channel, outcome) "
                                f"(rate(llm_notifications_total{{{t}}}[$__rate_interval])) * 60",
                                "{{channel}} {{outcome}}",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Outbox and dead letters",
                        "Notifications waiting in the durable outbox, and those that failed for good "
                        "(dead letters), by channel.",
                        "short",
                        [
                            (f"sum by (channel) (llm_notification_outbox_pending{{{t}}})", "{{channel}} pending"),
                            (f"sum by (channel) (llm_notification_dead_letters{{{t}}})", "{{channel}} dead letters"),
                        ],
                    ),
                    12,
                    8,
                ),
            ],
            [
                (
                    timeseries(
                        "Alertmanager deliveries to the gateway",
                        "Webhook notifications Alertmanager sent to llmcost's /v1/alertmanager, and "
                        "how many failed (token mismatch, llmcost down).",
                        "ops",
                        [
                            (
                                "sum(rate(alertmanager_notifications_total"
                                '{job="alertmanager", integration="webhook"}[$__rate_interval]))',
                                "attempted",
                            ),
                            (
                                "sum(rate(alertmanager_notifications_failed_total"
                                '{job="alertmanager", integration="webhook"}[$__rate_interval]))',
                                "failed",
                            ),
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Stack alerts",
                        "Prometheus-side LLMCost* alerts pending or firing; each has a section in docs/runbook.md.",
                        "none",
                        [
                            (
                                'ALERTS{alertname=~"LLMCost.*", alertstate=~"pending|firing"}',
                                "Active",
                                "none",
                            )
                        ],
                        hide=("Time", "Value", "__name__"),
                    ),
                    12,
                    8,
                ),
            ],
        ],
        time_from="now-6h",
    )


def build_dashboards() -> dict[str, Json]:
    """Every dashboard, keyed by its file name under grafana/dashboards/."""
    return {
        "llmcost-overview.json": overview(),
        "llmcost-budgets.json": budgets(),
        "llmcost-spikes-alerts.json": spikes_and_alerts(),
        "llmcost-stack-health.json": stack_health(),
    }


def render(board: Json) -> str:
    """Stable JSON: sorted keys, two-space indent, non-ASCII kept, trailing newline."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with --check report the files that differ from the generator."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--selector", default=DEFAULT_SELECTOR, help=f"label matchers (default {DEFAULT_SELECTOR})")
    args = parser.parse_args(argv)
    global SELECTOR
    try:
        SELECTOR = check_selector(args.selector)
    except ValueError as exc:
        parser.error(str(exc))
    stale = []
    for name, board in build_dashboards().items():
        path = args.out / name
        text = render(board)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale, run python grafana/build_dashboards.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
