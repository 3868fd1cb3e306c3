"""Stack health: is llmcost scraped, ingesting, scheduling and notifying."""

from __future__ import annotations

from .board import dashboard, query_variable, section
from .panels import COUNT, NONE, OPS, PER_MIN, PER_S, RATIO, SECONDS, Json, stat, table, timeseries

TARGET = 'job="llmcost", instance=~"$instance"'
"""llmcost's scrape target(s): the default selector and the instance filter."""

_DELIVERIES = "Alertmanager deliveries to the gateway"
INSTALLATION_INDEPENDENT = {
    _DELIVERIES: (
        "The same whichever Installation is chosen: Alertmanager's own counters carry its job, not an "
        "installation's, and count its webhook deliveries to every installation's gateway (and to any other webhook)."
    ),
}
"""Panels whose series carry no llmcost installation, so they cannot honour the `job` variable: title -> why."""


def build() -> Json:
    """Stack health: is llmcost scraped, ingesting, scheduling and notifying."""
    t = TARGET
    return dashboard(
        "llmcost-stack-health",
        "LLM cost / Stack health",
        "The llmcost process itself: scrapes, ingest, scheduler, notifications and Alertmanager delivery.",
        [query_variable("instance", "Instance", 'label_values(up{job="llmcost"}, instance)')],
        [
            section("Process"),
            [
                (
                    stat(
                        "llmcost up",
                        "Whether Prometheus' last scrape of llmcost succeeded (scrape), and whether that scrape "
                        "could read llmcost's database (store: llm_store_up; DOWN for 5 minutes raises "
                        "LLMCostStoreDown).",
                        NONE,
                        f"min(up{{{t}}})",
                        legend="scrape",
                        more=[(f"min(llm_store_up{{{t}}})", "store")],
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
                        NONE,
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
                        SECONDS,
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
                        SECONDS,
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
                        COUNT,
                        f"sum(scrape_samples_scraped{{{t}}})",
                    ),
                    4,
                    4,
                ),
                (
                    stat(
                        "Stack alerts firing",
                        "Prometheus-side LLMCost* alerts firing now (see docs/runbook.md).",
                        NONE,
                        'count(ALERTS{alertname=~"LLMCost.*", alertstate="firing"}) or vector(0)',
                        steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    ),
                    4,
                    4,
                ),
            ],
            section("Ingest"),
            [
                (
                    timeseries(
                        "Ingest events by outcome",
                        "Events offered to ingest per second: accepted, duplicate (same request_id "
                        "seen before), rejected (invalid) and skipped by reason (no call to count: a "
                        "request LiteLLM's proxy refused before any provider).",
                        PER_S,
                        [
                            (
                                f"sum by (outcome) (rate(llm_ingest_events_total{{{t}}}[$__rate_interval]))",
                                "{{outcome}}",
                            ),
                            (
                                f"sum by (reason) (rate(llm_ingest_events_skipped_total{{{t}}}[$__rate_interval]))",
                                "skipped: {{reason}}",
                            ),
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
                        RATIO,
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
                        SECONDS,
                        [(f"scrape_duration_seconds{{{t}}}", "{{instance}}")],
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Samples per scrape",
                        "Samples exposed on each scrape.",
                        COUNT,
                        [(f"scrape_samples_scraped{{{t}}}", "{{instance}}")],
                    ),
                    12,
                    8,
                ),
            ],
            section("Scheduler"),
            [
                (
                    timeseries(
                        "Time since last scheduler run",
                        "Per job (detection, budgets, outbox, alertmanager, retention); the red line is the "
                        "LLMCostSchedulerStalled threshold, 15 minutes (retention runs hourly: its threshold "
                        "is 3 hours).",
                        SECONDS,
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
                        PER_MIN,
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
            section("Notifications"),
            [
                (
                    timeseries(
                        "Notification attempts by channel and outcome",
                        "Delivery attempts per minute: sent, retried (retryable failure) and failed (final).",
                        PER_MIN,
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
                        COUNT,
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
                        _DELIVERIES,
                        "Webhook notifications Alertmanager sent to llmcost's /v1/alertmanager, and "
                        "how many failed (token mismatch, llmcost down). " + INSTALLATION_INDEPENDENT[_DELIVERIES],
                        OPS,
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
                        NONE,
                        [
                            (
                                'ALERTS{alertname=~"LLMCost.*", alertstate=~"pending|firing"}',
                                "Active",
                                NONE,
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
