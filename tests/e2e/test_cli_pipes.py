"""`llmcost … | head`: a reader that goes away ends the command quietly, as it ends `cat` or `grep`.

Defect: `llmcost budgets show NAME | head` (and `budgets list`, `alerts list`, `report` into `head` or a
pager quit early) printed a BrokenPipeError traceback, or "Exception ignored … BrokenPipeError" at exit.
Now the command stops without a word on stderr, with the status a shell reports for SIGPIPE (141).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.budgets import DAILY, build
from tests.support.clock import FakeClock
from tests.support.procs import LLMCOST

pytestmark = pytest.mark.real_process


@pytest.fixture
def store(sqlite_url: str) -> str:
    clock = FakeClock()
    clock.set(time.time())
    services, _, _ = build(sqlite_url, [DAILY], clock)
    services.close()
    return sqlite_url


@pytest.mark.parametrize(
    "argv",
    [
        ["budgets", "show", "daily"],
        ["budgets", "list"],
        ["budgets", "list", "--format", "json"],
        ["alerts", "list"],
        ["report", "--format", "json"],
        ["report"],
    ],
)
def test_a_reader_gone_ends_the_command_without_a_traceback(store: str, tmp_path: Path, argv: list[str]) -> None:
    proc = subprocess.Popen(
        [*LLMCOST, *argv, "--db", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `head` read what it wanted (here: nothing) and exited before the command wrote
    try:
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141, (code, err)


def test_head_reads_the_first_lines_and_the_command_ends_quietly(store: str, tmp_path: Path) -> None:
    shown = subprocess.run(
        f"{' '.join(LLMCOST)} budgets show daily --db '{store}' | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 2, shown
    assert "Traceback" not in shown.stderr and "BrokenPipe" not in shown.stderr, shown.stderr
