"""Engine creation and migrations for SQLite (default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
HEAD_REVISION = "0010_notify_groups"
"""The newest migration in MIGRATIONS_DIR (a test holds the two together)."""
# Any fixed 64-bit number: serialises concurrent `migrate()` calls from several processes on PostgreSQL.
_MIGRATION_LOCK_ID = 0x6C6C6D636F7374


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_store_engine(url: str, *, pool_size: int = 8, read_only: bool = False) -> Engine:
    """An engine tuned for the store: WAL and full sync on SQLite, a bounded pool on PostgreSQL.

    `read_only`: the database itself refuses every write on these connections (SQLite `query_only`,
    PostgreSQL `default_transaction_read_only`), so a reading command cannot change the store even by
    mistake.
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
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 5,
            **({"options": "-c default_transaction_read_only=on"} if read_only else {}),
        },
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


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (safe to call from several processes)."""
    if schema_is_current(engine):
        return  # the usual start: no need to load Alembic, its templates and scripts (~0.15 s)
    from alembic import command  # imported here: start-up of short commands should not pay for it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class StoreNotFound(RuntimeError):
    """A reading command was pointed at a store that does not exist (or holds no llmcost schema)."""


def store_location(url: str) -> str:
    """The store's URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def require_existing_store(engine: Engine, url: str, *, current: bool = True) -> None:
    """Raise StoreNotFound unless `url` names an llmcost store (at the current schema if `current`).

    Creates nothing.

    SQLite would create an empty file on connect, so its path is checked before anything connects.
    """
    parsed = make_url(url)
    where = store_location(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreNotFound(f"no store at {where}: a reading command needs an existing SQLite file")
        if not Path(database).is_file():
            raise StoreNotFound(
                f"no store at {where} (no such file {database}); pass --db with the store `llmcost serve` uses"
            )
    try:
        with engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except exc.OperationalError as error:
        raise StoreNotFound(f"cannot open the store at {where}: {error.orig}") from error
    except exc.DBAPIError:
        raise StoreNotFound(f"{where} holds no llmcost store (no schema); pass --db with the store in use") from None
    if not versions:
        raise StoreNotFound(f"{where} holds no llmcost store (no schema); pass --db with the store in use")
    if current and versions != [HEAD_REVISION]:
        found = ", ".join(versions) or "none"
        raise StoreNotFound(
            f"the store at {where} is at schema revision {found}, this llmcost reads {HEAD_REVISION}; "
            "start `llmcost serve` of this version once to upgrade it"
        )


def schema_is_current(engine: Engine) -> bool:
    """True when the store's Alembic version is HEAD_REVISION; False for a new, older or unknown one."""
    try:
        with engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except exc.DBAPIError:
        return False  # no version table (a new store), or no store at all: the full path says which
    return versions == [HEAD_REVISION]
