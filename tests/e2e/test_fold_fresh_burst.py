"""A fresh server's first burst: a label under `metrics.max_series_per_label` never shows `__other__`.

Defect: right after a fresh `llmcost serve` took its first burst (100,000 calls over five projects, three
models, two services and three users, far under the cap of 1,000), the first scrape showed every call
under `project="__other__"` (and `service`, `user` too); the projects appeared one or two scrapes later.
Each grown label was ranked as a folded one is, by the spend before an epoch, which reads every event
ingested since: all of a fresh store's. That took a scrape's whole ranking budget for one or two labels,
and the values of the others, not ranked yet, went to `__other__`. For Prometheus, a series holding the
whole spend appeared and vanished, and the per-project series appeared with their whole totals, which
`rate()` and `increase()` never count. A grown label still under the cap is now listed again in the
scrape that sees it grow, whatever ranking costs (exporter.label_ranks).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

LABELS = {
    "project": ("search", "chat", "billing", "support", "ads"),
    "model": ("gpt-4o", "gpt-4o-mini", "o3"),
    "service": ("api", "batch"),
    "user": ("ana", "bo", "cy"),
}
CALLS = 100_000
"""Enough that ranking the labels by their recent events took longer than a scrape's ranking budget here
(~0.09 s a label on SQLite at 100,000 events, against 0.15 s for all): fewer fit on a fast machine."""
BATCH = 2_000


def burst(prefix: str, calls: int, projects: tuple[str, ...]) -> list[list[dict[str, object]]]:
    """`calls` calls of $0.01 spread over every label's values, in batches as a client posts them."""
    now = time.time() - 5
    events = [
        {
            "request_id": f"{prefix}-{i}",
            "timestamp": now,
            "provider": "openai",
            "model": LABELS["model"][i % 3],
            "project": projects[i % len(projects)],
            "service": LABELS["service"][i % 2],
            "user": LABELS["user"][i % 3],
            "input_tokens": 100,
            "output_tokens": 10,
            "cost_usd": 0.01,
        }
        for i in range(calls)
    ]
    return [events[k : k + BATCH] for k in range(0, calls, BATCH)]


def cost_by(text: str) -> dict[str, dict[str, float]]:
    """`llm_cost_usd_total` summed per value of each label, as Prometheus parses the page."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.name != "llm_cost_usd":
            continue
        for sample in family.samples:
            for label in LABELS:
                sums[label][sample.labels[label]] += sample.value
    return {label: {value: round(usd, 6) for value, usd in per.items()} for label, per in sums.items()}


def test_a_fresh_servers_first_burst_shows_every_value_under_the_cap_from_the_first_scrape(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"budgets": {"items": []}, "metrics": {"extra_labels": ["user"]}}))
    server = LlmcostProcess(db_url, config=config).start(tmp_path)
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            assert cost_by(client.get("/metrics").text) == {}  # scraped before any call, as Prometheus does
            for body in burst("first", CALLS, LABELS["project"]):
                assert client.post("/v1/usage", json=body).status_code == 200
            first = cost_by(client.get("/metrics").text)
            for label, values in LABELS.items():
                assert set(first.get(label, {})) == set(values), (label, first.get(label))
            assert first["project"] == dict.fromkeys(LABELS["project"], CALLS * 0.01 / 5)

            # A sixth project in the next burst: its own series in the scrape that first sees it.
            projects = (*LABELS["project"], "reports")
            for body in burst("second", CALLS // 10, projects):
                assert client.post("/v1/usage", json=body).status_code == 200
            second = cost_by(client.get("/metrics").text)
            assert set(second["project"]) == set(projects), second["project"]
            assert round(sum(second["project"].values()), 6) == round(CALLS * 1.1 * 0.01, 6)
    finally:
        server.stop()
