"""Leader election through the database: one lease row per name, taken and renewed by its holder.

Works the same on SQLite and PostgreSQL, with nothing but one conditional UPDATE (and an INSERT for the
very first lease) in a write transaction:

    UPDATE leader_leases SET holder = me, expires_at = now + ttl …
     WHERE name = :name AND (holder = me OR expires_at <= now)

The row lock the UPDATE takes makes it atomic: of several processes racing for an expired lease exactly
one matches the condition, and the others see the winner's row once it commits (PostgreSQL re-checks
the WHERE clause on the new row version; SQLite serialises writers with BEGIN IMMEDIATE).

Failover bound: a holder that dies (even `kill -9`) stops renewing; its lease runs out `ttl` seconds
after its last renewal, and the next `acquire` by any other process after that wins. With followers
trying every `heartbeat` seconds, another process leads at most `ttl + heartbeat` seconds after the
leader's last renewal (defaults: 15 s + 5 s = 20 s). A graceful shutdown `release`s the lease, so the
hand-over takes at most one heartbeat.

Expiry is judged with each process's own clock (injected, `time.time` by default), so the hosts must
keep their clocks in sync (NTP): a skew of `s` seconds makes a follower take over up to `s` seconds
early. The scheduler's per-tick claims (see `alerting.scheduler`) keep jobs at exactly once per tick
even then. `term` increases with every change of holder; it is a fencing token for whoever needs one.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, select, text
from sqlalchemy.engine import Connection

from exporter.store import Store

metadata = MetaData()

leader_leases = Table(
    "leader_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),
    Column("term", BigInteger, nullable=False, server_default="1"),
)

_RENEW_OR_TAKE = text(
    "UPDATE leader_leases SET "
    "holder = :holder, expires_at = :expires_at, renewed_at = :now, "
    "acquired_at = CASE WHEN holder = :holder THEN acquired_at ELSE :now END, "
    "term = CASE WHEN holder = :holder THEN term ELSE term + 1 END "
    "WHERE name = :name AND (holder = :holder OR expires_at <= :now)"
)
_CREATE = text(
    "INSERT INTO leader_leases (name, holder, expires_at, acquired_at, renewed_at, term) "
    "VALUES (:name, :holder, :expires_at, :now, :now, 1) ON CONFLICT (name) DO NOTHING"
)
_RELEASE = text("UPDATE leader_leases SET expires_at = :now WHERE name = :name AND holder = :holder")


def default_holder() -> str:
    """An identity unique to this process: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class LeaseRecord:
    """The lease row as stored."""

    name: str
    holder: str
    expires_at: float
    acquired_at: float
    renewed_at: float
    term: int


class LeaderLease:
    """A named lease in the store; `acquire` takes it when free and renews it when already held."""

    def __init__(
        self,
        store: Store,
        name: str = "scheduler",
        holder: str | None = None,
        ttl: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.store = store
        self.name = name
        self.holder = holder or default_holder()
        self.ttl = float(ttl)
        self.clock = clock
        self._expires_at = 0.0

    @property
    def heartbeat_seconds(self) -> float:
        """How often a holder should renew (and a follower try): a third of the ttl."""
        return self.ttl / 3.0

    @property
    def failover_bound_seconds(self) -> float:
        """Longest time without a leader after the leader dies: ttl plus one heartbeat."""
        return self.ttl + self.heartbeat_seconds

    def acquire(self, now: float | None = None, conn: Connection | None = None) -> bool:
        """Take the lease if it is free or expired, renew it if we hold it; True when we hold it now.

        Runs in `conn`'s transaction when given (so the caller can do more under the same lock),
        else in a transaction of its own. Store errors propagate (`StoreUnavailable`).
        """
        now = self.clock() if now is None else now
        expires_at = now + self.ttl
        params = {"name": self.name, "holder": self.holder, "now": now, "expires_at": expires_at}
        if conn is None:
            with self.store.transaction() as own:
                held = self._acquire(own, params)
        else:
            held = self._acquire(conn, params)
        self._expires_at = expires_at if held else 0.0
        return held

    @staticmethod
    def _acquire(conn: Connection, params: dict[str, object]) -> bool:
        if conn.execute(_RENEW_OR_TAKE, params).rowcount == 1:
            return True
        return conn.execute(_CREATE, params).rowcount == 1

    def is_leader(self, now: float | None = None) -> bool:
        """Whether we lead, in our own view (no query): our last `acquire` won and has not expired yet."""
        now = self.clock() if now is None else now
        return now < self._expires_at

    def release(self, now: float | None = None) -> bool:
        """Give the lease up (it expires now) if we hold it, so a follower takes over at its next try."""
        now = self.clock() if now is None else now
        self._expires_at = 0.0
        with self.store.transaction() as conn:
            return conn.execute(_RELEASE, {"name": self.name, "holder": self.holder, "now": now}).rowcount == 1

    def current(self) -> LeaseRecord | None:
        """The stored lease (whoever holds it), or None when nobody ever took it."""
        with self.store.reading() as conn:
            row = conn.execute(select(leader_leases).where(leader_leases.c.name == self.name)).first()
        if row is None:
            return None
        m = row._mapping
        return LeaseRecord(
            name=m["name"],
            holder=m["holder"],
            expires_at=float(m["expires_at"]),
            acquired_at=float(m["acquired_at"]),
            renewed_at=float(m["renewed_at"]),
            term=int(m["term"]),
        )
