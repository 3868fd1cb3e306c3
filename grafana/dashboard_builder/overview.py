"""Spend overview: how much LLM calls cost, where, how fast, and how efficiently."""

from __future__ import annotations

from .board import dashboard, section, usage_variables
from .panels import COUNT, RATIO, REQ_PER_S, USD, Json, bargauge, stat, table, timeseries

USAGE = 'provider=~"$provider", model=~"$model", project=~"$project", service=~"$service"'
"""The dashboard's filters, in every query of a usage metric."""


PER_POINT = (
    " Averaged over each point's interval (an hour a point at 30 days), so the area under the graph is "
    "what was spent, at any range."
)
"""Said by every graph of spend per hour (see `per_point`)."""
ADJUSTED = (
    " Includes the corrections of `llmcost reprice` (llm_cost_adjustment_usd_total), counted when the "
    "repricing ran; llmcost report, /v1/usage/summary and the budgets count them in the repriced calls' own "
    "period."
)
"""Said by every panel that shows spend totals (docs/pricing.md). It used to say the reports and budgets
counted corrections when the repricing ran too: a November call repriced in December is in December here
and in November in `llmcost report`."""
RECORDED = (
    " Calls count when llmcost recorded them: one recorded in the range with an earlier timestamp (a "
    "client's late batch, a backfill) counts here, where llmcost report counts it at its timestamp; the "
    "month just closed is `llmcost report --period last-month` (docs/report.md)."
)
"""Said by the calendar totals, which a finance partner compares with the report at month end."""
NOT_ADJUSTED = " Repricing corrections are not spending and are left out here (see the totals above)."
"""Said by every panel that shows how fast money is spent."""


def grown(selector: str, window: str) -> str:
    """How much a counter's sum grew over `window`: its total now less its total `window` ago.

    Every scrape's totals are exact, whatever llmcost folds into `__other__` (metrics.max_series_per_label),
    so their difference is the growth to the cent. `increase()` per series is not: a folded value promoted to
    its own series drops `__other__`, which it reads as a counter reset (counting all `__other__` still
    holds as new), it never counts a new series' first sample (a new project's first calls), and it
    extrapolates to the window's edges. A label set with no series at the start, while a scrape of
    llmcost's store answered then, started from 0. With no such scrape at the start (Prometheus was not
    running, the store did not answer) there is no answer: the caller falls back on the rates.
    """
    start = f"sum({selector} offset {window})"
    return f"(sum({selector}) - ({start} or 0 * sum(llm_store_up offset {window} == 1)))"


def counted(selector: str, window: str) -> str:
    """A counter's growth over `window`: exact from the totals (`grown`), else the sum of its increases."""
    return f"({grown(selector, window)} or sum(increase({selector}[{window}])))"


def spend_in_range(window: str) -> str:
    """Corrected spend over `window`: exact from the totals (`spend_grown`), else from the increases."""
    return f"(\n{spend_grown(window)}\n)\nor\n(\n{spend_increase('', window)}\n)"


def spend_grown(window: str) -> str:
    """Corrected spend over `window` from the exact totals (`grown`): cost plus repricing's net corrections."""
    f = USAGE
    cost = grown(f"llm_cost_usd_total{{{f}}}", window)
    up = grown(f'llm_cost_adjustment_usd_total{{{f}, direction="up"}}', window)
    down = grown(f'llm_cost_adjustment_usd_total{{{f}, direction="down"}}', window)
    return f"{cost}\n+ (\n  {up}\n  - {down}\n  or 0 * {cost}\n)"


def grown_by(by: str, selector: str, window: str) -> str:
    """`grown` per value of `by`: each group's total now less its total `window` ago, to the cent.

    A group with no series at the start (a project whose first call came in the range) started from 0,
    provided a scrape of llmcost's store answered then; otherwise the group has no answer.
    """
    now, start = f"sum by ({by}) ({selector})", f"sum by ({by}) ({selector} offset {window})"
    new = f"(0 * {now} and on () (sum(llm_store_up offset {window} == 1)))"
    return f"({now} - ({start} or {new}))"


