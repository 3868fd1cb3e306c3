"""`llmcost serve --workers N`: N server processes sharing one listening socket.

One Python process runs on one core at a time (the GIL). The store, the counters, the budget spend, the
gateway's dedup and outbox, and the scheduler's leader lease all live in the database and were built for
several processes on one store, so the supervisor only has to fork workers that each build their own
services and accept connections from the same socket (the kernel spreads the connections).

The supervisor itself holds no database connection and starts no thread: it binds the socket, migrates
the store once, forks the workers, forwards SIGTERM/SIGINT (stop; it closes its own copy of the listening
socket first, so new connections are refused while the workers finish their requests) and SIGHUP
(reload the budgets) to them, and starts a new worker when one dies, with a growing pause if they keep
dying (store down at start-up, say).

Why not uvicorn's own `Multiprocess` supervisor (uvicorn 0.55): it starts workers with the `spawn`
method, so each worker imports the whole application again (0.7–0.8 s of imports measured here for the
server, services and alerting modules, per worker and per respawn) and migrates nothing first; and it
treats SIGHUP as "restart every worker", dropping in-flight requests, where llmcost's SIGHUP means
"reload the budgets from the config file" in place. Forking after the one migration keeps both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from exporter.server import parse_listen

log = logging.getLogger(__name__)

RESPAWN_PAUSE_MAX = 30.0
STABLE_SECONDS = 10.0  # a worker that lived this long resets the respawn pause


def bind(listen: str) -> socket.socket:
    """A listening TCP socket for `HOST:PORT`, inheritable by forked workers."""
    host, port = parse_listen(listen)
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()  # a busy port is reported to the user: the half-made socket is not kept open
        raise
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Keeps `count` forked workers running `work(sock)` until told to stop."""

    def __init__(self, sock: socket.socket, count: int, work: Callable[[socket.socket], object]) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.sock = sock
        self.count = count
        self.work = work
        self.children: dict[int, float] = {}  # pid -> start time
        self._stopping = False
        self._pause = 0.5

    def run(self) -> int:
        """Fork the workers and supervise them; returns when all have stopped after SIGTERM or SIGINT."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._forward)
        try:
            for _ in range(self.count):
                self._spawn()
            while self.children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries wait() for us
                    continue
                started = self.children.pop(pid, None)
                if started is None or self._stopping:
                    continue
                code = os.waitstatus_to_exitcode(status)
                log.error("worker %d exited (%s); starting another", pid, _describe(code))
                self._respawn_after(time.monotonic() - started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _respawn_after(self, lived: float) -> None:
        if lived >= STABLE_SECONDS:
            self._pause = 0.5
        deadline = time.monotonic() + self._pause
        self._pause = min(self._pause * 2, RESPAWN_PAUSE_MAX)
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
        if not self._stopping:
            self._spawn()

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: the server installs its own stop handlers, and the reload its SIGHUP one
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload must never kill a worker
                self.work(self.sock)
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        # The workers stop accepting at once, but while this copy of the listening socket stayed open the
        # kernel kept taking connections in, which nobody would accept: their requests waited for the last
        # worker to finish and were then reset, unanswered. Closed, a new connection is refused at once.
        self.sock.close()
        for pid in list(self.children):
            _signal(pid, signal.SIGTERM)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        for pid in list(self.children):
            _signal(pid, signum)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
