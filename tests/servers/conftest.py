"""Fixtures for the tests that hold for both server databases: ``server``
(parametrized: a fresh PostgreSQL or MariaDB database made from the DDL of
each kind, dropped after the test) and ``plain`` (a foreign writer's query
on any database URL or SQLite path).

The server fixtures are the ones of ``tests/postgres`` and ``tests/mysql``:
an unreachable server skips with the reason, and fails the run under ``CI=true``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.mysql.conftest import mysql_db, raw
from tests.postgres.conftest import make_pg, pg_admin

__all__ = ["make_pg", "mysql_db", "pg_admin"]

Rows = list[tuple[Any, ...]]


def run(url: str, *statements: str, params: Any = None) -> Rows:
    """A foreign writer: each statement on its own (autocommit) through the
    plain driver of ``url``'s kind; the last statement's rows."""
    out: Rows = []
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for st in statements:
                cur = conn.execute(st, params)
                out = [tuple(r) for r in cur.fetchall()] if cur.description else []
        return out
    if url.startswith(("mysql://", "mariadb://")):
        conn = raw(url)
        try:
            for st in statements:
                cur = conn.cursor()
                cur.execute(st, params)
                out = [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.close()
        return out
    lite = sqlite3.connect(url)
    try:
        with lite:
            for st in statements:
                out = lite.execute(st, params or ()).fetchall()
    finally:
        lite.close()
    return out


@pytest.fixture(params=["pg", "mysql"])
def server(request: Any) -> Iterator[Callable[..., str]]:
    """``server(pg=[ddl...], mysql=[ddl...])``: a new database of this
    test's kind with its kind's statements run in it; returns its URL.
    ``server.kind`` is ``"pg"`` or ``"mysql"``."""
    kind = request.param
    if kind == "pg":
        make = request.getfixturevalue("make_pg")

        def new(**ddl: list[str]) -> str:
            url: str = make()
            run(url, *ddl["pg"])
            return url
    else:
        make = request.getfixturevalue("mysql_db")

        def new(**ddl: list[str]) -> str:
            url: str = make()
            run(url, *ddl["mysql"])
            return url

    new.kind = kind  # type: ignore[attr-defined]
    yield new
