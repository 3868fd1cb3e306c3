"""The stack's servers: child processes serving HTTP on loopback, started, awaited until ready, stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

import httpx


def binary(*names: str) -> str:
    """The first of `names` found on PATH (Debian calls Alertmanager `prometheus-alertmanager`)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise RuntimeError(
        f"{' or '.join(names)} not found on PATH (Debian: apt-get install prometheus prometheus-alertmanager)"
    )


def llmcost_binary() -> str:
    """The `llmcost` entry point of the running interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("llmcost")
    return str(beside) if beside.exists() else binary("llmcost")


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """A child process serving HTTP on loopback: started, awaited until `ready_url` answers 200, stopped."""

    def __init__(self, name: str, argv: Sequence[str], ready_url: str, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_url = ready_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait until it is ready; raises with the log's tail if it is not."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it hangs; safe to call twice and on a process that never started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def prometheus_server(config: Path, data: Path, port: int, log: Path) -> Server:
    """Prometheus on 127.0.0.1:port with this config and TSDB folder."""
    argv = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Server("prometheus", argv, f"http://127.0.0.1:{port}/-/ready", log)


def alertmanager_server(config: Path, data: Path, port: int, log: Path) -> Server:
    """Alertmanager on 127.0.0.1:port, with HA clustering off (it would listen on 0.0.0.0:9094)."""
    argv = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Server("alertmanager", argv, f"http://127.0.0.1:{port}/-/ready", log)


def llmcost_server(config: Path, db_url: str, port: int, log: Path) -> Server:
    """`llmcost serve` on 127.0.0.1:port."""
    argv = [llmcost_binary(), "serve", "--config", str(config), "--db", db_url, "--listen", f"127.0.0.1:{port}"]
    return Server("llmcost", argv, f"http://127.0.0.1:{port}/readyz", log)
