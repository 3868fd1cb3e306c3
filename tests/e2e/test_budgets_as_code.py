"""A platform team's budgets as code: one file of 50 budgets applied from CI with `llmcost budgets apply`.

A CI job needs the exit status alone to tell "changes pending" from "no change" from an error: before
`--detailed-exitcode`, `apply --dry-run` exited 0 whether the file changed 3 budgets or none, so a pull
request's plan job could not flag a pending change. Real processes (`llmcost serve` and the CLI as a
subprocess) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_budget_safety import cli
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process

TEAMS: list[dict[str, Any]] = [
    {"name": f"team{i:02d}-monthly", "scope": "project", "key": f"team{i:02d}", "period": "monthly", "limit": 100 + i}
    for i in range(50)
]
CHANGES = 4  # the documented status of --detailed-exitcode for "the file changes budgets"


def stored(base: str) -> dict[str, Any]:
    return {b["name"]: b for b in httpx.get(f"{base}/v1/budgets", timeout=10).json()["budgets"]}


def test_a_ci_job_tells_pending_changes_from_no_change_and_from_errors(db_url: str, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yml"
    server = LlmcostProcess(db_url).start(tmp_path)
    try:

        def apply(*flags: str) -> tuple[int, str]:
            done = cli("budgets", "apply", "--config", str(budgets), "--db", db_url, "--detailed-exitcode", *flags,
                       cwd=tmp_path)  # fmt: skip
            return done.returncode, done.stdout + done.stderr

        budgets.write_text(yaml.safe_dump({"budgets": TEAMS}))
        status, out = apply("--dry-run")
        assert (status, stored(server.base)) == (CHANGES, {}), out  # the plan of a pull request: pending, nothing made
        assert out.count("+ create team") == 50, out
        status, out = apply()
        assert status == CHANGES and "50 to create" in out, out
        assert len(stored(server.base)) == 50
        for flags in (("--dry-run",), ()):  # re-applied unchanged: nothing to change, and it says so
            status, out = apply(*flags)
            assert status == 0 and "50 unchanged" in out and "(nothing to change)" in out, out

        changed = [dict(b) for b in TEAMS]
        changed[3]["limit"], changed[10]["mode"], changed[20]["timezone"] = 999, "hard", "Europe/Paris"
        budgets.write_text(yaml.safe_dump({"budgets": changed}))
        status, out = apply("--dry-run")
        assert status == CHANGES, out
        assert [line for line in out.splitlines() if line.startswith("~")] == [
            "~ update team03-monthly: limit 103.0 -> 999.0",
            "~ update team10-monthly: mode 'track' -> 'hard'",
            "~ update team20-monthly: timezone 'UTC' -> 'Europe/Paris'",
        ], out
        assert stored(server.base)["team03-monthly"]["limit"] == 103.0  # a dry run changes nothing
        assert apply()[0] == CHANGES and apply()[0] == 0
        assert stored(server.base)["team03-monthly"]["limit"] == 999.0

        bad = [dict(b) for b in changed]
        bad[5]["limit"], bad[17]["period"], bad[30]["scope"] = -1, "fortnightly", "team"
        bad[0]["limit"] = 1  # a good entry's change: refused with the file, which is applied whole or not at all
        budgets.write_text(yaml.safe_dump({"budgets": bad}))
        status, out = apply()
        assert status == 2, out
        for problem in ("budgets[5].limit", "budgets[17].period", "budgets[30].scope"):
            assert problem in out, out
        assert stored(server.base)["team00-monthly"]["limit"] == 100.0

        clash = httpx.put(f"{server.base}/v1/budgets/team00-monthly", json={"period": "daily", "limit": 1}, timeout=10)
        assert clash.status_code == 409  # the file owns its names: the API cannot take one over
        api = httpx.put(f"{server.base}/v1/budgets/ops", json={"period": "daily", "limit": 5}, timeout=10)
        assert api.status_code == 200
        changed[1]["limit"] = 50
        budgets.write_text(yaml.safe_dump({"budgets": [*changed, {"name": "ops", "period": "daily", "limit": 6}]}))
        status, out = apply("--dry-run")
        assert status == 1 and "! conflict ops" in out, out  # an error outranks the changes it would make

        # Another team's file declaring one of these names: each apply would silently undo the other's.
        other = tmp_path / "other-team.yml"
        other.write_text(yaml.safe_dump({"budgets": [{**TEAMS[1], "limit": 7}]}))
        done = cli("budgets", "apply", "--config", str(other), "--dry-run", "--db", db_url, cwd=tmp_path)
        assert f"~ update team01-monthly: limit 101.0 -> 7.0, taken over from {budgets}" in done.stdout, done.stdout
    finally:
        server.stop()
