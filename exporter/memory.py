"""Giving freed heap memory back to the operating system after a large request.

CPython returns its small-object arenas when they empty, but buffers over 512 bytes come from the C
allocator, and glibc keeps freed memory of its heaps for reuse: after one large body the process
would keep hundreds of MiB it no longer uses. `malloc_trim` hands the free pages back (measured on a
100,000-event request: the idle process back from ~400 to ~120 MiB, docs/limits.md).

A request also leaves reference cycles (an exception's frames, driver objects) that only the cyclic
collector frees, and `exporter.gc_tuning` makes its runs rare: an idle server would keep them (~50 MiB
after a 100,000-event request on PostgreSQL). So a collection comes first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

LARGE_BODY_BYTES = 8 * 1024 * 1024
"""Bodies from this size on are followed by a trim (a trim costs a few milliseconds)."""


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_trim = _load_trim()


def release_free_memory() -> None:
    """Collect cyclic garbage, then return the C heap's free pages to the operating system where it can."""
    gc.collect()
    if _trim is not None:
        _trim(0)
