"""Flush before a `multiprocessing` child is terminated.

`Pool.terminate()` (which `with Pool(...)` calls on leaving the block) ends its workers with SIGTERM, whose
default action kills them without running any finalizer: calls recorded in a task that had already returned
its result would be lost.

In such a child (only: the application's own processes keep their SIGTERM), and only while SIGTERM still has
its default action, a handler flushes the clients first (each within its `close_timeout`), then dies of
SIGTERM as before: the exit code and everything `terminate()` relies on stay the same, and a second SIGTERM
kills at once. A child already ending by its own path (a pool worker that got its stop sentinel at the same
time) is left to finish it: its exit finalizers flush the clients.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("llmcost")

_flush: Callable[[], None] | None = None
# The process whose own `multiprocessing` exit has begun (set by a finalizer that runs before the clients'
# close): a pid, because a forked child inherits this module's state, and `util._exiting` with it.
_exiting_pid: int | None = None
_marked_pid: int | None = None  # the process in which that finalizer is registered
# Finalizers run highest priority first: this one before the clients' close (`exitpriority=10`).
_BEFORE_CLIENTS_CLOSE = 100


def flush_before_sigterm(flush: Callable[[], None]) -> None:
    """In the child's main thread: on SIGTERM, run `flush`, then die of SIGTERM.

    Left alone when the application has its own SIGTERM handler (or ignores SIGTERM): it decides what a
    SIGTERM does.
    """
    global _flush, _marked_pid
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler (and it is the one a signal interrupts)
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, _on_sigterm):
        return
    _flush = flush
    signal.signal(signal.SIGTERM, _on_sigterm)
    if _marked_pid != os.getpid():
        from multiprocessing import util

        util.Finalize(None, _mark_exiting, exitpriority=_BEFORE_CLIENTS_CLOSE)
        _marked_pid = os.getpid()


def _mark_exiting() -> None:
    global _exiting_pid
    _exiting_pid = os.getpid()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once, flushed or not
    if _exiting_pid == os.getpid():
        # A pool worker that got its stop sentinel is already ending, running its exit finalizers (the clients'
        # `close` among them): `terminate()` sends the sentinels and the SIGTERMs together. Let that exit
        # finish: the close this signal interrupted is what flushes, and flushing again from here, on top of
        # it, could wait on a lock it holds.
        return
    try:
        if _flush is not None:
            _flush()
    except BaseException:  # the process is going away: it must die of SIGTERM still, whatever the flush did
        log.exception("llmcost client: flushing before SIGTERM failed")
    finally:
        os.kill(os.getpid(), signum)