def spend_grown_by(by: str, window: str) -> str:
    """Corrected spend per value of `by` over `window` from the exact totals (`grown_by`)."""
    f = USAGE
    cost = grown_by(by, f"llm_cost_usd_total{{{f}}}", window)
    up = grown_by(by, f'llm_cost_adjustment_usd_total{{{f}, direction="up"}}', window)
    down = grown_by(by, f'llm_cost_adjustment_usd_total{{{f}, direction="down"}}', window)
    return f"{cost}\n+ (\n  {up}\n  - {down}\n  or 0 * {cost}\n)"


def top_spend(by: str, window: str) -> str:
    """The ten groups of `by` that spent most over `window`: exact from the totals, else from the increases.

    `increase()` per series extrapolates to the range's edges ($4.00 read $4.67) and never
    counts a new series' first sample (a project new in the range read $0): a finance partner reading
    last month's top projects got neither figure `llmcost report` gives.
    """
    return f"topk(10,\n(\n{spend_grown_by(by, window)}\n)\nor\n(\n{spend_increase(by, window)}\n)\n)"


def spend_increase(by: str, window: str) -> str:
    """Corrected spend over `window` (`sum by (...)` when `by`): cost plus repricing's net corrections.

    A label set without corrections (an exporter older than them) still shows its cost.
    """
    f, group = USAGE, f"sum by ({by}) " if by else "sum"
    cost = f"{group}(increase(llm_cost_usd_total{{{f}}}[{window}]))"
    up = f'{group}(increase(llm_cost_adjustment_usd_total{{{f}, direction="up"}}[{window}]))'
    down = f'{group}(increase(llm_cost_adjustment_usd_total{{{f}, direction="down"}}[{window}]))'
    return f"{cost}\n+ (\n  {up}\n  - {down}\n  or 0 * {cost}\n)"


def per_point(recorded: str) -> str:
    """A recorded rate averaged over each graph point's interval, not read at the point alone.

    At 30 days Grafana draws a point an hour; a 5-minute rate read at each point shows 5 minutes of
    every hour and misses the calls in between. Averaged over `$__rate_interval` (the point's interval
    plus a scrape, as the Grafana docs advise for rates), every evaluation of the rule counts, so the
    area under the graph is what was spent, at any range.
    """
    return f"avg_over_time({recorded}[$__rate_interval])"


def recorded_spend(rule: str, by: str) -> str:
    """Corrected spend from a recorded `increase` rule and its repricing counterpart, per `by`."""
    f, group = USAGE, f"sum by ({by}) " if by else "sum"
    cost = f"{group}(provider_model_project_service:llm_cost_usd:{rule}{{{f}}})"
    adjustment = f"{group}(provider_model_project_service:llm_cost_adjustment_usd:{rule}{{{f}}})"
    return f"{cost}\n+ ({adjustment} or 0 * {cost})"


