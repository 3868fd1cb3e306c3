"""`llmcost demo`: the README's main job, run as a newcomer runs it (a real process, loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import total
from tests.support.paths import REPO
from tests.support.pg import free_port
from tests.support.procs import LLMCOST
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real_process


def test_demo_replays_the_bundled_trace_and_serves_metrics() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def replayed() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            return text if total(text, "llm_requests_total") >= 8819 else None

        text = wait_until(
            replayed, timeout=20, interval=0.3, ignoring=(httpx.HTTPError,), what="the whole trace replayed"
        )
        assert total(text, "llm_cost_usd_total") > 1.0
        assert total(text, "llm_unpriced_requests_total", provider="self-hosted") > 0
        assert total(text, "llm_tokens_total", token_type="cache_read") > 0
        assert 'href="/metrics"' in httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "Replaying 8,819 real calls" in out
    assert "CC-BY-4.0" in out
    assert f"http://127.0.0.1:{port}/metrics" in out


def test_demo_says_plainly_what_to_do_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}", "--duration", "5"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
    assert done.returncode == 2
    assert done.stdout == ""  # nothing printed (and nothing created) before the address was bound
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert f"make demo LISTEN=127.0.0.1:{port + 1}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("llmcost-demo-*"))


@pytest.mark.parametrize("keep", [False, True])
def test_demo_prints_the_console_first_and_removes_its_store_unless_kept(tmp_path: Path, keep: bool) -> None:
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "LLMCOST_LISTEN": f"127.0.0.1:{port}"}
    done = subprocess.run(
        [*LLMCOST, "demo", "--duration", "1", *(["--keep"] if keep else [])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"llmcost demo console: http://127.0.0.1:{port}/"
    stores = list(tmp_path.glob("llmcost-demo-*/llmcost-demo.db"))
    if keep:
        assert len(stores) == 1 and "Kept the demo store" in done.stdout
    else:
        assert not list(tmp_path.glob("llmcost-demo-*"))


def test_make_demo_takes_the_address() -> None:
    plan = subprocess.run(
        ["make", "-n", "-C", str(REPO), "demo", "LISTEN=127.0.0.1:9900"], capture_output=True, text=True, check=True
    ).stdout
    assert "llmcost demo --listen 127.0.0.1:9900" in plan


def test_a_terminated_demo_removes_its_store(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*LLMCOST, "demo", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
            timeout=60,
            interval=0.1,
            ignoring=(httpx.HTTPError,),
            what="/readyz answering 200",
        )
        assert list(tmp_path.glob("llmcost-demo-*"))
    finally:
        proc.terminate()  # SIGTERM, as a service manager stops it
        assert proc.wait(timeout=30) == 0
    assert not list(tmp_path.glob("llmcost-demo-*"))
