"""The store's schema versions: which Alembic branches make it, upgrading them, and checking a store.

Each package owns its tables and their migrations, as one Alembic branch in a folder of its own: this
package's `exporter` branch (the usage tables, in exporter/store/migrations/versions/), and whatever
branches the caller adds as `SchemaPart`s (the alerting package adds its `alerting` branch). One script
location (exporter/store/migrations/: env.py and the revision template) finds the revisions of every
part through Alembic's `version_locations`.

The store is current when every part in use is at its head. Alembic records only the heads no other
recorded revision depends on: with alerting at `0010_notify_groups`, which depends on exporter's
`exporter_0004_spend_watermark`, the one row `0010_notify_groups` says both branches are at their heads.
Each part therefore declares its head and the other parts' heads that head depends on (`implies`), so
the check needs no Alembic (loading it costs every short command ~0.15 s); tests hold both declarations
to what Alembic computes from the folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import exc, text
from sqlalchemy.engine import Connection, Engine, make_url

from exporter.redaction import redact

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""Alembic's script location: env.py, the revision template and exporter's `versions/` folder."""
# Any fixed 64-bit number: serialises concurrent `migrate()` calls from several processes on PostgreSQL.
_MIGRATION_LOCK_ID = 0x6C6C6D636F7374
LOCK_TIMEOUT_SECONDS = 10
"""How long an upgrade's statement waits for a table lock on PostgreSQL before it gives up, changing nothing.

An `ALTER TABLE` waits for every transaction using the table (an operator's `psql` left idle in a
transaction, a long report) and, while it waits, every query on that table queues behind it: without a
limit one forgotten session stopped the upgrading `llmcost serve` and every other process reading that
table, for as long as the session stayed open. 10 s is what Django's and Rails' migration guides use."""
LOCK_NOT_AVAILABLE = "55P03"
"""PostgreSQL's SQLSTATE for a lock not obtained within `lock_timeout`."""


@dataclass(frozen=True)
class SchemaPart:
    """One package's tables: its Alembic branch, the folder of its revisions and its newest revision.

    `implies`: the heads of other parts that `head` depends on (directly or not); a store at `head`
    has them too, and Alembic keeps no row of their own for them.

    `before_upgrade`: called with the engine before a store that needs an upgrade is changed, outside
    the upgrade's transaction (so the processes it looks for can still write); it raises `SchemaInUse`
    to refuse the upgrade. A part knows what its own tables say about who else works on the store.
    """

    branch: str
    versions: Path
    head: str
    implies: tuple[str, ...] = ()
    before_upgrade: Callable[[Engine], None] | None = None


EXPORTER_SCHEMA = SchemaPart(branch="exporter", versions=MIGRATIONS_DIR / "versions", head="exporter_0005_unpriced_now")
"""The usage tables (usage_series, usage_events, the rollups, ingest_counters, rollup_backfill)."""


class StoreNotFound(RuntimeError):
    """A reading command was pointed at a store that does not exist (or holds no llmcost schema)."""


class UnknownSchema(StoreNotFound):
    """The store records schema revisions that none of the parts this program opened it with holds."""


class SchemaLocked(RuntimeError):
    """An upgrade waited `LOCK_TIMEOUT_SECONDS` for a table another session holds; nothing was changed."""


class SchemaInUse(RuntimeError):
    """A part's `before_upgrade` found a process of an older llmcost still working on the store; nothing was changed."""


def store_location(url: str) -> str:
    """The store's URL for messages: its user info and secret parameters (`?sslpassword=`) redacted."""
    # hide_password=True alone leaves `?password=` and `?sslpassword=` in the query.
    return redact(make_url(url).render_as_string(hide_password=False))


def alembic_config(parts: Sequence[SchemaPart]) -> Any:
    """An Alembic `Config` whose script location finds the revisions of every part (imports Alembic)."""
    from alembic.config import Config  # imported here: start-up of short commands should not pay for it

    def option(value: str) -> str:
        return value.replace("%", "%%")  # Config options are interpolated

    config = Config()
    config.set_main_option("script_location", option(str(MIGRATIONS_DIR)))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", option(os.pathsep.join(str(part.versions) for part in parts)))
    return config


