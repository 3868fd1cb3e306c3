"""`llmcost budgets` mistakes as a person meets them in a real process: one-line errors, no tracebacks,
nothing changed; and a key "*" budget listed as soon as it is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_budget_safety import cli

pytestmark = pytest.mark.real_process


def errors(stderr: str) -> list[str]:
    """Standard error without the `store: …` line every command prints."""
    return [line for line in stderr.splitlines() if not line.startswith("store: ")]


def test_budget_cli_mistakes_are_one_line_and_change_nothing(sqlite_url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text("")
    assert cli("ingest", str(calls), "--db", sqlite_url, cwd=tmp_path).returncode == 0  # makes the store
    db = ["--db", sqlite_url]
    created = cli("budgets", "create", "per-proj", "--scope", "project", "--key", "*", "--period", "daily",
                  "--limit", "1", *db, cwd=tmp_path)  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = cli("budgets", "list", *db, cwd=tmp_path)
    assert listed.returncode == 0 and "no budgets in this store" not in listed.stdout
    assert any(line.split()[:2] == ["per-proj", "*"] for line in listed.stdout.splitlines())
    rows = json.loads(cli("budgets", "list", "--format", "json", *db, cwd=tmp_path).stdout)["budgets"]
    assert [(b["name"], b["key"], b["origin"]) for b in rows] == [("per-proj", "*", "cli")]

    bad_json = cli("budgets", "create", "t", "--json", "notjson", *db, cwd=tmp_path)
    assert bad_json.returncode == 2 and "Traceback" not in bad_json.stderr
    assert len(errors(bad_json.stderr)) == 1 and "--json is not valid JSON" in bad_json.stderr
    no_key = cli("budgets", "reset", "per-proj", "--by", "carol", "--reason", "why", *db, cwd=tmp_path)
    assert no_key.returncode == 2 and len(errors(no_key.stderr)) == 1 and "--key '*'" in no_key.stderr
    no_who = cli("budgets", "reset", "per-proj", "--key", "*", *db, cwd=tmp_path)
    assert no_who.returncode == 2 and "--by NAME --reason TEXT" in no_who.stderr
    global_key = cli("budgets", "create", "forgot", "--key", "search", "--period", "daily", "--limit", "5", *db,
                     cwd=tmp_path)  # fmt: skip
    assert global_key.returncode == 1 and "key: given but scope is global" in global_key.stderr
    shown = json.loads(cli("budgets", "show", "per-proj", *db, cwd=tmp_path).stdout)
    assert shown["resets"] == []
    names = [
        b["name"] for b in json.loads(cli("budgets", "list", "--format", "json", *db, cwd=tmp_path).stdout)["budgets"]
    ]
    assert names == ["per-proj"]