def build() -> Json:
    """Spend overview: how much, where, how fast, and how efficiently."""
    f = USAGE
    fine_cost_rate = f"provider_model_project_service:llm_cost_usd:rate5m{{{f}}}"
    cost_per_point = per_point(fine_cost_rate)
    fine_tokens = "provider_model_project_service_token_type:llm_tokens:rate5m"
    tokens_per_point = per_point(f"{fine_tokens}{{{f}}}")
    cache_read_per_point = per_point(f'{fine_tokens}{{{f}, token_type="cache_read"}}')
    input_per_point = per_point(f'{fine_tokens}{{{f}, token_type="input"}}')
    all_input_per_point = per_point(f'{fine_tokens}{{{f}, token_type=~"input|cache_read|cache_write"}}')
    requests_per_point = per_point(f"provider_model_project_service:llm_requests:rate5m{{{f}}}")
    by_status_per_point = per_point(f"provider_model_project_service_status:llm_requests:rate5m{{{f}}}")
    reasoning_per_point = per_point(f"provider_model_project_service:llm_reasoning_tokens:rate5m{{{f}}}")
    trailing_hour_per_point = per_point(f"provider_model_project_service:llm_cost_usd:increase1h{{{f}}}")
    cache_hit_by_model = (
        "(\n"
        f"    sum by (provider, model) ({cache_read_per_point})\n"
        "  or\n"
        f"    0 * sum by (provider, model) ({input_per_point})\n"
        ")\n/\n"
        f"(sum by (provider, model) ({all_input_per_point}) > 0)"
    )
    return dashboard(
        "llmcost-overview",
        "LLM cost / Spend overview",
        "What LLM calls cost: today, this month, by provider, model, project and service.",
        usage_variables("llm_cost_usd_total"),
        [
            section("Spend"),
            [
                (
                    stat(
                        "Spend today",
                        "Spend since midnight UTC for the selected filters: the total of llm_cost_usd_total "
                        "now less its total at midnight, to the cent, as llmcost report counts it (values "
                        "folded into __other__ or promoted out of it move money between series, never add "
                        "any). Without a scrape of llmcost at midnight, the increase of the counters since."
                        + RECORDED
                        + ADJUSTED,
                        USD,
                        spend_in_range("$__range"),
                        decimals=2,
                        time_from="now/d",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend this month",
                        "Spend since the first of the month (UTC): the total of llm_cost_usd_total now less "
                        "its total at the month's start, to the cent, as llmcost report counts it, spend "
                        "made while Prometheus was down included. Without a scrape of llmcost at the "
                        "month's start (Prometheus' retention, a new install), the 5-minute spend rate "
                        "recording rule sampled every 5 minutes, which misses spend made while Prometheus "
                        "was down (llmcost report and the console read the store and count it)." + RECORDED + ADJUSTED,
                        USD,
                        f"(\n{spend_grown('$__range')}\n)\nor\n"
                        "(\n"
                        f"  sum(sum_over_time({fine_cost_rate}[$__range:5m]))\n"
                        "  + (sum(sum_over_time(provider_model_project_service:llm_cost_adjustment_usd:rate5m"
                        f"{{{f}}}[$__range:5m])) or vector(0))\n"
                        ") * 300",
                        decimals=2,
                        time_from="now/M",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend in the last hour",
                        "Spend over the trailing 60 minutes: the totals now less the totals an hour ago, "
                        "as 'Spend today' reads them (the hourly recording rule without a scrape of "
                        "llmcost an hour ago)." + ADJUSTED,
                        USD,
                        f"(\n{spend_grown('1h')}\n)\nor\n(\n{recorded_spend('increase1h', '')}\n)",
                        decimals=2,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Spend rate (per hour)",
                        "Current spend rate over the last 5 minutes, in dollars per hour: the total of "
                        "llm_cost_usd_total now less its total 5 minutes ago, so a value folded into "
                        "__other__ or promoted out of it is no burst of spending (the 5-minute rate "
                        "recording rule without a scrape 5 minutes ago)." + NOT_ADJUSTED,
                        USD,
                        f"{grown(f'llm_cost_usd_total{{{f}}}', '5m')} * 12\nor\nsum({fine_cost_rate}) * 3600",
                        decimals=2,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Cost per request",
                        "Average cost of one call in the selected time range (failed calls count: "
                        "they are billed too), from the totals now and at the range's start, as "
                        "'Spend today' reads them." + ADJUSTED,
                        USD,
                        f"(\n{spend_in_range('$__range')}\n)\n/\n{counted(f'llm_requests_total{{{f}}}', '$__range')}",
                        decimals=4,
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Cache-hit share",
                        "Share of input tokens served from the prompt cache in the selected time "
                        "range: cache_read / (input + cache_read + cache_write), as llmcost report prints it.",
                        RATIO,
                        counted(f'llm_tokens_total{{{f}, token_type="cache_read"}}', "$__range")
                        + "\n/\n"
                        + counted(f'llm_tokens_total{{{f}, token_type=~"input|cache_read|cache_write"}}', "$__range"),
                        decimals=1,
                    ),
                    4,
                    4,
                ),
            ],
            section("Spend over time"),
            [
                (
                    timeseries(
                        "Spend rate by project",
                        "Dollars per hour, from the 5-minute spend rate. An empty project means the "
                        "calls carried no project attribution." + PER_POINT + NOT_ADJUSTED,
                        USD,
                        [(f"sum by (project) ({cost_per_point}) * 3600", "{{project}}")],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Spend rate by provider and model",
                        "Dollars per hour, from the 5-minute spend rate." + PER_POINT + NOT_ADJUSTED,
                        USD,
                        [(f"sum by (provider, model) ({cost_per_point}) * 3600", "{{provider}} / {{model}}")],
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
                        "Dollars per hour, from the 5-minute spend rate." + PER_POINT + NOT_ADJUSTED,
                        USD,
                        [(f"sum by (service) ({cost_per_point}) * 3600", "{{service}}")],
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Spend in the trailing hour by provider",
                        "Dollars spent in the 60 minutes before each point: smoother than the rate. At ranges whose "
                        "points are more than an hour apart, the average over each point's interval "
                        "(dollars an hour), so no hour between two points is left out." + NOT_ADJUSTED,
                        USD,
                        [
                            (
                                f"sum by (provider) ({trailing_hour_per_point})",
                                "{{provider}}",
                            )
                        ],
                        stack=True,
                    ),
                    12,
                    8,
                ),
            ],
            section("Top spenders"),
            [
                (
                    bargauge(
                        "Top projects in the time range",
                        "The ten projects that spent most in the selected time range: each one's total at the "
                        "range's end less its total at its start, to the cent, as llmcost report counts it (a "
                        "project new in the range from 0). Without a scrape of llmcost at the start, the "
                        "increase of the counters." + RECORDED + ADJUSTED,
                        USD,
                        top_spend("project", "$__range"),
                        "{{project}}",
                    ),
                    8,
                    9,
                ),
                (
                    bargauge(
                        "Top models in the time range",
                        "The ten provider/model pairs that cost most in the selected time range: each one's total at "
                        "the range's end less its total at its start, to the cent, as llmcost report counts it (a "
                        "model new in the range from 0). Without a scrape of llmcost at the start, the increase "
                        "of the counters." + RECORDED + ADJUSTED,
                        USD,
                        top_spend("provider, model", "$__range"),
                        "{{provider}} / {{model}}",
                    ),
                    8,
                    9,
                ),
                (
                    bargauge(
                        "Top services in the last 24 hours",
                        "The ten services that spent most in the trailing 24 hours (daily recording "
                        "rule, refreshed every 5 minutes)." + ADJUSTED,
                        USD,
                        f"topk(10,\n{recorded_spend('increase1d', 'service')}\n)",
                        "{{service}}",
                    ),
                    8,
                    9,
                ),
            ],
            section("Efficiency"),
            [
                (
                    timeseries(
                        "Cost per request by model",
                        "Average dollars per call over each point's interval (5 minutes at least); no point "
                        "while a model gets no calls.",
                        USD,
                        [
                            (
                                f"sum by (provider, model) ({cost_per_point})\n/\n"
                                "(sum by (provider, model) "
                                f"({requests_per_point}) > 0)",
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
                        "cache_read + cache_write). 0 for a model that never reports cache reads.",
                        RATIO,
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
                        COUNT,
                        [
                            (
                                f"sum by (provider, model) ({cache_read_per_point})",
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
                        COUNT,
                        [
                            (f"sum by (token_type) ({tokens_per_point})", "{{token_type}}"),
                            (
                                f"sum({reasoning_per_point})",
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
                        REQ_PER_S,
                        [
                            (
                                f"sum by (status) ({by_status_per_point})",
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
                        COUNT,
                        [
                            (
                                "sum by (provider, model) (increase(llm_unpriced_requests_total"
                                '{provider=~"$provider", model=~"$model"}[$__range])) > 0',
                                "Unpriced calls",
                                COUNT,
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
