"""Garbage-collector settings for the long-running, allocation-heavy commands (`serve`, `ingest`).

Ingest allocates a few objects per field of every event, and almost all of it is freed by reference
counting. CPython's cyclic collector still runs every 700 allocations and, now and then, walks every
live object, including the tens of thousands of module-level objects loaded at start-up: on a
1M-line ingest that was a fifth of the CPU. Freezing what start-up loaded takes it out of those walks,
and a larger first generation makes collections rarer; the rare cycles are still collected.
"""

from __future__ import annotations

import gc

FIRST_GENERATION_THRESHOLD = 50_000
"""Allocations (net) between collections of the youngest generation (CPython's default: 700)."""


def tune_gc_for_throughput() -> None:
    """Call once start-up is done (services built): freeze what exists, collect less often.

    No collection first: it would cost ~0.1 s of start-up in every process, to free the little garbage
    that start-up leaves (CPython's documentation on `gc.freeze` does the same before a fork).
    """
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)
