"""The hooks by which SQL dialects differ in the shared metadata statements.

The shared statements are written with ``?`` placeholders and plain SQL that
SQLite, PostgreSQL and MariaDB all accept; a dialect says only how to turn
them into its own, and how to take a new id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    """The part of a DB-API cursor the shared statements use."""

    lastrowid: Any
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the shared statements use."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """``paramstyle``: ``qmark`` (``?``) or ``format`` (``%s``, psycopg and
    PyMySQL). ``returning``: whether ``INSERT ... RETURNING`` works (MariaDB
    has no ``UPDATE ... RETURNING``: ids then come from ``lastrowid``).
    ``table_exists``: a query with one placeholder, the table's name, that
    returns a row when that table exists. ``for_update``: the clause that
    locks the rows a ``SELECT`` reads until the transaction ends (empty where
    the write transaction already holds the whole database, as SQLite's
    ``BEGIN IMMEDIATE`` does). ``lock_max``: whether ``for_update`` may
    follow a ``SELECT MAX(...)`` (PostgreSQL refuses row locks with
    aggregates: there a new id is read unlocked, and the column's unique
    index refuses a racing twin). ``quote_char``: the identifier quote.
    ``blob_type``: the column type of a byte string of any length."""

    paramstyle: str = "qmark"
    returning: bool = True
    table_exists: str = "SELECT 1 FROM sqlite_master WHERE name = ?"
    for_update: str = ""
    lock_max: bool = True
    quote_char: str = '"'
    blob_type: str = "BLOB"

    def quote(self, name: str) -> str:
        """``name`` as a quoted identifier."""
        c = self.quote_char
        return c + name.replace(c, c + c) + c

    def sql(self, statement: str) -> str:
        """``statement`` in this dialect's placeholders."""
        if self.paramstyle == "qmark":
            return statement
        return statement.replace("%", "%%").replace("?", "%s")

    def insert_id(self, conn: Connection, statement: str, params: tuple[Any, ...], column: str) -> int:
        """Run an ``INSERT`` into a table whose integer id is ``column``; the new id."""
        if self.returning:
            (new,) = conn.execute(self.sql(f"{statement} RETURNING {column}"), params).fetchone()
            return int(new)
        return int(conn.execute(self.sql(statement), params).lastrowid or 0)


SQLITE = Dialect()
