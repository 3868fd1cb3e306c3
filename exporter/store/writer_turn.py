"""Taking turns to write: threads of this process, then other processes writing the same SQLite file.

SQLite allows one writer at a time. A writer that finds the database locked waits in SQLite's busy
handler, which sleeps between tries (up to 100 ms each), so under contention the lock sits idle while
the next writer sleeps. Writers that queue on a lock of their own are woken the moment it is free:
threads of one process on a `threading.RLock`, processes (the workers of `llmcost serve --workers`,
`llmcost ingest` beside a server) on an advisory `flock` of a file beside the database.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriterTurn:
    """A re-entrant context manager held around every write transaction.

    `lock_path` None: threads of this process only (PostgreSQL, in-memory SQLite). The file is opened
    lazily in each process, because a `flock` on a descriptor inherited through `fork` would be shared
    with the parent rather than exclude it.
    """

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._threads = threading.RLock()
        self._depth = 0  # only read or written while holding `_threads`
        self._fd: int | None = None
        self._fd_pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self.lock_path is not None:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():
            assert self.lock_path is not None
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def close(self) -> None:
        """Close the lock file (a later write opens it again)."""
        with self._threads:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = None


def sqlite_lock_path(database: str | None) -> Path | None:
    """The lock file for a SQLite database path (None for in-memory databases)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database + "-llmcost.lock")
