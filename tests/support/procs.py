"""Running real `llmcost` processes from the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.pg import free_port
from tests.support.waiting import wait_until

LLMCOST = [sys.executable, "-m", "llmcost"]
"""The `llmcost` command: this interpreter running the package, so the code under test (PYTHONPATH) runs."""


def children(pid: int) -> set[int]:
    """PIDs whose parent is `pid` (from /proc): the workers of a `serve --workers N` supervisor."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def wait_ready(proc: subprocess.Popen[bytes], base: str, log_tail: Callable[[], str]) -> None:
    """Wait until the `llmcost serve` at `base` answers /readyz with 200; if `proc` exits first, raise with its log."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"llmcost exited: {log_tail()}")
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, interval=0.1, what="/readyz answering 200")


class LlmcostProcess:
    """`llmcost serve` in a child process on a free loopback port."""

    def __init__(
        self,
        db_url: str,
        *,
        config: Path | None = None,
        role: str = "all",
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.db_url = db_url
        self.workers = workers
        self.config = config
        self.role = role
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> LlmcostProcess:
        """Start and wait until /readyz answers."""
        argv = [
            *LLMCOST,
            "serve",
            "--db",
            self.db_url,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--role",
            self.role,
        ]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        if self.workers != 1:
            argv += ["--workers", str(self.workers)]
        self.log_path = log_dir / f"llmcost-{self.port}-{int(time.time() * 1000)}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            wait_ready(self.proc, self.base, lambda: self.log()[-3000:])
        except AssertionError:
            raise RuntimeError(f"llmcost did not become ready: {self.log()[-3000:]}") from None
        return self

    def log(self) -> str:
        """What the process has written to stdout and stderr so far ("" before `start`)."""
        return self.log_path.read_text() if self.log_path is not None else ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown hooks run."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def serve_with_config(workdir: Path, config: dict[str, Any], port: int, cleanup: ExitStack) -> LlmcostProcess:
    """`llmcost serve` on `port` with `config` (written to workdir/llmcost.yml) and a SQLite store in `workdir`.

    Started and ready; `cleanup` stops it.
    """
    config_path = workdir / "llmcost.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    llmcost = LlmcostProcess(f"sqlite:///{workdir / 'llmcost.db'}", config=config_path)
    llmcost.port = port
    cleanup.callback(llmcost.stop)
    return llmcost.start(workdir)
