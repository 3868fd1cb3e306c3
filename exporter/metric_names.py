"""The one place that names every metric llmcost exposes: name, type, HELP and labels.

Dashboards, rules and collectors refer to these entries; a test fails when a rule or a dashboard uses
a metric that is neither here nor a recording rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: exposition name (without `_total` for counters in client_python), type, help, labels."""

    name: str
    type: str  # "counter" | "gauge"
    help: str
    labels: tuple[str, ...]

    @property
    def sample_name(self) -> str:
        """The name samples carry in the exposition (counters gain `_total`)."""
        return self.name if self.type == "gauge" else f"{self.name}_total"

    @property
    def family_name(self) -> str:
        """The name client_python's metric families take (counters without `_total`)."""
        return self.name


USAGE_LABELS = ("provider", "model", "project", "service")
BUDGET_LABELS = ("budget", "scope", "key", "period", "unit")
SPIKE_LABELS = ("group", "provider", "model", "project", "service", "user")

REQUESTS = MetricSpec("llm_requests", "counter", "LLM calls recorded, by outcome.", (*USAGE_LABELS, "status"))
TOKENS = MetricSpec(
    "llm_tokens",
    "counter",
    "Tokens recorded, by type (input = uncached input; output includes reasoning).",
    (*USAGE_LABELS, "token_type"),
)
REASONING_TOKENS = MetricSpec(
    "llm_reasoning_tokens", "counter", "Reasoning tokens recorded (a part of output tokens).", USAGE_LABELS
)
COST = MetricSpec("llm_cost_usd", "counter", "Cost of recorded LLM calls in US dollars.", USAGE_LABELS)
UNPRICED = MetricSpec(
    "llm_unpriced_requests",
    "counter",
    "Calls stored with cost 0 because the model has no known price and no cost_usd was given.",
    ("provider", "model"),
)
COST_ADJUSTMENT = MetricSpec(
    "llm_cost_adjustment_usd",
    "counter",
    "Corrections to recorded cost by `llmcost reprice`, in US dollars: direction=up adds to "
    "llm_cost_usd_total, direction=down takes away (corrected spend = cost + up - down).",
    (*USAGE_LABELS, "direction"),
)
BUDGET_LIMIT = MetricSpec("llm_budget_limit", "gauge", "Budget limit in its unit.", BUDGET_LABELS)
BUDGET_SPENT = MetricSpec("llm_budget_spent", "gauge", "Spent so far in the current budget period.", BUDGET_LABELS)
BUDGET_PROJECTED = MetricSpec(
    "llm_budget_projected", "gauge", "Projected total at the end of the current budget period.", BUDGET_LABELS
)
BUDGET_RATIO = MetricSpec(
    "llm_budget_usage_ratio", "gauge", "Spent divided by limit (0-1, above 1 when exceeded).", BUDGET_LABELS
)
BUDGET_PERIOD_END = MetricSpec(
    "llm_budget_period_end_timestamp_seconds",
    "gauge",
    "Unix time at which the current budget period ends.",
    BUDGET_LABELS,
)
ALERTS_ACTIVE = MetricSpec(
    "llm_alerts_active",
    "gauge",
    "Alerts known to the gateway that are not resolved, by state (firing; acknowledged: acknowledged, or held "
    "by a silence in Alertmanager).",
    ("alertname", "severity", "state"),
)
NOTIFICATIONS = MetricSpec(
    "llm_notifications",
    "counter",
    "Notification delivery attempts by channel and outcome.",
    ("channel", "outcome"),
)
INGEST_EVENTS = MetricSpec("llm_ingest_events", "counter", "Events offered to ingest, by outcome.", ("outcome",))
BUILD_INFO = MetricSpec("llm_exporter_build_info", "gauge", "Always 1; carries the llmcost version.", ("version",))

