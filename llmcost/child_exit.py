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
_marked_pid: int | None = None  # the process in which the exit finalizers are registered
_before_close: list[Callable[[], None]] = []
# Finalizers run highest priority first: the mark, then the hooks, then the clients' close (`exitpriority=10`).
_MARK_EXIT = 100
_BEFORE_CLIENTS_CLOSE = 20


def before_clients_close(hook: Callable[[], None]) -> None:
    """Run `hook` at a `multiprocessing` child's exit before the clients close (their last chance to record).

    For work that records from threads of its own after the task returned (LiteLLM logs a sync call from
    its thread pool): a child ends with `os._exit`, which, unlike an interpreter exit, waits for no thread.
    The hook must bound its own wait. It does not run on SIGTERM: it would run on top of whatever the
    signal interrupted, and waiting on a thread pool takes its locks.
    """
    if hook not in _before_close:
        _before_close.append(hook)


def _run_before_close() -> None:
    for hook in list(_before_close):
        try:
            hook()
        except Exception:  # one hook's failure must not keep the clients from flushing
            log.exception("llmcost: a hook before the clients' close at exit failed")


def at_child_exit(flush: Callable[[], None]) -> None:
    """In a `multiprocessing` child: the exit finalizers (the mark, the hooks) and `flush_before_sigterm`.

    The clients' own close is registered by the caller, at `exitpriority=10`.
    """
    global _marked_pid
    if _marked_pid != os.getpid():
        from multiprocessing import util

        util.Finalize(None, _mark_exiting, exitpriority=_MARK_EXIT)
        util.Finalize(None, _run_before_close, exitpriority=_BEFORE_CLIENTS_CLOSE)
        _marked_pid = os.getpid()
    flush_before_sigterm(flush)


def flush_before_sigterm(flush: Callable[[], None]) -> None:
    """In the child's main thread: on SIGTERM, run `flush`, then die of SIGTERM.

    Left alone when the application has its own SIGTERM handler (or ignores SIGTERM): it decides what a
    SIGTERM does.
    """
    global _flush
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler (and it is the one a signal interrupts)
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, _on_sigterm):
        return
    _flush = flush
    signal.signal(signal.SIGTERM, _on_sigterm)


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
