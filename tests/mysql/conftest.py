"""Fixtures for the MariaDB/MySQL adapter: a fresh database per test on the
server at ``PEERSYNC_MYSQL`` (default ``mysql://root@127.0.0.1:3306``),
dropped afterwards. Skipped with the reason when the server is unreachable,
except under ``CI=true``, where that fails the run."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peersync

from ..helpers import drop_mariadb_database

pymysql = pytest.importorskip("pymysql") if os.environ.get("CI") != "true" else __import__("pymysql")

SERVER = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")


def _admin() -> Any:
    from peersync._adapters.mysql.conn import parse_url

    t = parse_url(SERVER + "/mysql")
    return pymysql.connect(
        host=t.host, port=t.port, user=t.user, password=t.password, autocommit=True, ssl_disabled=True
    )


@pytest.fixture
def mysql_db() -> Iterator[Callable[..., str]]:
    """A factory of fresh databases: ``url = mysql_db()``; every one is dropped after the test."""
    try:
        admin = _admin()
    except pymysql.err.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MariaDB server at {SERVER} unreachable under CI=true: {exc}")
        pytest.skip(f"MariaDB server at {SERVER} unreachable: {exc}")
    made: list[str] = []

    def make() -> str:
        name = "ps_test_" + uuid.uuid4().hex[:12]
        admin.cursor().execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"{SERVER}/{name}"

    yield make
    for name in made:
        drop_mariadb_database(admin, name)
    admin.close()


def raw(url: str, *, autocommit: bool = True) -> Any:
    """A plain driver connection to ``url``: a foreign writer."""
    from peersync._adapters.mysql.conn import parse_url

    t = parse_url(url)
    # ssl_disabled: PyMySQL would otherwise build a TLS context (about 0.1 s of CPU)
    # for every connection, to find the test server has no TLS.
    return pymysql.connect(
        host=t.host,
        port=t.port,
        user=t.user,
        password=t.password,
        database=t.database,
        autocommit=autocommit,
        ssl_disabled=True,
    )


def sql(url: str, *statements: str) -> None:
    conn = raw(url)
    try:
        for st in statements:
            conn.cursor().execute(st)
    finally:
        conn.close()


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    conn = raw(url)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{table}` ORDER BY 1")
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def sqlite_file(tmp_path: Path, *statements: str, name: str = "a.db") -> str:
    path = str(tmp_path / name)
    conn = sqlite3.connect(path)
    for st in statements:
        conn.execute(st)
    conn.commit()
    conn.close()
    return path


def pair(mysql_db: Callable[[], str], tmp_path: Path, table: str, lite: str) -> tuple[str, str]:
    """A MariaDB database and a SQLite file, each with ``items`` made by its
    statement and provisioned in scope ``s``: (url, path)."""
    url = mysql_db()
    sql(url, table)
    path = sqlite_file(tmp_path, lite)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", ["items"])
    return url, path


def sqlite_rows(path: str, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    finally:
        conn.close()
