"""Budgets: how much of each is used, where it is heading, and when it runs out."""

from __future__ import annotations

from .board import dashboard, query_variable, section
from .panels import COUNT, NONE, RATIO, SECONDS, Json, bargauge, dashed, stat, table, timeseries

BUDGET = 'budget=~"$budget", scope=~"$scope", period=~"$period"'
"""The dashboard's filters, in every query of a budget metric."""

# Colours at the default alert thresholds: info 50%, warning 80%, critical 95%, exceeded 100%.
BUDGET_STEPS: list[Json] = [
    {"color": "green", "value": None},
    {"color": "blue", "value": 0.5},
    {"color": "orange", "value": 0.8},
    {"color": "red", "value": 0.95},
    {"color": "dark-red", "value": 1},
]


def build() -> Json:
    """Budgets: how much of each is used, where it is heading, and when it runs out."""
    b = BUDGET
    # Replicas of one installation collapse; its job stays, as on the recorded series (merged tables
    # join rows on the columns all their queries share).
    gauge = "max without (instance)"
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
            section("Now"),
            [
                (
                    stat(
                        "Budgets over their limit",
                        "Budgets whose spend has reached the limit in the current period.",
                        NONE,
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
                        NONE,
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
                        RATIO,
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
                        SECONDS,
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
                        RATIO,
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
                        RATIO,
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
                        COUNT,
                        [
                            (f"{gauge} (llm_budget_limit{{{b}}})", "Limit", COUNT),
                            (f"{gauge} (llm_budget_spent{{{b}}})", "Spent", COUNT),
                            (f"{gauge} (llm_budget_projected{{{b}}})", "Projected", COUNT),
                            # Recorded series too go through `gauge`, which drops their `__name__`:
                            # merge joins rows on the columns all queries share, and a name column on
                            # some of them only would split each budget into several rows.
                            (f"{gauge} (budget:llm_budget_usage_ratio:max{{{b}}})", "Usage", RATIO),
                            (f"{gauge} (budget:llm_budget_projected_usage:ratio{{{b}}})", "Projected usage", RATIO),
                            (f"budget:llm_budget_spent:rate1h{{{b}}} * 3600", "Burn per hour", COUNT),
                            (
                                f"{gauge} (budget:llm_budget_time_to_exhaustion_seconds:rate1h{{{b}}})",
                                "Time to exhaustion",
                                SECONDS,
                            ),
                            (
                                f"{gauge} (llm_budget_period_end_timestamp_seconds{{{b}}}) - time()",
                                "Period ends in",
                                SECONDS,
                            ),
                        ],
                    ),
                    24,
                    10,
                ),
            ],
            section("Over time"),
            [
                (
                    timeseries(
                        "Spent against limit",
                        "Spend in the current period (solid) and the limit (dashed), in each budget's "
                        "unit. Spend drops to zero when a new period starts, and by the correction when "
                        "`llmcost reprice` lowers past costs.",
                        COUNT,
                        [
                            (f"{gauge} (llm_budget_spent{{{b}}})", "{{budget}} {{key}} spent ({{unit}})"),
                            (f"{gauge} (llm_budget_limit{{{b}}})", "{{budget}} {{key}} limit ({{unit}})"),
                        ],
                        overrides=[dashed(r".* limit \(\w+\)$")],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Projected usage at period end",
                        "Projected spend at period end / limit over time; the red line is the limit.",
                        RATIO,
                        [(f"budget:llm_budget_projected_usage:ratio{{{b}}}", "{{budget}} {{key}}")],
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
                        "How fast each budget is being used, in its unit per hour, over the last hour "
                        "(averaged over each point's interval at ranges whose points are more than an hour "
                        "apart, so no spending between two points is left out). What `spent` rose by: its "
                        "drop when a new period starts, or when `llmcost reprice` lowers past costs, is not "
                        "read as spending.",
                        COUNT,
                        [
                            (
                                f"avg_over_time(budget:llm_budget_spent:rate1h{{{b}}}[$__rate_interval]) * 3600",
                                "{{budget}} {{key}} ({{unit}} per hour)",
                            )
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Time to exhaustion and period end",
                        "Time until the limit is reached at the last hour's burn rate, against the "
                        "time left in the period: exhaustion before period end means an overrun.",
                        SECONDS,
                        [
                            (
                                f"budget:llm_budget_time_to_exhaustion_seconds:rate1h{{{b}}}",
                                "{{budget}} {{key}} exhausted in",
                            ),
                            (
                                f"{gauge} (llm_budget_period_end_timestamp_seconds{{{b}}}) - time()",
                                "{{budget}} {{key}} period ends in",
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
