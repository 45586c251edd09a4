"""Fixtures for the tests that hold for both server databases: ``server``
(parametrized: a fresh PostgreSQL or MariaDB database made from the DDL of
each kind, dropped after the test; ``server.copy(url)`` copies one as its
kind is usually copied) and ``run`` (a foreign writer's query on any
database URL or SQLite path).

The server fixtures are the ones of ``tests/postgres`` and ``tests/mysql``:
an unreachable server skips with the reason, and fails the run under ``CI=true``.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peersync
from tests.mysql.conftest import SERVER as MYSQL_SERVER
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
    copies: list[str] = []
    if kind == "pg":
        make = request.getfixturevalue("make_pg")
        admin = request.getfixturevalue("pg_admin")

        def new(**ddl: list[str]) -> str:
            url: str = make()
            run(url, *ddl["pg"])
            return url

        def copy(url: str) -> str:
            # CREATE DATABASE ... TEMPLATE: the server's own copy; the template must have no other session.
            name = f"peersync_t_{uuid.uuid4().hex[:12]}"
            origin = url.rsplit("/", 1)[1]
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (origin,),
            )
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{origin}"')
            copies.append(name)
            return url.rsplit("/", 1)[0] + "/" + name
    else:
        make = request.getfixturevalue("mysql_db")

        def new(**ddl: list[str]) -> str:
            url: str = make()
            run(url, *ddl["mysql"])
            return url

        def copy(url: str) -> str:
            # mysqldump --triggers into a fresh database: how a MariaDB database is usually copied.
            if shutil.which("mysqldump") is None or shutil.which("mysql") is None:
                pytest.skip("the mysqldump and mysql clients are not installed (they copy the database)")
            target: str = make()
            host, port = MYSQL_SERVER.split("@")[-1].split(":")
            dump = subprocess.run(
                ["mysqldump", "-h", host, "-P", port, "-u", "root", "--triggers", url.rsplit("/", 1)[1]],
                check=True, capture_output=True,
            ).stdout  # fmt: skip
            subprocess.run(
                ["mysql", "-h", host, "-P", port, "-u", "root", target.rsplit("/", 1)[1]], input=dump, check=True
            )
            return target

    new.kind = kind  # type: ignore[attr-defined]
    new.copy = copy  # type: ignore[attr-defined]
    yield new
    for name in copies:
        request.getfixturevalue("pg_admin").execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(url: str, table: str) -> Rows:
    """Every row of ``table`` in key order, on any database URL or SQLite path."""
    return run(
        url, f"SELECT * FROM {'`' + table + '`' if url.startswith(('mysql://', 'mariadb://')) else table} ORDER BY 1"
    )


def provisioned(server: Any, tmp_path: Path, table: str, lite: list[str], **ddl: list[str]) -> tuple[str, str]:
    """A new server database (``server(**ddl)``) and a SQLite file made with
    ``lite``, each with scope ``s`` over ``table``: their URL and path."""
    url: str = server(**ddl)
    path = str(tmp_path / "a.db")
    run(path, *lite)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", [table])
    return url, path


def sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    """One session (``both`` unless ``direction`` says otherwise) of scope ``s``."""
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def by_kind(server: Any, pg: str, mysql: str) -> str:
    """The statement (or text) written for this test's server kind."""
    return pg if server.kind == "pg" else mysql
