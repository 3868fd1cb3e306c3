"""The finance partner's month end: every surface gives the month's figures, and they agree to the cent.

A real `llmcost serve` records calls around the month's edges in Los Angeles (midnight exactly, a
second before, the DST change inside November); the real `llmcost report`, `llmcost reprice` and the
console over HTTP are read as a user reads them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.llmcost_server import INGEST_TOKEN, write_config
from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

LA = "America/Los_Angeles"
SELF_HOSTED = {"provider": "self-hosted", "model": "llama-internal"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlmcostProcess]:
    config = write_config(
        tmp_path,
        budgets=[
            {"name": "per-project", "scope": "project", "key": "*", "period": "monthly", "limit": 1000, "timezone": LA}
        ],
    )
    process = LlmcostProcess(f"sqlite:///{tmp_path / 'llmcost.db'}", config=config).start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def ingest(server: LlmcostProcess, events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{server.base}/v1/usage", json=events, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30
    )
    response.raise_for_status()
    assert response.json()["accepted"] == len(events), response.text


def llmcost(server: LlmcostProcess, *argv: str) -> str:
    done = subprocess.run(
        [*LLMCOST, *argv, "--db", server.db_url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def reprice_with(server: LlmcostProcess, tmp_path: Path, input_per_mtok: float, *argv: str) -> None:
    """`llmcost reprice` in its own process, with an override file pricing the self-hosted model."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        yaml.safe_dump({"prices": [{**SELF_HOSTED, "input_per_mtok": input_per_mtok, "output_per_mtok": 0}]})
    )
    config = tmp_path / "reprice.yml"
    config.write_text(yaml.safe_dump({"pricing": {"overrides_file": str(prices)}}))
    llmcost(server, "reprice", "--config", str(config), *argv)


def console_figure(server: LlmcostProcess, kind: str) -> str:
    """The exact dollars the console puts beside a figure of its Now section (`data-usd`)."""
    page = httpx.get(f"{server.base}/", timeout=30).text
    found = re.search(rf'class="figure {kind}"[^>]* data-usd="([0-9.]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def test_the_consoles_all_time_spend_counts_what_reprice_corrected(server: LlmcostProcess, tmp_path: Path) -> None:
    # Three self-hosted calls recorded before the model had a price: $0, then priced by `llmcost reprice`
    # at $1.25 per million input tokens, 1M tokens each. The report and the summary said $3.75 and the
    # console's all-time figure still said $0.00 (it summed the counters as first recorded).
    ingest(
        server,
        [
            {"request_id": f"r{i}", **SELF_HOSTED, "input_tokens": 1_000_000, "output_tokens": 0, "project": "search"}
            for i in range(3)
        ],
    )
    reprice_with(server, tmp_path, 1.25, "--since", "1d")
    report = json.loads(llmcost(server, "report", "--period", "all", "--format", "json", "--no-hints"))
    assert report["total_cost_usd"] == 3.75
    assert console_figure(server, "alltime") == "3.750000000"


def test_report_csv_writes_every_cost_as_a_plain_decimal(server: LlmcostProcess) -> None:
    # gpt-4o-mini at $0.15 / $0.60 per million tokens: 100 input and 10 output tokens cost $0.000021,
    # which the CSV wrote as 2.1e-05, a figure some finance imports refuse.
    mini = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10}
    ingest(server, [{"request_id": "small", **mini, "project": "tiny"}, {"request_id": "big", **mini, "project": "a"}])
    ingest(server, [{"request_id": f"more-{i}", **mini, "project": "a"} for i in range(9)])
    out = llmcost(server, "report", "--period", "all", "--by", "project", "--format", "csv", "--no-hints")
    rows = {row["project"]: row for row in csv.DictReader(io.StringIO(out))}
    assert rows["tiny"]["cost_usd"] == "0.000021"
    assert rows["a"]["cost_usd"] == "0.00021"
    assert "e-" not in out
