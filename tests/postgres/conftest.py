"""Fixtures for the PostgreSQL peer: a fresh database per test on the real server.

The server is ``$PEERSYNC_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
used only to create and drop databases). Tests skip, saying why, when it
cannot be reached or psycopg is missing, except under ``CI=true``, where
that fails them: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ADMIN_URL = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI=true: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    """An autocommit connection to the server's admin database."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[test]')")
    try:
        conn = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _unavailable(f"cannot reach {ADMIN_URL}: {' '.join(str(exc).split())}")
    yield conn
    conn.close()


def _url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def make_pg(pg_admin: Any) -> Iterator[Callable[..., str]]:
    """``make_pg(schema_sql="")``: a new database (dropped after the test),
    with ``schema_sql`` run in it; returns its URL."""
    made: list[str] = []

    def make(schema_sql: str = "") -> str:
        name = f"peersync_t_{uuid.uuid4().hex[:12]}"
        pg_admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = _url(name)
        if schema_sql:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema_sql)
        return url

    yield make
    for name in made:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sql() -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``sql(url, statement, params=None)``: a foreign writer (plain psycopg,
    one autocommit statement); returns the rows when there are any."""
    import psycopg

    conns: dict[str, Any] = {}

    def run(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = conns.get(url)
        if conn is None:
            conn = conns[url] = psycopg.connect(url, autocommit=True)
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []

    yield run
    for conn in conns.values():
        conn.close()
