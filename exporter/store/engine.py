"""Engine creation for SQLite (default) and PostgreSQL (psycopg 3); schema versions are in migration.py."""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

# libpq turns SO_KEEPALIVE on but leaves the timing to the kernel: the first probe after 2 h idle, so a
# connection whose server vanished (host gone, network partition) hangs a request that long. With these,
# a dead peer is noticed within idle + interval x count = 60 s. Values in the database URL win.
POSTGRES_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
# Keepalives only probe an idle connection. A query sent into a partition stays unacknowledged, and the
# kernel retransmits it for ~15 minutes (tcp_retries2) while the request's thread and pooled connection
# wait: with TCP_USER_TIMEOUT the connection is dropped after 60 s of unacknowledged data instead (the
# request was answered 503 long before; this frees what it held). The URL's own value wins.
POSTGRES_TCP_USER_TIMEOUT_MS = 60_000
# What pg_stat_activity shows for our connections, so an operator counting connections against
# max_connections (or terminating them) can tell llmcost's from the rest. The URL's own wins.
POSTGRES_APPLICATION_NAME = "llmcost"


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


POOL_TIMEOUT = 30.0
"""Seconds a PostgreSQL checkout waits for a pooled connection before the store counts as unavailable."""


def create_store_engine(
    url: str,
    *,
    pool_size: int = 8,
    read_only: bool = False,
    pool_timeout: float = POOL_TIMEOUT,
    pooled: bool = True,
) -> Engine:
    """An engine tuned for the store: WAL and full sync on SQLite, a bounded pool with TCP keepalives on PostgreSQL.

    `pool_timeout`: how long a PostgreSQL checkout waits for one of the pool's connections (all held by
    queries a hung database does not answer): then the store is unavailable (StoreUnavailable, a 503).

    `read_only`: the database itself refuses every write on these connections (SQLite `query_only`,
    PostgreSQL `default_transaction_read_only`), so a reading command cannot change the store even by
    mistake.

    `pooled=False` (PostgreSQL): every connect opens its own connection, with the same options; the store
    probe's ping uses it when the pool is full (`Store.ping`).
    """
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below, and BEGIN IMMEDIATE in the writer): pysqlite's implicit
            # transactions would otherwise defer the write lock and invite SQLITE_BUSY upgrades.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if read_only:
                cursor.execute("PRAGMA query_only=ON")
            else:
                # Takes effect on a new file (before its first table): pruning then gives pages back to the
                # file system in small steps (`PRAGMA incremental_vacuum`) instead of one long VACUUM.
                cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
                cursor.execute("PRAGMA journal_mode=WAL")
                # FULL: a commit survives power loss, not only a process crash; commits are batched.
                cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_on_begin(conn: Any) -> None:
            # Write transactions take the lock up front (see Store.transaction), so two writers queue on
            # busy_timeout instead of failing when a read lock cannot be upgraded.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # connect_args override the URL's query string in SQLAlchemy, so only what the URL leaves unset: a
    # user's connect_timeout, keepalives or options (a statement_timeout, say) are theirs to keep.
    query = make_url(url).query
    connect_args: dict[str, Any] = {
        key: value
        for key, value in {
            "connect_timeout": 5,
            "application_name": POSTGRES_APPLICATION_NAME,
            "tcp_user_timeout": POSTGRES_TCP_USER_TIMEOUT_MS,
            **POSTGRES_KEEPALIVES,
        }.items()
        if key not in query
    }
    if read_only:
        given = query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        connect_args["options"] = f"{given} -c default_transaction_read_only=on".strip()
    if not pooled:
        return create_engine(url, poolclass=NullPool, connect_args=connect_args)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    event.listen(engine, "checkout", _drop_dead_postgres_connection)
    return engine


def _drop_dead_postgres_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect check without a round trip (SQLAlchemy's `pool_pre_ping` costs one).

    An idle connection of ours never has anything to read: we do not LISTEN, and every query reads its
    whole answer. So a readable socket at checkout means the server said goodbye (a restart sends
    "terminating connection" and closes), and the pool is told to connect afresh. A connection that
    died silently (no FIN) fails on its first query instead; SQLAlchemy then invalidates it and the
    caller answers 503, as for any outage.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("connection closed")
    socket = dbapi_connection.pgconn.socket
    readable, _, _ = select.select([socket], [], [], 0)
    if readable:
        raise exc.DisconnectionError("server closed the connection")
