"""Spikes and alerts: spend against its seasonal baseline, and the alerts llmcost holds."""

from __future__ import annotations

from .board import dashboard, query_variable, section, usage_variables
from .panels import NONE, TIMES, USD, Json, dashed, stat, table, timeseries

SPIKE = 'group=~"$group", provider=~"$provider", model=~"$model", project=~"$project", service=~"$service"'
"""The dashboard's filters, in every query of a spike metric."""


def build() -> Json:
    """Spikes and alerts: spend against its baseline, and what the gateway is alerting on."""
    s = SPIKE
    series = "max without (instance)"  # replicas of one installation collapse; its job stays
    # Every label of a watched series (`user` too, for `detection.series: [[user]]`), or lines clash.
    legend = "{{group}}: {{provider}} {{model}} {{project}} {{service}} {{user}}"
    return dashboard(
        "llmcost-spikes-alerts",
        "LLM cost / Spikes and alerts",
        "Spend in the detection window against its seasonal baseline, and the alerts llmcost holds.",
        [
            # From the window spend, which every watched series has: the ratio has no sample while the
            # baseline is 0 (a new series, or the first days of history).
            query_variable("group", "Watched series", "label_values(llm_spend_window_usd, group)"),
            *usage_variables("llm_spend_window_usd"),
        ],
        [
            section("Alerts"),
            [
                (
                    stat(
                        "Firing alerts",
                        "Alerts the gateway holds as firing, unacknowledged and not silenced in Alertmanager "
                        "(budget, spike and alerts received from Alertmanager).",
                        NONE,
                        'sum(llm_alerts_active{state="firing"}) or vector(0)',
                        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
                    ),
                    6,
                    4,
                ),
                (
                    stat(
                        "Critical alerts firing",
                        "Firing alerts with severity critical, neither acknowledged nor silenced in Alertmanager.",
                        NONE,
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
                        NONE,
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
                        TIMES,
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
                        "Alerts the gateway holds now, by name, severity and state (firing; acknowledged: "
                        "acknowledged, or held by a silence in Alertmanager).",
                        NONE,
                        [
                            (
                                "sum by (alertname, severity, state) (llm_alerts_active) > 0",
                                "Alerts",
                                NONE,
                            )
                        ],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Active alerts by state",
                        "Firing and acknowledged (or silenced in Alertmanager) alerts over time.",
                        NONE,
                        [("sum by (state) (llm_alerts_active)", "{{state}}")],
                    ),
                    12,
                    8,
                ),
            ],
            section("Spikes"),
            [
                (
                    timeseries(
                        "Window spend against baseline",
                        "Spend in the current detection window (solid) and the rolling, "
                        "seasonality-aware baseline for a window of the same length (dashed).",
                        USD,
                        [
                            (f"{series} (llm_spend_window_usd{{{s}}})", f"{legend} actual"),
                            (f"{series} (llm_spend_baseline_usd{{{s}}})", f"{legend} baseline"),
                        ],
                        overrides=[dashed(".* baseline$")],
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
                        TIMES,
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
                        TIMES,
                        [(f"topk(10, {series} (llm_spend_spike_ratio{{{s}}}))", "Spike ratio", TIMES)],
                    ),
                    12,
                    8,
                ),
            ],
        ],
        time_from="now-24h",
    )
