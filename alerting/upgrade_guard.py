"""No schema upgrade while a process of the llmcost that wrote the store still works on it.

An upgrade is not a rolling restart. A process of the older release left running beside the upgraded
one keeps raising alerts under the fingerprints of its own release on the upgraded store: in a rolling
upgrade from the first release on one PostgreSQL, one budget instance past its limit was paged three
times (the old process's `LLMBudgetExceeded`, the new process's budget alert, and a grouped incident).

What the store can tell: a process that runs the scheduler (roles `all` and `scheduler`) renews its
lease in `leader_leases` every few seconds, and no process of this release has led on a store it has not
upgraded yet, so a lease still being renewed before the upgrade belongs to an older process. One that is
not renewed belongs to a process that stopped without handing it over (the first release never did on
SIGTERM): the upgrade waits for it to run out, at most its ttl (15 s by default). `--role ingest`
processes hold no lease; docs/deployment.md asks to stop every old process first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from exporter.store import SchemaInUse

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60.0
"""The longest an upgrade waits for a lease nobody renews (a ttl is 15 s unless changed)."""
_POLL_SECONDS = 0.25
_LEASES = text("SELECT name, holder, expires_at, renewed_at FROM leader_leases")


def refuse_while_older_process_leads(
    engine: Engine,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once no lease on the store is live; raise `SchemaInUse` if one is renewed meanwhile.

    Called before an upgrade only (`SchemaPart.before_upgrade` of alerting's tables).
    """
    if not inspect(engine).has_table("leader_leases"):
        return  # a new store, or one from before the scheduler: nobody leads
    started = clock()
    seen = _live_leases(engine, started)
    if not seen:
        return
    until = min(max(expires for _, _, expires in seen.values()), started + MAX_WAIT_SECONDS)
    log.warning(
        "the store's scheduler lease is held by %s; waiting up to %.0f s for it to run out before upgrading "
        "the store (a process of the llmcost that wrote it still leads, or stopped without handing it over)",
        ", ".join(sorted(holder for holder, _, _ in seen.values())),
        until - started,
    )
    while True:
        now = clock()
        live = _live_leases(engine, now)
        for name, (holder, renewed, _) in live.items():
            if name not in seen or (holder, renewed) != seen[name][:2]:
                raise SchemaInUse(_still_running(name, holder, now - renewed))
        if not live:
            return
        if now >= until:
            name, (holder, renewed, _) = next(iter(live.items()))
            raise SchemaInUse(_still_running(name, holder, now - renewed))
        sleep(_POLL_SECONDS)


def _live_leases(engine: Engine, now: float) -> dict[str, tuple[str, float, float]]:
    """Leases not yet run out, by name: (holder, renewed_at, expires_at)."""
    with engine.connect() as connection:
        rows = connection.execute(_LEASES).all()
    return {
        str(name): (str(holder), float(renewed), float(expires))
        for name, holder, expires, renewed in rows
        if expires > now
    }


def _still_running(name: str, holder: str, age: float) -> str:
    return (
        f"an llmcost process still works on this store: its {name!r} lease, held by {holder!r}, was renewed "
        f"{max(age, 0.0):.0f} s ago, after this llmcost started. Stop every llmcost process of the version that "
        "wrote the store, then start this one (an upgrade is not a rolling restart: old and new processes on "
        "one store raise each alert twice); nothing was changed"
    )
