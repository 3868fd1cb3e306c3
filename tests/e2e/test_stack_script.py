"""`make stack` (scripts/stack.py) run for real: llmcost, Prometheus and Alertmanager on free loopback ports.

Each run uses `--interval 1` (1 s scrapes and rule evaluations instead of the shipped 30 s, so that
recording rules have data within seconds) and its own `--dir`; everything else is what `make stack` does.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import live_stack
from tests.support.monitoring_assets import REPO

pytestmark = pytest.mark.real_process

SCRIPT = REPO / "scripts" / "stack.py"


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], live_stack.Ports, Path]:
    ports = live_stack.Ports(*live_stack.free_ports(3))
    output = tmp_path / "stack.out"
    argv = [
        sys.executable,
        str(SCRIPT),
        "--dir",
        str(tmp_path / "stack"),
        "--interval",
        "1",
        f"--llmcost-port={ports.llmcost}",
        f"--prometheus-port={ports.prometheus}",
        f"--alertmanager-port={ports.alertmanager}",
        *args,
    ]
    with open(output, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, ports, output


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _prometheus_has_llmcost_data(ports: live_stack.Ports) -> bool:
    prometheus = ports.url("prometheus")
    found = live_stack.instant_query(prometheus, 'sum(llm_requests_total{job="llmcost"})')
    return bool(found) and float(found[0]["value"][1]) >= 8819 and live_stack.scraped(prometheus, "alertmanager")


def test_check_mode_proves_prometheus_has_llmcost_data_and_stops_everything(tmp_path: Path) -> None:
    proc, ports, output = _start(tmp_path, "--check", "--duration", "60")
    try:
        # Asserted here independently of the script's own check.
        has_data = live_stack.wait_until(lambda: _prometheus_has_llmcost_data(ports), timeout=60)
        assert has_data, output.read_text()
        proc.wait(timeout=80)
    finally:
        _stop(proc)
    text = output.read_text()
    assert proc.returncode == 0, text
    assert "check passed" in text
    assert "FAILED" not in text
    # `make stack` shows a budget alert of llmcost's in Alertmanager's own API.
    assert "check: ok     llmcost pushed its budget alerts to Alertmanager (GET /api/v2/alerts)" in text
    assert "'alertname': 'LLMBudgetExceeded'" in text and "'llmcost_origin': 'llmcost'" in text
    for _title, expr in live_stack.stack.EXAMPLES:
        after = text.split(f"\n{expr}\n", 1)[1]
        assert after.startswith("  ") and " => " in after.splitlines()[0], text
    assert not any(_listening(port) for port in vars(ports).values())


def test_runs_until_interrupted_then_stops_every_process(tmp_path: Path) -> None:
    proc, ports, output = _start(tmp_path, "--duration", "120")
    try:
        assert live_stack.wait_until(lambda: _prometheus_has_llmcost_data(ports), timeout=60), output.read_text()
        assert proc.poll() is None, output.read_text()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert time.monotonic() - started < 20
    finally:
        _stop(proc)
    text = output.read_text()
    assert proc.returncode == 0, text
    assert "PromQL to try" in text and "stopping" in text
    assert not any(_listening(port) for port in vars(ports).values())
    state = tmp_path / "stack"
    token = (state / "webhook_token").read_text().strip()
    assert len(token) == 64
    assert token not in (state / "alertmanager.yml").read_text()  # read from the file, never inlined
    assert str(state / "webhook_token") in (state / "alertmanager.yml").read_text()


def test_state_folder_is_never_wiped_unless_the_script_made_it(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="was not made by this script"):
        live_stack.stack.prepare_dir(folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    made = live_stack.stack.prepare_dir(tmp_path / "stack")
    (made / "llmcost.db").write_text("old run")
    live_stack.stack.prepare_dir(made)
    assert sorted(p.name for p in made.iterdir()) == [live_stack.stack.MARKER]
