"""Foreign writers of the model test, one per kind of database: each makes its
replica (a SQLite file, a PostgreSQL or a MariaDB database with the model's
three tables, provisioned) and writes it through the plain driver, one
transaction per write, with the change time of the model's fake clock.

- SQLite: ``julianday('now')`` overridden on the writer's connection;
- PostgreSQL: ``peersync.clock_ms``, the triggers' clock hook, set in the transaction;
- MariaDB: ``SET timestamp``, which ``NOW()`` then returns.

Every writer offers the same verbs (``insert``, ``update``, ``upsert``,
``replace``, ``delete``, ``rekey``) with SQLite's meaning: an upsert updates
the row of the same key, a replace also evicts the users holding the email.
A write that breaks the UNIQUE email raises :class:`Refused` and changes nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync

from ..helpers import drop_mariadb_database

SCOPE = "s"
TABLES = ["task", "note", "users"]
COLUMNS = {"task": ("id", "status"), "note": ("owner", "slug", "body"), "users": ("id", "email")}
NKEY = {"task": 1, "note": 2, "users": 1}
SQLITE_SCHEMA = """
CREATE TABLE task (id INTEGER PRIMARY KEY, status TEXT);
CREATE TABLE note (owner TEXT NOT NULL, slug TEXT NOT NULL, body TEXT, PRIMARY KEY (owner, slug));
CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE);
"""
PG_SCHEMA = [
    "CREATE TABLE task (id bigint PRIMARY KEY, status text)",
    "CREATE TABLE note (owner text NOT NULL, slug text NOT NULL, body text, PRIMARY KEY (owner, slug))",
    "CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE)",
]
_BIN = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
MYSQL_SCHEMA = [
    f"CREATE TABLE task (id BIGINT PRIMARY KEY, status TEXT) {_BIN}",
    "CREATE TABLE note (owner VARCHAR(40) NOT NULL, slug VARCHAR(40) NOT NULL, body TEXT,"
    f" PRIMARY KEY (owner, slug)) {_BIN}",
    f"CREATE TABLE users (id VARCHAR(40) PRIMARY KEY, email VARCHAR(191) UNIQUE) {_BIN}",
]
PG_ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_SERVER = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")
# An error conflict a UNIQUE collision leaves, in each database's words.
UNIQUE_ERROR = re.compile(r"UNIQUE|Duplicate entry|duplicate key", re.IGNORECASE)

Row = tuple[Any, ...]


class Refused(Exception):
    """The write broke the UNIQUE email: nothing changed."""


def _upsert(tbl: str, marks: str) -> str:
    """SQLite's and PostgreSQL's upsert: the row of the same key is updated."""
    cols, nkey = COLUMNS[tbl], NKEY[tbl]
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols[nkey:])
    return f"INSERT INTO {tbl} VALUES ({marks}) ON CONFLICT ({', '.join(cols[:nkey])}) DO UPDATE SET {sets}"


def _where(tbl: str, mark: str) -> str:
    return " AND ".join(f"{c} = {mark}" for c in COLUMNS[tbl][: NKEY[tbl]])


class Writer:
    """A replica's database and its foreign writer."""

    kind = "sqlite"
    mark = "?"
    db: peersync.Database

    def rows(self, tbl: str) -> list[Row]:
        return sorted(tuple(r) for r in self._query(f"SELECT * FROM {tbl}", ()))

    def local(self, tbl: str, key: tuple[Any, ...]) -> Row | None:
        found = self._query(f"SELECT * FROM {tbl} WHERE {_where(tbl, self.mark)}", key)
        return tuple(found[0]) if found else None

    def write(self, ms: int, verb: str, tbl: str, *args: Any) -> None:
        """One transaction doing ``verb``; raises :class:`Refused` on a UNIQUE collision."""
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError

    def _statements(self, verb: str, tbl: str, args: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...]]]:
        """The plain statements of a verb (those all three databases share)."""
        cols, nkey, m = COLUMNS[tbl], NKEY[tbl], self.mark
        if verb == "insert":
            (row,) = args
            return [(f"INSERT INTO {tbl} VALUES ({', '.join([m] * len(row))})", row)]
        if verb == "update":
            key, value = args
            sets = ", ".join(f"{c} = {m}" for c in cols[nkey:])
            return [(f"UPDATE {tbl} SET {sets} WHERE {_where(tbl, m)}", (*value, *key))]
        if verb == "delete":
            (key,) = args
            return [(f"DELETE FROM {tbl} WHERE {_where(tbl, m)}", key)]
        if verb == "rekey":
            old, new = args
            return [(f"UPDATE task SET id = {m} WHERE id = {m}", (new, old))]
        raise AssertionError(verb)

    def reset(self) -> None:
        """Back to a fresh replica: no rows, a new scope (a new replica id)."""
        self.db.deprovision(SCOPE)
        for tbl in TABLES:
            self._run(f"DELETE FROM {tbl}")
        self.db.provision(SCOPE, TABLES)

    def _run(self, sql: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.db.close()


class Pool:
    """Server databases kept from one history to the next (making one costs
    seconds, resetting one a fraction of that): :meth:`take` a writer of a
    kind, :meth:`give` it back, :meth:`drain` drops them all."""

    def __init__(self) -> None:
        self.free: dict[str, list[Writer]] = {}

    def take(self, kind: str) -> Writer:
        free = self.free.get(kind)
        if free:
            w = free.pop()
            w.reset()
            return w
        return PostgresWriter() if kind == "postgres" else MySQLWriter()

    def give(self, w: Writer) -> None:
        self.free.setdefault(w.kind, []).append(w)

    def drain(self) -> None:
        for ws in self.free.values():
            for w in ws:
                w.close()
        self.free.clear()


POOL = Pool()


class SQLiteWriter(Writer):
    def __init__(self, folder: Path, index: int, julianday: Callable[..., float | None]) -> None:
        path = folder / f"r{index}.db"
        conn = sqlite3.connect(path)
        conn.executescript(SQLITE_SCHEMA)
        conn.close()
        self.db = peersync.connect(path)
        self.db.provision(SCOPE, TABLES)
        self.conn = sqlite3.connect(path)
        self.conn.create_function("julianday", -1, julianday)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    def write(self, ms: int, verb: str, tbl: str, *args: Any) -> None:
        if verb in ("upsert", "replace"):
            (row,) = args
            marks = ", ".join("?" * len(row))
            sql = f"INSERT OR REPLACE INTO {tbl} VALUES ({marks})" if verb == "replace" else _upsert(tbl, marks)
            todo = [(sql, row)]
        else:
            todo = self._statements(verb, tbl, args)
        try:
            with self.conn:
                for sql, params in todo:
                    self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise Refused(str(exc)) from None

    def close(self) -> None:
        self.conn.close()
        super().close()


class PostgresWriter(Writer):
    kind = "postgres"
    mark = "%s"

    def __init__(self) -> None:
        import psycopg

        self.name = f"peersync_m_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = PG_ADMIN.rpartition("/")[0] + "/" + self.name
        self.conn = psycopg.connect(self.url, autocommit=True)
        for ddl in PG_SCHEMA:
            self.conn.execute(ddl)
        self.db = peersync.connect(self.url)
        self.db.provision(SCOPE, TABLES)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    def _run(self, sql: str) -> None:
        self.conn.execute(sql)

    def write(self, ms: int, verb: str, tbl: str, *args: Any) -> None:
        import psycopg

        todo: list[tuple[str, tuple[Any, ...]]] = []
        if verb in ("upsert", "replace"):
            (row,) = args
            if verb == "replace" and tbl == "users":
                # SQLite's INSERT OR REPLACE evicts the user holding the email
                todo.append(("DELETE FROM users WHERE email = %s AND id <> %s", (row[1], row[0])))
            todo.append((_upsert(tbl, ", ".join(["%s"] * len(row))), row))
        else:
            todo = self._statements(verb, tbl, args)
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT set_config('peersync.clock_ms', %s, true)", (str(ms),))
                for sql, params in todo:
                    self.conn.execute(sql, params)
        except psycopg.errors.UniqueViolation as exc:
            raise Refused(str(exc)) from None

    def close(self) -> None:
        import psycopg

        super().close()
        self.conn.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _mysql(database: str | None) -> Any:
    import pymysql

    from peersync._adapters.mysql.conn import parse_url

    t = parse_url(MYSQL_SERVER + "/x")
    return pymysql.connect(
        host=t.host, port=t.port, user=t.user, password=t.password, database=database, autocommit=True
    )


class MySQLWriter(Writer):
    kind = "mysql"
    mark = "%s"

    def __init__(self) -> None:
        self.name = f"ps_model_{uuid.uuid4().hex[:12]}"
        admin = _mysql(None)
        admin.cursor().execute(f"CREATE DATABASE {self.name}")
        admin.close()
        self.conn = _mysql(self.name)
        for ddl in MYSQL_SCHEMA:
            self.conn.cursor().execute(ddl)
        self.db = peersync.connect(f"{MYSQL_SERVER}/{self.name}")
        self.db.provision(SCOPE, TABLES)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        cur = self.conn.cursor()
        cur.execute(sql, args or None)
        return list(cur.fetchall())

    def _run(self, sql: str) -> None:
        self.conn.cursor().execute(sql)

    def write(self, ms: int, verb: str, tbl: str, *args: Any) -> None:
        import pymysql

        cols, nkey = COLUMNS[tbl], NKEY[tbl]
        if verb in ("upsert", "replace"):
            (row,) = args
            marks = ", ".join(["%s"] * len(row))
            if verb == "replace":
                todo = [(f"REPLACE INTO {tbl} VALUES ({marks})", row)]
            else:
                # ON DUPLICATE KEY fires on the UNIQUE email too (it would update the
                # user holding it): SQLite's upsert refuses that collision, so do we.
                if tbl == "users" and self._query(
                    "SELECT 1 FROM users WHERE email = %s AND id <> %s", (row[1], row[0])
                ):
                    raise Refused("the email is taken")
                sets = ", ".join(f"{c} = VALUES({c})" for c in cols[nkey:])
                todo = [(f"INSERT INTO {tbl} VALUES ({marks}) ON DUPLICATE KEY UPDATE {sets}", row)]
        else:
            todo = self._statements(verb, tbl, args)
        cur = self.conn.cursor()
        cur.execute("SET timestamp = %s", (ms / 1000,))
        cur.execute("START TRANSACTION")
        try:
            for sql, params in todo:
                cur.execute(sql, params)
        except pymysql.err.IntegrityError as exc:
            self.conn.rollback()
            raise Refused(str(exc)) from None
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def close(self) -> None:
        super().close()
        self.conn.close()
        admin = _mysql(None)
        drop_mariadb_database(admin, self.name)
        admin.close()


def servers_reachable() -> str | None:
    """Why the servers cannot be used (None when both answer)."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except Exception as exc:  # an ImportError or any connection failure
        return f"PostgreSQL at {PG_ADMIN}: {' '.join(str(exc).split())}"
    try:
        _mysql(None).close()
    except Exception as exc:
        return f"MariaDB at {MYSQL_SERVER}: {exc}"
    return None
