"""The finance partner's month end: every surface gives the month's figures, and they agree to the cent.

A real `llmcost serve` records calls around the month's edges in Los Angeles (midnight exactly, a
second before, the DST change inside November, a retry stamped in the next month); the real `llmcost
report`, `llmcost reprice`, `/v1/usage/summary` and the console are read over HTTP and the command line
as a user reads them.
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

from tests.support.llmcost_server import ADMIN_TOKEN, INGEST_TOKEN, ingest, running_llmcost
from tests.support.procs import LLMCOST, LlmcostProcess

pytestmark = pytest.mark.real_process

LA = "America/Los_Angeles"
SELF_HOSTED = {"provider": "self-hosted", "model": "llama-internal"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlmcostProcess]:
    with running_llmcost(tmp_path, f"sqlite:///{tmp_path / 'llmcost.db'}") as process:
        yield process


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


def console_unpriced(server: LlmcostProcess) -> tuple[int, int] | None:
    """The console's unpriced calls now and, when they differ, those that arrived unpriced; None: no card."""
    page = httpx.get(f"{server.base}/", timeout=30).text
    now = re.search(r'class="figure unpriced" data-count="([0-9]+)"', page)
    if now is None:
        return None
    arrived = re.search(r'class="unpriced-arrived" data-count="([0-9]+)"', page)
    return int(now.group(1)), int(arrived.group(1)) if arrived else int(now.group(1))


def test_the_consoles_unpriced_calls_are_those_unpriced_now(server: LlmcostProcess, tmp_path: Path) -> None:
    # Calls of two models without a price; `llmcost reprice` then prices the self-hosted one. The report
    # said 0 unpriced calls of it, and the console still showed all five as unpriced (it counted the
    # calls that arrived without a price), so a finance user could not tell what the price file lacked.
    other = {"provider": "self-hosted", "model": "mistral-internal"}
    calls = [{**SELF_HOSTED, "input_tokens": 1_000_000, "output_tokens": 0, "project": "search"}] * 3
    calls += [{**other, "input_tokens": 10, "output_tokens": 0, "project": "search"}] * 2
    ingest(server, [{"request_id": f"r{i}", **call} for i, call in enumerate(calls)])
    assert console_unpriced(server) == (5, 5)
    reprice_with(server, tmp_path, 1.25, "--since", "1d")
    report = json.loads(llmcost(server, "report", "--period", "all", "--by", "model", "--format", "json"))
    assert {r["model"]: r["unpriced_requests"] for r in report["rows"]} == {"llama-internal": 0, "mistral-internal": 2}
    assert console_unpriced(server) == (2, 5)  # what is unpriced now, and what arrived so
    metrics = httpx.get(f"{server.base}/metrics", timeout=30).text
    assert 'llm_unpriced_requests_total{model="llama-internal",provider="self-hosted"} 3' in metrics  # a counter


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


def edge_call(request_id: str, when: str, cost: float, project: str = "search") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "timestamp": when,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 1,
        "cost_usd": cost,
        "project": project,
    }


def test_last_month_in_los_angeles_counts_its_calls_from_midnight_to_midnight(server: LlmcostProcess) -> None:
    # November 2026 in Los Angeles: 2026-11-01T07:00Z (PDT) to 2026-12-01T08:00Z (PST), with the clocks
    # going back at 2026-11-01T09:00Z, so 01:30 happens twice. `--period last-month` was UTC's November
    # only, so the finance partner's report counted $1,000 of October's last hour and missed November's
    # last eight hours, while a monthly budget in that zone (and the console) counted Los Angeles' month.
    ingest(
        server,
        [
            edge_call("oct-last-second", "2026-11-01T06:59:59Z", 1000.0),
            edge_call("nov-midnight", "2026-11-01T00:00:00-07:00", 1.0),
            edge_call("nov-first-0130", "2026-11-01T01:30:00-07:00", 2.0),
            edge_call("nov-second-0130", "2026-11-01T01:30:00-08:00", 4.0, project="chat"),
            edge_call("nov-last-second", "2026-11-30T23:59:59-08:00", 8.0, project="chat"),
            edge_call("dec-midnight", "2026-12-01T00:00:00-08:00", 1000.0),
        ],
    )
    # A retry of a November call, stamped by the client a second later, in December: one call, November's.
    response = httpx.post(
        f"{server.base}/v1/usage",
        json=[edge_call("nov-last-second", "2026-12-01T00:00:00-08:00", 8.0, project="chat")],
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        timeout=30,
    )
    assert response.json()["duplicates"] == 1
    argv = ["report", "--period", "last-month", "--until", "2026-12-07T12:00:00Z", "--timezone", LA, "--no-hints"]
    report = json.loads(llmcost(server, *argv, "--by", "project", "--format", "json"))
    assert (report["since"], report["until"]) == (at("2026-11-01T07:00:00+00:00"), at("2026-12-01T08:00:00+00:00"))
    assert {row["project"]: row["cost_usd"] for row in report["rows"]} == {"chat": 12.0, "search": 3.0}
    assert report["total_cost_usd"] == 15.0
    table = llmcost(server, *argv, "--by", "project")
    assert "2026-11-01T00:00:00-07:00 .. 2026-12-01T00:00:00-08:00, by project (America/Los_Angeles)" in table
    # The same bounds typed as dates in the zone, and /v1/usage/summary asked with the report's bounds.
    same = json.loads(
        llmcost(
            server, "report", "--since", "2026-11-01", "--until", "2026-12-01", "--timezone", LA, "--format", "json"
        )
    )
    assert same["total_cost_usd"] == 15.0
    summary = httpx.get(
        f"{server.base}/v1/usage/summary",
        params={"by": "project", "since": "2026-11-01T00:00:00-07:00", "until": "2026-12-01T00:00:00-08:00"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    ).json()
    assert {row["project"]: row["cost_usd"] for row in summary["rows"]} == {"chat": 12.0, "search": 3.0}
    # Dates in the zone, as the report takes them with --timezone (they were UTC midnights only).
    summary = httpx.get(
        f"{server.base}/v1/usage/summary",
        params={"by": "project", "since": "2026-11-01", "until": "2026-12-01", "timezone": LA},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    ).json()
    assert (summary["since"], summary["until"]) == (report["since"], report["until"])
    assert summary["total_cost_usd"] == 15.0
    refused = httpx.get(
        f"{server.base}/v1/usage/summary",
        params={"since": "2026-11-01", "timezone": "America/Los_Angles"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert refused.status_code == 422
    assert "timezone: unknown timezone 'America/Los_Angles'" in refused.text


def test_an_unknown_report_timezone_is_refused_naming_the_option(server: LlmcostProcess) -> None:
    done = subprocess.run(
        [*LLMCOST, "report", "--period", "last-month", "--timezone", "America/Los_Angles", "--db", server.db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--timezone: unknown timezone 'America/Los_Angles'" in done.stderr