def migrate(engine: Engine, parts: Sequence[SchemaPart]) -> None:
    """Bring every part to its head revision (safe to call from several processes at once).

    A store stamped by the single chain llmcost had before the branches (one row, such as
    `0007_retention_provenance`) upgrades like any other: each of those identifiers sits in the graph so
    that it and its dependencies are exactly what that chain had applied (see docs/development.md).
    """
    if schema_is_current(engine, parts):
        return  # the usual start: no need to load Alembic, its templates and scripts (~0.15 s)
    for part in parts:
        if part.before_upgrade is not None:
            part.before_upgrade(engine)
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(parts)
    # SQLite: BEGIN IMMEDIATE, so a second process waits for the first one's upgrade and then finds
    # nothing to do (a deferred BEGIN would read the old version and fail to write after it).
    with engine.connect() as connection, connection.execution_options(sqlite_immediate=True).begin():
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            # After the advisory lock, which waits on purpose for another process's upgrade, however long.
            connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'"))
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, "heads")
        except exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise SchemaLocked(
                f"the schema upgrade waited {LOCK_TIMEOUT_SECONDS} s for a table another session holds (a "
                "transaction left open, a long query) and gave up; nothing was changed. Start llmcost again "
                "once that session ends; to find it: SELECT pid, usename, state, xact_start FROM "
                "pg_stat_activity WHERE xact_start < now() - interval '1 minute'"
            ) from error
        except CommandError as error:
            # A revision recorded in the store that none of `parts` holds: the store was made with more
            # parts (the llmcost application's, opened here by exporter alone) or by a newer llmcost.
            raise UnknownSchema(
                f"the store at {store_location(engine.url.render_as_string())} holds schema revisions "
                f"this program does not know ({error}): {_NEWER_STORE}"
            ) from error


_NEWER_STORE = (
    "a newer llmcost upgraded it; run that version (or a newer one), or restore a backup taken before the "
    "upgrade (from Python: open it with every part that made it, the application's store with "
    "alerting.store.open_store)"
)
"""What a store with revisions no part here knows means: a rolled-back upgrade, or a library user's open."""


def _unknown_revisions(versions: Sequence[str], parts: Sequence[SchemaPart]) -> list[str]:
    """The recorded revisions none of `parts` holds (loads Alembic: only on the way to an error)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(parts))
    known = {revision.revision for revision in script.walk_revisions()}
    return [version for version in versions if version not in known]


def _version_rows(connection: Connection) -> list[str]:
    return list(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all())


def _missing_heads(versions: Sequence[str], parts: Sequence[SchemaPart]) -> list[str]:
    """The heads of `parts` the store lacks: neither recorded nor implied by a head it has."""
    present = set(versions)
    grown = True
    while grown:  # implied heads may imply others in turn
        implied = {rev for part in parts if part.head in present for rev in part.implies}
        grown = not implied <= present
        present |= implied
    return [part.head for part in parts if part.head not in present]


_NEW = " (a new installation: start `llmcost serve` once, which creates it)"
"""How a new installation gets its store, which a reading command (or `budgets apply`) will not create."""


def require_existing_store(engine: Engine, url: str, parts: Sequence[SchemaPart], *, current: bool = True) -> None:
    """Raise StoreNotFound unless `url` names an llmcost store (with every part at its head if `current`).

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
                f"no store at {where} (no such file {database}); pass --db with the store `llmcost serve` uses{_NEW}"
            )
    try:
        with engine.connect() as connection:
            versions = _version_rows(connection)
    except exc.OperationalError as error:
        raise StoreNotFound(f"cannot open the store at {where}: {error.orig}") from error
    except exc.DBAPIError:
        raise StoreNotFound(
            f"{where} holds no llmcost store (no schema); pass --db with the store in use{_NEW}"
        ) from None
    if not versions:
        raise StoreNotFound(f"{where} holds no llmcost store (no schema); pass --db with the store in use{_NEW}")
    if current and _missing_heads(versions, parts):
        found = ", ".join(sorted(versions))
        wanted = ", ".join(f"{part.branch} {part.head}" for part in parts)
        if _unknown_revisions(versions, parts):
            # "Start serve of this version to upgrade it" would fail: the store is ahead, not behind.
            raise UnknownSchema(
                f"the store at {where} is at schema revision {found}, which this llmcost (it reads {wanted}) "
                f"does not know: {_NEWER_STORE}"
            )
        raise StoreNotFound(
            f"the store at {where} is at schema revision {found}, this llmcost reads {wanted}; "
            "start `llmcost serve` of this version once to upgrade it"
        )


def schema_is_current(engine: Engine, parts: Sequence[SchemaPart]) -> bool:
    """True when every part is at its head; False for a new, older or unknown store."""
    try:
        with engine.connect() as connection:
            versions = _version_rows(connection)
    except exc.DBAPIError:
        return False  # no version table (a new store), or no store at all: the full path says which
    return not _missing_heads(versions, parts)
