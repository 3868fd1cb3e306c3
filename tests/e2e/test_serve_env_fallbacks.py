"""`llmcost serve` reads `LLMCOST_CONFIG`, `LLMCOST_DB_URL` and `LLMCOST_LISTEN` when its flags are absent.

The contract names the three variables as the fallbacks of `--config`, `--db` and `--listen`: a server
started with no flags at all must take all three from the environment, and a flag given beside a variable
wins over it. Checked on real processes, as an outside checker starts them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.pg import free_port
from tests.support.procs import LLMCOST, wait_ready

pytestmark = pytest.mark.real_process


def _budget_config(path: Path, name: str) -> Path:
    path.write_text(yaml.safe_dump({"budgets": [{"name": name, "scope": "global", "period": "daily", "limit": 5}]}))
    return path


def _serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start `llmcost serve ARGV` with `env` and wait until it answers /readyz on `port`."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([*LLMCOST, "serve", *argv], stdout=out, stderr=subprocess.STDOUT, env=env)
    wait_ready(proc, f"http://127.0.0.1:{port}", lambda: log.read_text()[-2000:])
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _budget_names(port: int) -> list[str]:
    answer = httpx.get(f"http://127.0.0.1:{port}/v1/budgets", timeout=10)
    assert answer.status_code == 200, answer.text
    return [b["name"] for b in answer.json()["budgets"]]


def test_serve_takes_config_store_and_listen_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "env.db"
    env = {
        **os.environ,
        "LLMCOST_CONFIG": str(_budget_config(tmp_path / "env.yml", "from-env")),
        "LLMCOST_DB_URL": f"sqlite:///{store}",
        "LLMCOST_LISTEN": f"127.0.0.1:{port}",
    }
    proc = _serve([], env, port, tmp_path / "serve.log")
    try:
        assert _budget_names(port) == ["from-env"]
        assert store.exists()
    finally:
        _stop(proc)


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "flag.db"
    env = {
        **os.environ,
        # Each variable names something that would fail or differ: only the flags may be used.
        "LLMCOST_CONFIG": str(tmp_path / "missing.yml"),
        "LLMCOST_DB_URL": "not a database url",
        "LLMCOST_LISTEN": f"127.0.0.1:{free_port()}",
    }
    flags = ["--config", str(_budget_config(tmp_path / "flag.yml", "from-flag")), "--db", f"sqlite:///{store}"]
    proc = _serve([*flags, "--listen", f"127.0.0.1:{port}"], env, port, tmp_path / "serve.log")
    try:
        assert _budget_names(port) == ["from-flag"]
        assert store.exists()
    finally:
        _stop(proc)
