"""Two teams' budget files on one store, each applied from CI: `--prune` from one deletes only its own.

The defect: the search team renamed a budget and ran `llmcost budgets apply --config search.yml --prune`
as the docs advised; it deleted every `config` budget search.yml did not declare, chat.yml's included,
so chat's hard cap stopped refusing. Its plan also listed each of chat's budgets as `keep NAME: ...
(pass --prune to delete it)`. And a file's identity was its absolute path, so the same file checked out
at another path in CI showed every budget as `taken over` once and could never prune what the first
checkout made. Real processes (`llmcost serve`, the CLI as a subprocess) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_budget_safety import cli
from tests.support.procs import LlmcostProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process

CHANGES = 4  # apply --detailed-exitcode: the file changes budgets
SEARCH: list[dict[str, Any]] = [
    {"name": "search-daily", "scope": "project", "key": "search", "period": "daily", "limit": 50},
    {"name": "search-monthly", "scope": "project", "key": "search", "period": "monthly", "limit": 900},
]
CHAT: list[dict[str, Any]] = [
    {"name": "chat-requests", "scope": "project", "key": "chat", "period": "total", "unit": "requests",
     "limit": 1, "mode": "hard"},
    {"name": "chat-daily", "scope": "project", "key": "chat", "period": "daily", "limit": 20},
]  # fmt: skip


def names(base: str) -> list[str]:
    return sorted(b["name"] for b in httpx.get(f"{base}/v1/budgets", timeout=10).json()["budgets"])


def chat_allowed(base: str) -> bool:
    return bool(httpx.post(f"{base}/v1/budgets/check", json={"project": "chat"}, timeout=10).json()["allowed"])


def test_prune_from_one_teams_file_deletes_only_the_budgets_that_file_made(db_url: str, tmp_path: Path) -> None:
    search, chat = tmp_path / "search.yml", tmp_path / "chat.yml"
    search.write_text(yaml.safe_dump({"budgets": SEARCH}))
    chat.write_text(yaml.safe_dump({"budgets": CHAT}))
    server = LlmcostProcess(db_url).start(tmp_path)

    def apply(file: Path, *flags: str) -> tuple[int, str]:
        done = cli("budgets", "apply", "--config", str(file), "--db", db_url, "--detailed-exitcode", *flags,
                   cwd=tmp_path)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    try:
        assert apply(search)[0] == CHANGES and apply(chat)[0] == CHANGES
        event = {"request_id": "c1", "provider": "openai", "model": "gpt-4o", "project": "chat", "cost_usd": 0.1}
        assert httpx.post(f"{server.base}/v1/usage", json=[event], timeout=10).json()["accepted"] == 1
        assert chat_allowed(server.base) is False  # chat's hard cap of one request refuses the next call

        renamed = [{**SEARCH[0], "name": "search-daily-usd"}, SEARCH[1]]
        search.write_text(yaml.safe_dump({"budgets": renamed}))
        status, out = apply(search, "--dry-run")
        assert status == CHANGES, out
        plan = [line for line in out.splitlines() if not line.startswith(("store:", str(search)))]
        assert plan == [  # chat's budgets are one line, not one `keep` each nudging towards --prune
            "+ create search-daily-usd: project search, daily, limit 50 usd, track",
            "  keep search-daily: this file made it and no longer declares it (pass --prune to delete it)",
            "  2 budgets of 1 other file untouched",
        ], out
        status, out = apply(search, "--dry-run", "--prune")
        assert "- delete search-daily\n" in out and "chat" not in out, out

        status, out = apply(search, "--prune")  # the rename in one run: the new name made, only the old deleted
        assert status == CHANGES and "1 to create, 0 to update, 1 to delete" in out, out
        assert names(server.base) == ["chat-daily", "chat-requests", "search-daily-usd", "search-monthly"]
        assert chat_allowed(server.base) is False  # chat's hard cap still refuses

        emptied = tmp_path / "emptied.yml"  # a third file with no budgets, pruned: nothing of anyone's to delete
        emptied.write_text(yaml.safe_dump({"budgets": []}))
        status, out = apply(emptied, "--prune")
        assert status == 0 and "4 budgets of 2 other files untouched" in out and "- delete" not in out, out
        assert len(names(server.base)) == 4
    finally:
        server.stop()


def test_a_budget_set_is_one_file_from_any_checkout_path_for_serve_and_apply(db_url: str, tmp_path: Path) -> None:
    first, second = tmp_path / "ci-run-1", tmp_path / "ci-run-2"
    first.mkdir()
    second.mkdir()
    (first / "search.yml").write_text(yaml.safe_dump({"budgets": SEARCH}))
    chat = tmp_path / "chat.yml"
    chat.write_text(yaml.safe_dump({"budgets": CHAT}))
    # `serve` applied the file before it declared a budget_set: its budgets are recorded under its path.
    server = LlmcostProcess(db_url, config=first / "search.yml").start(tmp_path)

    def apply(file: Path, *flags: str) -> tuple[int, str]:
        done = cli("budgets", "apply", "--config", str(file), "--db", db_url, "--detailed-exitcode", *flags,
                   cwd=tmp_path)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    try:
        assert names(server.base) == ["search-daily", "search-monthly"]
        assert apply(chat)[0] == CHANGES
        declared = {"budget_set": "search", "budgets": SEARCH}
        for checkout in (first, second):  # the same content at two paths
            (checkout / "search.yml").write_text(yaml.safe_dump(declared))
        # Adding the key adopts what this file made at its path: no `taken over`, nothing orphaned.
        status, out = apply(first / "search.yml")
        assert status == CHANGES and "taken over" not in out, out
        assert f"~ update search-daily: now recorded under this file's budget_set (was {first / 'search.yml'})" in out
        assert f"budget_set search ({first / 'search.yml'}): 0 to create, 2 to update" in out, out
        assert apply(first / "search.yml")[0] == 0

        status, out = apply(second / "search.yml", "--dry-run")  # another checkout: the same file, nothing to do
        assert status == 0 and "2 unchanged" in out and "taken over" not in out, out
        (second / "search.yml").write_text(yaml.safe_dump({"budget_set": "search", "budgets": SEARCH[1:]}))
        status, out = apply(second / "search.yml", "--prune")
        assert status == CHANGES and "- delete search-daily" in out and "2 budgets of 1 other file untouched" in out
        assert names(server.base) == ["chat-daily", "chat-requests", "search-monthly"]
        shown = cli("budgets", "show", "search-monthly", "--db", db_url, cwd=tmp_path)
        assert f'"origin_ref": "budget_set:search {first / "search.yml"}"' in shown.stdout, shown.stdout

        # The server started on the first path before the file named its set; a SIGHUP reads the set with
        # the budgets, and finds the file as CI's applies left it: nothing to create, update or delete.
        (first / "search.yml").write_text((second / "search.yml").read_text())
        assert server.proc is not None
        started = len(server.log())
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded from" in server.log()[started:], what="the reload", timeout=60)
        assert names(server.base) == ["chat-daily", "chat-requests", "search-monthly"]
        reload = server.log()[started:]
        assert "budgets from" not in reload, reload
        assert "applied at the next start" not in reload, reload  # budget_set took effect with the budgets
    finally:
        server.stop()
