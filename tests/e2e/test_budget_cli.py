"""`llmcost budgets create|update|reset|delete|show` as a person runs them (real processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_budget_safety import cli
from tests.support.wall_clock import stamp_in_period

pytestmark = pytest.mark.real_process


def show(name: str, db: str, cwd: Path) -> dict:  # type: ignore[type-arg]
    done = cli("budgets", "show", name, "--db", db, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.within_period("daily", 60)
def test_budget_lifecycle_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        "\n".join(
            json.dumps(
                {
                    "request_id": f"c{i}",
                    # Earlier today, also from 00:00 to 00:01 UTC (a minute back is yesterday then).
                    "timestamp": stamp_in_period(60 - i, "daily"),
                    "provider": "openai",
                    "model": "gpt-4o",
                    "project": "search",
                    "cost_usd": 1.5,
                }
            )
            for i in range(4)
        )
    )
    assert cli("ingest", str(calls), "--db", db_url, cwd=tmp_path).returncode == 0
    bad = cli("budgets", "create", "x", "--scope", "project", "--period", "fortnightly", "--db", db_url, cwd=tmp_path)
    assert bad.returncode != 0
    created = cli("budgets", "create", "search-daily", "--scope", "project", "--key", "search", "--period", "daily",
                  "--limit", "10", "--mode", "hard", "--max-cost-per-request", "2", "--fallback-model", "gpt-4o-mini",
                  "--by", "dana", "--db", db_url, cwd=tmp_path)  # fmt: skip
    assert created.returncode == 0, created.stderr
    body = show("search-daily", db_url, tmp_path)
    assert body["origin"] == "cli" and body["updated_by"] == "dana"
    assert body["spent"] == 6.0  # counts what was already spent this period
    assert body["definition"]["fallback_model"] == "gpt-4o-mini" and body["definition"]["max_cost_per_request"] == 2
    again = cli("budgets", "create", "search-daily", "--scope", "global", "--period", "daily", "--limit", "1",
                "--db", db_url, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr
    reset = cli("budgets", "reset", "search-daily", "--by", "carol", "--reason", "quota raised", "--db", db_url,
                cwd=tmp_path)  # fmt: skip
    assert reset.returncode == 0 and "reset by carol" in reset.stdout and "$6.00 spent" in reset.stdout
    body = show("search-daily", db_url, tmp_path)
    assert body["spent"] == 0 and body["reset_at"] is not None
    assert body["resets"][0]["reset_by"] == "carol" and body["resets"][0]["cost_usd"] == 6.0
    assert cli("budgets", "update", "search-daily", "--limit", "20", "--db", db_url, cwd=tmp_path).returncode == 0
    body = show("search-daily", db_url, tmp_path)
    assert body["limit"] == 20 and body["mode"] == "hard" and body["spent"] == 0  # the reset stands
    listed = cli("budgets", "list", "--format", "json", "--db", db_url, cwd=tmp_path)
    assert [b["origin"] for b in json.loads(listed.stdout)["budgets"]] == ["cli"]
    assert cli("budgets", "delete", "search-daily", "--db", db_url, cwd=tmp_path).returncode == 0
    gone = cli("budgets", "show", "search-daily", "--db", db_url, cwd=tmp_path)
    assert gone.returncode == 1 and "no budget named 'search-daily'" in gone.stderr
