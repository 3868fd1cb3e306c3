"""The demo keeps its budgets in its store like any server: `llmcost budgets list --db <demo store>` shows them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from exporter.demo import DEMO_CONFIG
from tests.support.pg import free_port
from tests.support.procs import LLMCOST
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


def test_budgets_list_on_the_demo_store_shows_the_demo_budgets(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = subprocess.Popen(
        [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}", "--db", db, "--duration", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    names = sorted(b["name"] for b in DEMO_CONFIG["budgets"])
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/v1/budgets/daily-total", timeout=2).status_code == 200,
            timeout=60,
            interval=0.2,
            ignoring=(httpx.HTTPError,),
            what="the demo's budgets served",
        )
        for _ in range(2):  # twice: reading the store changes nothing
            listed = subprocess.run(
                [*LLMCOST, "budgets", "list", "--db", db], capture_output=True, text=True, timeout=60, cwd=tmp_path
            )
            assert listed.returncode == 0, listed.stderr
            assert f"store: {db}" in listed.stderr
            for name in names:
                assert name in listed.stdout, listed.stdout
            assert "origin" in listed.stdout.splitlines()[0] and " config" in listed.stdout
        for name in names:
            assert httpx.get(f"http://127.0.0.1:{port}/v1/budgets/{name}", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
