"""Helpers for the PostgreSQL tests: SQLite twins of a table and row comparisons."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

import peersync

ITEM_PG = "CREATE TABLE item (id integer PRIMARY KEY, name text, qty integer, price double precision)"
ITEM_SQLITE = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)"


def sqlite_db(path: Path, schema: str = ITEM_SQLITE) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.close()
    return path


def _order(v: Any) -> tuple[int, Any]:
    # One order for both databases (their text collations differ).
    if v is None:
        return (0, 0)
    if isinstance(v, (int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    return (3, repr(v))


def ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda r: [_order(v) for v in r])


def pg_rows(url: str, table: str = "item") -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return ordered(conn.execute(f"SELECT * FROM {table}").fetchall())


def sqlite_rows(path: Path | str, table: str = "item") -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    out = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    conn.close()
    return ordered(out)


def sqlite_write(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for st in statements:
            conn.execute(st)
    conn.close()


def sync(a: str | Path, b: str | Path, scope: str = "s", **kw: Any) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        result = peersync.sync(x, y, scope, **kw)
    assert result.error is None, result.error
    return result


def provision(url: str | Path, tables: list[str], scope: str = "s") -> None:
    with peersync.connect(url) as db:
        db.provision(scope, tables)
