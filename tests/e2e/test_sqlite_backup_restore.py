"""A SQLite store backed up and restored with the commands docs/deployment.md gives, its newest writes included.

Defect: "Upgrading" said "take a backup first (above)", and above was PostgreSQL's `pg_dump` only. An
operator of the first release on SQLite stopped it (SIGTERM, which ended it without merging SQLite's
write-ahead log) and copied `llmcost.db`: a 4 KiB file with no tables, everything being in
`llmcost.db-wal`. A `kill -9` of today's llmcost leaves a store the same way, and is how this test makes one.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.assets.test_doc_snippets import snippets
from tests.support.helpers import total, usage_events
from tests.support.procs import LlmcostProcess

pytestmark = pytest.mark.real_process


def documented(marker: str) -> str:
    """The one shell block of docs/deployment.md that holds `marker`."""
    found = [s.body for s in snippets("sh") if s.where.startswith("docs/deployment.md") and marker in s.body]
    assert len(found) == 1, f"docs/deployment.md has {len(found)} sh blocks with {marker!r}"
    return found[0]


def run_documented(marker: str, cwd: Path) -> None:
    subprocess.run(["bash", "-euc", documented(marker)], cwd=cwd, check=True, timeout=60)


def requests_counted(server: LlmcostProcess) -> float:
    return total(httpx.get(f"{server.base}/metrics").text, "llm_requests_total")


def test_the_documented_backup_keeps_what_only_the_write_ahead_log_held_and_restores_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'llmcost.db'}"
    before = usage_events("before-backup", 20)
    server = LlmcostProcess(url).start(tmp_path)
    assert httpx.post(f"{server.base}/v1/usage", json=before).json()["accepted"] == 20
    server.kill9()
    assert (tmp_path / "llmcost.db-wal").stat().st_size > 0
    (tmp_path / "copied.db").write_bytes((tmp_path / "llmcost.db").read_bytes())  # what a plain `cp` gets
    with sqlite3.connect(tmp_path / "copied.db") as copied:
        assert copied.execute("SELECT count(*) FROM sqlite_master WHERE name = 'usage_events'").fetchone() == (0,)

    run_documented(".backup(", tmp_path)

    server = LlmcostProcess(url).start(tmp_path)  # life goes on after the backup
    try:
        assert httpx.post(f"{server.base}/v1/usage", json=usage_events("after-backup", 5)).json()["accepted"] == 5
        assert requests_counted(server) == 25
    finally:
        server.stop()

    run_documented("rm -f llmcost.db-wal", tmp_path)

    restored = LlmcostProcess(url).start(tmp_path)
    try:
        assert requests_counted(restored) == 20
        again = httpx.post(f"{restored.base}/v1/usage", json=before).json()
        assert (again["accepted"], again["duplicates"]) == (0, 20)
    finally:
        restored.stop()
