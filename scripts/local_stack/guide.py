"""What the stack shows a person: where to look, the example queries, and `--check`, which proves it all works."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from exporter.demo import ATTRIBUTION
from local_stack.assemble import Stack
from local_stack.prometheus_api import format_sample, instant_query, scraped, wait_until

# (what it shows, PromQL): printed at start, run by --check.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Spend in the last hour by project (USD)", "sort_desc(project:llm_cost_usd:increase1h)"),
    ("Top 5 models by spend rate (USD per hour)", "topk(5, provider_model:llm_cost_usd:rate5m * 3600)"),
    ("Budgets closest to their limit (share of the limit spent)", "topk(5, budget:llm_budget_usage_ratio:max)"),
)


def banner(stack: Stack, accepted: int) -> str:
    """Where to look, and the example queries."""
    p = stack.ports
    lines = [
        f"Sent the trace's last hour to llmcost: {accepted:,} calls accepted ({ATTRIBUTION}).",
        "It keeps replaying in real time. State, configs and logs are in " + str(stack.state) + ".",
        "",
        f"  llmcost       {p.url('llmcost')}/          (metrics: {p.url('llmcost')}/metrics)",
        f"  Prometheus    {p.url('prometheus')}/graph     (targets: {p.url('prometheus')}/targets)",
        f"  Alertmanager  {p.url('alertmanager')}/",
        f"  Runbook       {p.url('llmcost')}/runbook",
        "",
        "llmcost's own budget alerts, in Alertmanager (budget stack-requests is crossed at once):",
        f"  amtool alert query --alertmanager.url={p.url('alertmanager')} llmcost_origin=llmcost",
        "",
        "PromQL to try (recording rules fill in after the first evaluations; rates after a few scrapes):",
    ]
    for title, expr in EXAMPLES:
        lines += [f"  # {title}", f"  {expr}"]
    lines += [
        "",
        "From a shell:",
        f"  curl -s {p.url('prometheus')}/api/v1/query --data-urlencode 'query={EXAMPLES[0][1]}'",
        "Grafana is not started here: `docker compose up` runs the whole stack with the dashboards.",
    ]
    return "\n".join(lines)


def check(stack: Stack, expected_calls: int, timeout: float) -> bool:
    """Prove the stack works end to end; prints what it checked and the example queries' outputs."""
    prometheus = stack.ports.url("prometheus")
    alertmanager = stack.ports.url("alertmanager")
    llmcost = stack.ports.url("llmcost")
    alert = {
        "labels": {"alertname": "StackCheck", "severity": "critical"},
        "annotations": {"summary": "scripts/stack.py --check: Alertmanager reaches the llmcost gateway."},
    }

    def requests_scraped() -> bool:
        found = instant_query(prometheus, 'sum(llm_requests_total{job="llmcost"})')
        return bool(found) and float(found[0]["value"][1]) >= expected_calls

    def alertmanager_discovered() -> bool:
        body = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()
        urls = [a["url"] for a in body["data"]["activeAlertmanagers"]]
        return any(u.startswith(f"{alertmanager}/") for u in urls)

    def budget_alert_in_alertmanager() -> bool:
        found = httpx.get(
            f"{alertmanager}/api/v2/alerts", params={"filter": 'llmcost_origin="llmcost"'}, timeout=5
        ).json()
        budget_alerts = [a for a in found if a["labels"]["alertname"].startswith("LLMBudget")]
        for alert in budget_alerts:
            print(f"  {alert['labels']} {alert['status']['state']}: {alert['annotations'].get('summary', '')}")
        return bool(budget_alerts)

    def alert_delivered() -> bool:
        # Alertmanager holds a group for the route's group_wait (10 s for critical) before the webhook.
        alerts = httpx.get(f"{llmcost}/v1/alerts", params={"state": "firing"}, timeout=5).json()
        return any(a["alertname"] == "StackCheck" for a in alerts)

    steps: list[tuple[str, Callable[[], bool]]] = [
        (
            "Prometheus scrapes llmcost, itself and Alertmanager",
            lambda: all(scraped(prometheus, job) for job in ("llmcost", "prometheus", "alertmanager")),
        ),
        (f"Prometheus holds llmcost's {expected_calls:,}+ calls", requests_scraped),
        ("Prometheus sends alerts to Alertmanager", alertmanager_discovered),
        *((f"{expr} has data", _has_data(prometheus, expr)) for _title, expr in EXAMPLES),
        ("Alertmanager delivers to llmcost's webhook with the generated token", alert_delivered),
        ("llmcost pushed its budget alerts to Alertmanager (GET /api/v2/alerts)", budget_alert_in_alertmanager),
    ]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    deadline = time.monotonic() + timeout
    ok = True
    for label, condition in steps:
        passed = wait_until(condition, max(0.0, deadline - time.monotonic()))
        print(f"check: {'ok    ' if passed else 'FAILED'} {label}", flush=True)
        ok = ok and passed
    for title, expr in EXAMPLES:
        print(f"\n# {title}\n{expr}")
        for sample in instant_query(prometheus, expr):
            print(f"  {format_sample(sample)}")
    print(f"\ncheck {'passed' if ok else 'FAILED'}", flush=True)
    return ok


def _has_data(prometheus: str, expr: str) -> Callable[[], bool]:
    return lambda: bool(instant_query(prometheus, expr))
