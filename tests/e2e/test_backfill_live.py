"""A backfill as it happens in production, with real processes, on SQLite and PostgreSQL.

`llmcost serve` runs with spike detection on `[project]` (a pass a second) and has had ten minutes of
live traffic. Then two weeks of history for 60 tenants arrive, half over `POST /v1/usage`, half from
`llmcost ingest` in a second process, both oldest first, while live traffic goes on. Three tenants carry
a 5x spike over the last 30 minutes. At every detection pass, during and after the backfill, no normal
tenant fires; once everything is stored the spiked tenants fire within two passes. (Before the cache
re-read what other processes wrote, history loaded after the first pass stayed invisible for an hour and
normal tenants fired on a zero baseline.)
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from alerting.spikes.state import read_spike_state
from alerting.store import open_store
from tests.support.procs import LLMCOST, LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

DAY, BUCKET = 86400, 300
TENANTS = [f"t{i:02d}" for i in range(60)]
SPIKED = {"t07", "t33", "t52"}
OVER_HTTP = set(TENANTS[:30])  # the others come from the file
PASS_SECONDS = 1


def usual_usd(tenant: str) -> float:
    """Spend per 5 minutes, $0.05 … $0.50 across tenants."""
    return 0.05 + 0.45 * int(tenant[1:]) / (len(TENANTS) - 1)


def history(now: float, tenants: set[str], seed: int) -> list[dict[str, object]]:
    """Fourteen days up to `now`, one call per tenant per 5 minutes (±20 %), oldest first."""
    rng = random.Random(seed)
    start = int(now - 14 * DAY) // BUCKET * BUCKET
    events: list[dict[str, object]] = []
    for bucket in range(start, int(now) - BUCKET, BUCKET):
        for tenant in sorted(tenants):
            usd = usual_usd(tenant) * rng.uniform(0.8, 1.2)
            if tenant in SPIKED and bucket >= now - 30 * 60:
                usd *= 5
            events.append(
                {
                    "request_id": f"h-{tenant}-{bucket}",
                    "timestamp": bucket + rng.uniform(0, BUCKET - 1),
                    "provider": "openai",
                    "model": "gpt-4o",
                    "project": tenant,
                    "cost_usd": round(usd, 6),
                }
            )
    return events


class Passes:
    """Every detection pass the server makes, read from its persisted state (a read: changes nothing)."""

    def __init__(self, db_url: str) -> None:
        self.store = open_store(db_url)
        self.firing: dict[float, set[str]] = {}

    def poll(self) -> dict[float, set[str]]:
        """Note the latest pass; every pass noted so far."""
        states = [s for s in read_spike_state(self.store) if s.group == "project"]
        if states:
            self.firing[states[0].evaluated_at] = {s.labels["project"] for s in states if s.firing}
        return self.firing

    def after(self, t: float) -> list[set[str]]:
        return [self.firing[at] for at in sorted(self.firing) if at > t]


def test_backfill_over_http_and_from_a_second_process_pages_only_the_spiked_tenants(
    db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "llmcost.yml"
    config.write_text(yaml.safe_dump({"detection": {"interval_seconds": PASS_SECONDS, "series": [["project"]]}}))
    now = time.time()
    backlog = tmp_path / "history.jsonl"
    backlog.write_text("".join(json.dumps(e) + "\n" for e in history(now, set(TENANTS) - OVER_HTTP, seed=2)))
    over_http = history(now, OVER_HTTP, seed=1)

    server = LlmcostProcess(db_url, config=config).start(tmp_path)
    passes = Passes(db_url)
    stop = threading.Event()
    failures: list[str] = []

    def live() -> None:
        """Calls keep arriving at the current time while the history loads (spiked tenants still 5x)."""
        sent = now
        while not stop.wait(2.0):
            t = time.time()
            events = [
                {
                    "provider": "openai",
                    "model": "gpt-4o",
                    "project": tenant,
                    "timestamp": t,
                    "cost_usd": usual_usd(tenant) * (t - sent) / BUCKET * (5 if tenant in SPIKED else 1),
                }
                for tenant in TENANTS
            ]
            sent = t
            response = httpx.post(f"{server.base}/v1/usage", json=events, timeout=30)
            if response.status_code != 200:
                failures.append(response.text)

    def backfill_over_http() -> None:
        for k in range(0, len(over_http), 5000):
            response = httpx.post(f"{server.base}/v1/usage", json=over_http[k : k + 5000], timeout=60)
            if response.status_code != 200 or response.json()["rejected"]:
                failures.append(response.text[:500])

    try:
        # The server has been up for ten minutes of live traffic (and made a pass) before history arrives:
        # while it loads, oldest first, tenants have old days and the last minutes but not the hours between.
        recent = [e for e in over_http + history(now, set(TENANTS) - OVER_HTTP, seed=2) if e["timestamp"] >= now - 600]
        assert httpx.post(f"{server.base}/v1/usage", json=recent, timeout=60).status_code == 200
        threads = [threading.Thread(target=live)]
        threads[0].start()
        wait_until(passes.poll, timeout=30, interval=0.2, what="a detection pass")

        loader = subprocess.Popen(
            [*LLMCOST, "ingest", str(backlog), "--db", db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        http_loader = threading.Thread(target=backfill_over_http)
        http_loader.start()

        def loaders_done() -> bool:
            passes.poll()  # every pass made while the history loads is checked below
            return not http_loader.is_alive() and loader.poll() is not None

        wait_until(loaders_done, timeout=240, interval=0.2, what="the file and HTTP backfills finishing")
        http_loader.join()
        output = loader.communicate(timeout=60)[0].decode()
        assert loader.returncode == 0, output
        assert not failures, failures[:3]
        loaded = time.time()

        def passes_since_loaded() -> list[set[str]]:
            passes.poll()
            return passes.after(loaded)

        wait_until(
            lambda: len(passes_since_loaded()) >= 3,
            timeout=60,
            interval=0.2,
            what="three detection passes after the backfill (did they stop?)",
        )
        after = passes.after(loaded)

        # At every pass, during and after the backfill: only spiked tenants ever fire.
        false = {at: firing - SPIKED for at, firing in passes.firing.items() if firing - SPIKED}
        assert not false, f"normal tenants fired: {false}"
        # Once everything is stored, the spiked tenants fire within two passes.
        assert after[1] == SPIKED, after[:2]

        # And the gateway holds no other spike alert, firing or resolved.
        alerts = httpx.get(f"{server.base}/v1/alerts", timeout=10).json()
        spikes = {a["labels"]["project"] for a in alerts if a["alertname"] == "LLMCostSpike"}
        assert spikes == SPIKED
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        passes.store.close()
        server.stop()
