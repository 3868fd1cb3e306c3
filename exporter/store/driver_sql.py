"""Statements run on the driver's cursor inside a store transaction, for per-row hot paths.

Hot paths (every alert of a webhook, every delivered notification) run a handful of small statements.
Through `Connection.execute` each costs ~150-250 µs of SQLAlchemy's execution context, result metadata
and row objects; the SQL itself takes tens of µs. Two ways around it, both inside the caller's
transaction (a connection from `Store.transaction()` or `Store.reading()`):

- `DriverStatement` keeps the statement written in Core (one definition, both dialects), compiles it
  once per dialect and runs it on the DB-API cursor (`execute`, `first`, and a fast `executemany`).
  Only plain statements qualify: no expanding IN lists, no types with bind or result processing
  (text, integers and floats).
- `driver_cursor(conn)` hands out the DB-API cursor itself, for SQL written by hand with the
  dialect's `placeholder` (`?` on SQLite, `%s` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert


def placeholder(dialect: str) -> str:
    """The DB-API parameter marker of the store's dialect: `%s` for PostgreSQL (psycopg), `?` for SQLite."""
    return "%s" if dialect == "postgresql" else "?"


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor on `conn`'s connection, inside its transaction (see the module docstring)."""
    return conn.connection.cursor()


class DriverRow(dict[str, Any]):
    """A result row by column name, read as `row.name` or `row._mapping[name]` like SQLAlchemy's Row."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> Mapping[str, Any]:
        return self


class _Compiled:
    def __init__(self, statement: ClauseElement, conn: Connection, column_keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql = compiled.string
        if "POSTCOMPILE" in self.sql:
            raise ValueError("DriverStatement cannot run statements with expanding parameters")
        self.literals = dict(compiled.params)  # values written in the statement, e.g. state != 'resolved'
        self.order = getattr(compiled, "positiontup", None)  # None for named parameter styles (psycopg: %(name)s)

    def bind(self, params: Mapping[str, Any]) -> Any:
        merged = {**self.literals, **params}
        return merged if self.order is None else tuple(merged[name] for name in self.order)


class DriverStatement:
    """A Core statement run on the driver's cursor (see the module docstring); thread-safe."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        # An INSERT names the columns its parameters give (the others take their defaults), as
        # Connection.execute does: it is compiled per dialect and per set of parameter names.
        self._insert = isinstance(statement, Insert)
        self._compiled_for: dict[tuple[str, tuple[str, ...] | None], _Compiled] = {}

    def _compiled(self, conn: Connection, params: Mapping[str, Any]) -> _Compiled:
        key = (conn.dialect.name, tuple(params) if self._insert else None)
        compiled = self._compiled_for.get(key)
        if compiled is None:
            compiled = self._compiled_for[key] = _Compiled(self._statement, conn, key[1])
        return compiled

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[DriverRow]:
        """Run once with `params` (by bind name); the rows it returns, if any."""
        compiled = self._compiled(conn, params)
        cursor = driver_cursor(conn)
        cursor.execute(compiled.sql, compiled.bind(params))
        if cursor.description is None:
            return []
        names = [d[0] for d in cursor.description]
        # Every row is read: SQLite cannot commit while a statement still has rows to give.
        return [DriverRow(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> DriverRow | None:
        """The first row the statement returns, or None."""
        rows = self.execute(conn, params)
        return rows[0] if rows else None

    def executemany(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run once per parameter set, all with the same names (no rows returned)."""
        if not params:
            return
        compiled = self._compiled(conn, params[0])
        driver_cursor(conn).executemany(compiled.sql, [compiled.bind(p) for p in params])