# Beyond the metrics docs/metrics.md lists: self metrics the shipped Prometheus rules and dashboards rely on.
INGEST_LAST_EVENT = MetricSpec(
    "llm_ingest_last_accepted_timestamp_seconds",
    "gauge",
    "Unix time at which the store last accepted a new event (0 if never).",
    (),
)
STORE_UP = MetricSpec(
    "llm_store_up",
    "gauge",
    "1 when this scrape read the store; 0 when the store did not answer in the scrape's time (the families "
    "read from it are then left out).",
    (),
)
INGEST_SKIPPED = MetricSpec(
    "llm_ingest_events_skipped",
    "counter",
    "Records offered to ingest that were no call to count (a request LiteLLM's proxy refused before any provider), "
    "neither stored nor rejected, by reason.",
    ("reason",),
)
OTLP_SPANS_SKIPPED = MetricSpec(
    "llm_otlp_spans_skipped",
    "counter",
    "Spans received on /v1/traces that carry no model-call usage (HTTP, database, agent, tool spans) and were skipped.",
    (),
)
SCHEDULER_LAST_RUN = MetricSpec(
    "llm_scheduler_last_run_timestamp_seconds",
    "gauge",
    "Unix time of the last completed run of each scheduler job (label `task`: `job` is Prometheus's own).",
    ("task",),
)
SCHEDULER_RUNS = MetricSpec(
    "llm_scheduler_runs", "counter", "Scheduler job runs by outcome (success, error).", ("task", "outcome")
)
ALERTMANAGER_PUSHES = MetricSpec(
    "llm_alertmanager_pushes",
    "counter",
    "Pushes of llmcost's own alerts to an Alertmanager replica, by outcome (sent, retried, failed).",
    ("alertmanager", "outcome"),
)
OUTBOX_PENDING = MetricSpec(
    "llm_notification_outbox_pending",
    "gauge",
    "Notifications waiting in the outbox, by channel.",
    ("channel",),
)
NOTIFICATIONS_FOLDED = MetricSpec(
    "llm_notifications_folded",
    "counter",
    "Notifications delivered inside one message with others, by channel and how "
    "(grouped: instances of one budget; summarised: over the channel's max_per_minute).",
    ("channel", "how"),
)
OUTBOX_DEAD = MetricSpec(
    "llm_notification_dead_letters",
    "gauge",
    "Notifications that failed permanently and were moved to the dead-letter state, by channel.",
    ("channel",),
)
SPIKE_WINDOW = MetricSpec(
    "llm_spend_window_usd",
    "gauge",
    "Spend in the current detection window for each watched series.",
    SPIKE_LABELS,
)
SPIKE_BASELINE = MetricSpec(
    "llm_spend_baseline_usd",
    "gauge",
    "Rolling, seasonality-aware baseline spend for a window of the same length.",
    SPIKE_LABELS,
)
SPIKE_RATIO = MetricSpec(
    "llm_spend_spike_ratio", "gauge", "Current window spend divided by its baseline.", SPIKE_LABELS
)

ALL: tuple[MetricSpec, ...] = (
    REQUESTS,
    TOKENS,
    REASONING_TOKENS,
    COST,
    UNPRICED,
    COST_ADJUSTMENT,
    BUDGET_LIMIT,
    BUDGET_SPENT,
    BUDGET_PROJECTED,
    BUDGET_RATIO,
    BUDGET_PERIOD_END,
    ALERTS_ACTIVE,
    NOTIFICATIONS,
    INGEST_EVENTS,
    INGEST_SKIPPED,
    BUILD_INFO,
    STORE_UP,
    INGEST_LAST_EVENT,
    OTLP_SPANS_SKIPPED,
    SCHEDULER_LAST_RUN,
    SCHEDULER_RUNS,
    ALERTMANAGER_PUSHES,
    OUTBOX_PENDING,
    OUTBOX_DEAD,
    NOTIFICATIONS_FOLDED,
    SPIKE_WINDOW,
    SPIKE_BASELINE,
    SPIKE_RATIO,
)


def sample_names() -> set[str]:
    """Every sample name the exporter can expose (what PromQL sees)."""
    return {m.sample_name for m in ALL}
