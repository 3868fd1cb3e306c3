"""`__other__` must not flap between processes behind one scrape target (`serve --workers 2`, one store).

Defect: each process ranked a folded label's values (`metrics.max_series_per_label`) on a timer of its
own, so when a value climbed into the kept ones the processes switched at different scrapes. Through
one address, successive scrapes landed on one process or the other and `llm_cost_usd_total{project=
"__other__"}` went 126 -> 30 -> 126 -> 30: three counter resets for Prometheus in a minute. Now the kept
values are a function of the store and of an epoch aligned on wall time (exporter.label_ranks), so
every process switches at the same moment: the promotion drops `__other__` once, and never again.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import LlmcostProcess, children
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

REFRESH = 0.5  # metrics.rank_refresh_seconds: a promotion shows within 2-3 epochs


def spend(project: str, usd: float, rid: str) -> dict[str, object]:
    return {
        "request_id": rid,
        "timestamp": time.time() - 10,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1,
        "output_tokens": 1,
        "project": project,
        "cost_usd": usd,
    }


def cost_by_project(text: str) -> dict[str, float]:
    """`llm_cost_usd_total` per project, as Prometheus parses the page."""
    return {
        sample.labels["project"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "llm_cost_usd"
        for sample in family.samples
        if sample.name == "llm_cost_usd_total"
    }


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_promotion_switches_every_worker_at_once(tmp_path: Path, store: str, request) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "pg_url")
    config = tmp_path / "llmcost.yml"
    config.write_text(
        yaml.safe_dump(
            {"budgets": {"items": []}, "metrics": {"max_series_per_label": 3, "rank_refresh_seconds": REFRESH}}
        )
    )
    server = LlmcostProcess(url, workers=2, config=config).start(tmp_path)
    try:
        wait_until(lambda: len(children(server.proc.pid)) == 2, timeout=10, what="two workers")  # type: ignore[union-attr]
        # Five projects, three series a label: the two highest-cost are kept, c + d + e are `__other__`.
        body = [spend(p, usd, f"seed-{p}") for p, usd in (("a", 100), ("b", 50), ("c", 30), ("d", 10), ("e", 5))]
        assert httpx.post(f"{server.base}/v1/usage", json=body, timeout=30).status_code == 200

        def scrape() -> dict[str, float]:
            # A fresh connection each time, so the kernel hands scrapes to either worker.
            return cost_by_project(httpx.get(f"{server.base}/metrics", timeout=30).text)

        wait_until(lambda: set(scrape()) == {"a", "b", "__other__"}, timeout=15, what="a and b kept")
        # `d` climbs above `a`: it is promoted, `b` is folded.
        assert httpx.post(f"{server.base}/v1/usage", json=[spend("d", 200, "climb")], timeout=30).status_code == 200
        seen: list[dict[str, float]] = []
        promoted_at: float | None = None
        deadline = time.monotonic() + 30
        # Scrape as Prometheus would, only faster: until 6 epochs after the first scrape that showed the promotion.
        while promoted_at is None or time.monotonic() < promoted_at + 6 * REFRESH:
            assert time.monotonic() < deadline, f"never promoted: {seen[-1]}"
            seen.append(scrape())
            if promoted_at is None and "d" in seen[-1]:
                promoted_at = time.monotonic()
    finally:
        server.stop()

    folds = [frozenset(page) for page in seen]
    switches = [i for i in range(1, len(folds)) if folds[i] != folds[i - 1]]
    assert folds[0] == {"a", "b", "__other__"} and folds[-1] == {"a", "d", "__other__"}, (folds[0], folds[-1])
    # One switch, shared by both workers: never back to the old fold after a scrape showed the new one.
    assert len(switches) == 1, [(i, sorted(folds[i])) for i in switches]
    for i in range(1, len(seen)):
        if i in switches:
            continue
        drops = {p: (seen[i - 1][p], v) for p, v in seen[i].items() if v < seen[i - 1][p]}
        assert not drops, f"scrape {i}: counters went down (resets for Prometheus): {drops}"
    # Totals stay exact through `__other__` on either side of the switch.
    assert {round(sum(page.values()), 6) for page in seen} == {395.0}
