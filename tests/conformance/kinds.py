"""Peer kinds the conformance suite runs against, registered in :data:`KINDS`.

A kind knows four things about one kind of database: how to create a peer
holding the suite's tables with scope ``s`` provisioned, how to write to it as
a foreign writer (a program that knows nothing of peersync: plain SQL for a
SQL database, the write API for the memory peer), and how to read its rows and
its knowledge back. Every promise test runs once per kind and once per mixed
combination (see ``COMBOS``).

To add a database (PostgreSQL, MariaDB): write one more :class:`Kind`
subclass here and add it to ``KINDS``; nothing else changes. A kind that
cannot do something a test needs (e.g. tombstone cleanup) says so by
returning False from :meth:`Kind.can`; a test marked ``needs(ability)`` runs
only for combinations whose kinds all have it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Knowledge
from peersync._adapters.memory import MemoryPeer, drop_memory, open_memory
from peersync._engine.model import TableSchema

from ..helpers import at
from ..http.threaded import ThreadedServer
from .pool import Pool, pool
from .servers import MySQLServer, PostgresServer

SCOPE = "s"
# The suite's tables: a single-column key and a composite text key.
TABLES = (
    TableSchema("item", ("id", "name", "qty"), ("id",), ("integer", "text", "integer")),
    TableSchema("note", ("owner", "slug", "body"), ("owner", "slug"), ("text", "text", "text")),
)
TABLE_NAMES = [t.name for t in TABLES]
SHM = "/dev/shm"
Values = dict[str, Any]


class Kind:
    """One kind of peer. Subclasses implement every method."""

    name = ""

    def create(self, label: str) -> peersync.Peer:
        """A new, empty database holding :data:`TABLES`, with scope ``s`` over them."""
        raise NotImplementedError

    def insert(self, peer: Any, table: str, values: Values, ms: int) -> None:
        """A foreign writer inserts a row; its clock reads ``ms``."""
        raise NotImplementedError

    def update(self, peer: Any, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        raise NotImplementedError

    def delete(self, peer: Any, table: str, key: tuple[Any, ...], ms: int) -> None:
        raise NotImplementedError

    def rows(self, peer: Any, table: str) -> list[tuple[Any, ...]]:
        """Live rows, every column in table order, sorted."""
        raise NotImplementedError

    def knowledge(self, peer: Any) -> Knowledge:
        return peer.describe(SCOPE).knowledge

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        """A kind instance for one test, with ``tmp`` its temporary folder."""
        raise NotImplementedError

    @classmethod
    def can(cls, feature: str) -> bool:
        """Optional abilities: ``"forget-tombstones"``; ``"client-policy"``, a
        destination that resolves conflicts by the policy or callback the
        session's caller passes (a served one uses its own, set at serve)."""
        return feature == "client-policy"

    def forget_tombstones(self, peer: Any) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Release what :meth:`create` made (called once per test)."""


def _where(t: TableSchema, key: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    return " AND ".join(f'"{k}" = ?' for k in t.key), key


def _schema(table: str) -> TableSchema:
    return next(t for t in TABLES if t.name == table)


@dataclass
class SQLiteKind(Kind):
    """SQLite files in a temporary folder; the foreign writer is plain sqlite3."""

    folder: Path
    owned: bool = False  # the folder is this kind's to remove
    name = "sqlite"

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        # RAM-backed when the system has it: each commit to a file on disk waits
        # for the disk, and the suite commits thousands of times.
        if os.path.isdir(SHM):
            return cls(Path(tempfile.mkdtemp(dir=SHM)), owned=True)
        return cls(tmp)

    def create(self, label: str) -> peersync.Peer:
        path = self.folder / f"{label}.db"
        conn = sqlite3.connect(path)
        for t in TABLES:
            types = {"integer": "INTEGER", "text": "TEXT"}
            cols = ", ".join(f'"{c}" {types[k]}' for c, k in zip(t.columns, t.types, strict=True))
            conn.execute(f'CREATE TABLE "{t.name}" ({cols}, PRIMARY KEY ({", ".join(t.key)}))')
        conn.commit()
        conn.close()
        db = peersync.connect(path)
        db.provision(SCOPE, TABLE_NAMES)
        return db

    def insert(self, peer: Any, table: str, values: Values, ms: int) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        at(
            peer.path,
            ms,
            (f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(values))})', tuple(values.values())),
        )

    def update(self, peer: Any, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        where, args = _where(_schema(table), key)
        sets = ", ".join(f'"{c}" = ?' for c in values)
        at(peer.path, ms, (f'UPDATE "{table}" SET {sets} WHERE {where}', (*values.values(), *args)))

    def delete(self, peer: Any, table: str, key: tuple[Any, ...], ms: int) -> None:
        where, args = _where(_schema(table), key)
        at(peer.path, ms, (f'DELETE FROM "{table}" WHERE {where}', args))

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.folder, ignore_errors=True)

    def rows(self, peer: Any, table: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(peer.path)
        cols = ", ".join(f'"{c}"' for c in _schema(table).columns)
        out = sorted(conn.execute(f'SELECT {cols} FROM "{table}"').fetchall())
        conn.close()
        return out


@dataclass
class MemoryKind(Kind):
    """In-memory databases; the foreign writer is the memory peer's write API."""

    prefix: str
    name = "memory"

    def __post_init__(self) -> None:
        self.names: list[str] = []

    def create(self, label: str) -> peersync.Peer:
        name = f"{self.prefix}-{label}"
        self.names.append(name)
        peer = open_memory(name)
        for t in TABLES:
            peer.create_table(t)
        peer.provision(SCOPE, TABLE_NAMES)
        return peer

    def insert(self, peer: MemoryPeer, table: str, values: Values, ms: int) -> None:
        peer.insert(table, values, at=ms)

    def update(self, peer: MemoryPeer, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        peer.update(table, key, values, at=ms)

    def delete(self, peer: MemoryPeer, table: str, key: tuple[Any, ...], ms: int) -> None:
        peer.delete(table, key, at=ms)

    def rows(self, peer: MemoryPeer, table: str) -> list[tuple[Any, ...]]:
        return sorted(peer.rows(table))

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        return cls(f"conformance-{uuid.uuid4().hex}")

    @classmethod
    def can(cls, feature: str) -> bool:
        return feature in ("forget-tombstones", "client-policy")

    def forget_tombstones(self, peer: MemoryPeer) -> None:
        peer.forget_tombstones(SCOPE)

    def cleanup(self) -> None:
        for name in self.names:
            drop_memory(name)


MYSQL_SERVER = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")


@dataclass
class MySQLKind(Kind):
    """Databases on the MariaDB server (``PEERSYNC_MYSQL``), one per peer,
    taken from the session's pool (pool.py: reset to freshly provisioned,
    with a new replica id); the foreign writer is plain PyMySQL, its clock set
    with ``SET timestamp``. Unreachable: skipped with the reason, except under
    ``CI=true``, where that fails the test."""

    name = "mysql"

    def __post_init__(self) -> None:
        self.made: list[str] = []
        self.conns: dict[str, Any] = {}  # database -> the foreign writer's (and reader's) connection

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        return cls()

    @staticmethod
    def _connect(database: str | None = None) -> Any:
        import pymysql

        from peersync._adapters.mysql.conn import parse_url

        t = parse_url(MYSQL_SERVER + "/" + (database or "mysql"))
        try:
            # ssl_disabled: PyMySQL would otherwise build a TLS context (about 0.1 s of CPU)
            # for every connection, to find the test server has no TLS.
            return pymysql.connect(
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password,
                database=database,
                autocommit=True,
                ssl_disabled=True,
            )
        except pymysql.err.OperationalError as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"MariaDB server at {MYSQL_SERVER} unreachable under CI=true: {exc}")
            pytest.skip(f"MariaDB server at {MYSQL_SERVER} unreachable: {exc}")

    @classmethod
    def pool(cls) -> Pool:
        """The session's pool of provisioned databases on this server (see pool.py)."""
        return pool(MYSQL_SERVER, lambda: Pool(cls.server(), "ps_conf_"))

    @classmethod
    def server(cls) -> MySQLServer:
        return MySQLServer(cls._connect, lambda name: f"{MYSQL_SERVER}/{name}", _mysql_ddl())

    def create(self, label: str) -> peersync.Peer:
        name = self.pool().acquire()
        self.made.append(name)
        return peersync.connect(f"{MYSQL_SERVER}/{name}")

    def _conn(self, peer: Any) -> Any:
        """The foreign program's connection to ``peer``'s database (autocommit:
        each write is its own transaction, each read sees every commit)."""
        name = peer.url.rsplit("/", 1)[1]
        conn = self.conns.get(name)
        if conn is None:
            conn = self.conns[name] = self._connect(name)
        return conn

    def _write(self, peer: Any, ms: int, sql: str, args: tuple[Any, ...]) -> None:
        cur = self._conn(peer).cursor()
        cur.execute("SET timestamp = %s", (ms / 1000,))
        cur.execute(sql, args)

    def insert(self, peer: Any, table: str, values: Values, ms: int) -> None:
        cols = ", ".join(f"`{c}`" for c in values)
        sql = f"INSERT INTO `{table}` ({cols}) VALUES ({', '.join(['%s'] * len(values))})"
        self._write(peer, ms, sql, tuple(values.values()))

    def update(self, peer: Any, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        where = " AND ".join(f"`{k}` = %s" for k in _schema(table).key)
        sets = ", ".join(f"`{c}` = %s" for c in values)
        self._write(peer, ms, f"UPDATE `{table}` SET {sets} WHERE {where}", (*values.values(), *key))

    def delete(self, peer: Any, table: str, key: tuple[Any, ...], ms: int) -> None:
        where = " AND ".join(f"`{k}` = %s" for k in _schema(table).key)
        self._write(peer, ms, f"DELETE FROM `{table}` WHERE {where}", key)

    def rows(self, peer: Any, table: str) -> list[tuple[Any, ...]]:
        cur = self._conn(peer).cursor()
        cur.execute(f"SELECT {', '.join(f'`{c}`' for c in _schema(table).columns)} FROM `{table}`")
        return sorted(tuple(r) for r in cur.fetchall())

    def cleanup(self) -> None:
        for conn in self.conns.values():
            conn.close()
        for name in self.made:
            self.pool().release(name)


def _mysql_ddl() -> list[str]:
    out = []
    for t in TABLES:
        sql = {"integer": "BIGINT", "text": "TEXT COLLATE utf8mb4_bin"}
        types = {c: sql[k] for c, k in zip(t.columns, t.types, strict=True)}
        types.update({c: types[c].replace("TEXT", "VARCHAR(191)") for c in t.key})
        cols = ", ".join(f"`{c}` {types[c]}" for c in t.columns)
        out.append(f"CREATE TABLE `{t.name}` ({cols}, PRIMARY KEY ({', '.join(t.key)}))")
    return out


@dataclass
class _File:
    path: Path


@dataclass
class HTTPKind(Kind):
    """SQLite files, each served over HTTP by a real uvicorn server (in a
    thread: see tests/http/threaded.py); the peer is the HTTP client, the
    foreign writer writes the served file."""

    folder: Path
    name = "http"

    @classmethod
    def can(cls, feature: str) -> bool:
        return False

    def __post_init__(self) -> None:
        self.files = SQLiteKind(self.folder)
        self.servers: list[ThreadedServer] = []
        self.paths: dict[int, _File] = {}

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        return cls(tmp)

    def create(self, label: str) -> peersync.Peer:
        self.files.create(label).close()
        path = self.folder / f"{label}.db"
        server = ThreadedServer(path)
        self.servers.append(server)
        peer = peersync.connect(server.url)
        self.paths[id(peer)] = _File(path)
        return peer

    def insert(self, peer: Any, table: str, values: Values, ms: int) -> None:
        self.files.insert(self.paths[id(peer)], table, values, ms)

    def update(self, peer: Any, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        self.files.update(self.paths[id(peer)], table, key, values, ms)

    def delete(self, peer: Any, table: str, key: tuple[Any, ...], ms: int) -> None:
        self.files.delete(self.paths[id(peer)], table, key, ms)

    def rows(self, peer: Any, table: str) -> list[tuple[Any, ...]]:
        return self.files.rows(self.paths[id(peer)], table)

    def cleanup(self) -> None:
        # Told all at once, the servers shut down together (each takes up to
        # uvicorn's 0.1 s tick to notice).
        for server in self.servers:
            server.server.should_exit = True
        for server in self.servers:
            server.stop()


@dataclass
class PostgresKind(Kind):
    """A database per peer on the PostgreSQL server of ``$PEERSYNC_PG_URL``,
    taken from the session's pool (pool.py: reset to freshly provisioned,
    with a new replica id); the foreign writer is plain psycopg, its clock
    set through ``peersync.clock_ms`` (the triggers' clock hook). Unreachable:
    skipped with the reason, except under ``CI=true``, where that fails the test."""

    name = "postgres"

    def __post_init__(self) -> None:
        self.made: list[str] = []
        self.conns: dict[str, Any] = {}

    @staticmethod
    def admin_url() -> str:
        return os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

    @classmethod
    def fresh(cls, tmp: Path) -> Kind:
        return cls()

    @classmethod
    def pool(cls) -> Pool:
        """The session's pool of provisioned databases on this server (see pool.py)."""
        return pool(cls.admin_url(), lambda: Pool(cls.server(), "peersync_c_"))

    @classmethod
    def server(cls) -> PostgresServer:
        import psycopg

        try:
            admin = psycopg.connect(cls.admin_url(), autocommit=True, connect_timeout=3)
        except psycopg.Error as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL server at {cls.admin_url()} unreachable under CI=true: {exc}")
            pytest.skip(f"PostgreSQL server at {cls.admin_url()} unreachable: {exc}")
        return PostgresServer(admin, cls.url, _pg_ddl())

    @classmethod
    def url(cls, name: str) -> str:
        return cls.admin_url().rpartition("/")[0] + "/" + name

    def create(self, label: str) -> peersync.Peer:
        name = self.pool().acquire()
        self.made.append(name)
        return peersync.connect(self.url(name))

    def _write(self, peer: Any, ms: int, sql: str, args: tuple[Any, ...]) -> None:
        import psycopg

        conn = self.conns.get(peer.url)
        if conn is None:
            conn = self.conns[peer.url] = psycopg.connect(peer.url)
        with conn.transaction():
            conn.execute("SELECT set_config('peersync.clock_ms', %s, true)", (str(ms),))
            conn.execute(sql.replace("?", "%s"), args)

    def insert(self, peer: Any, table: str, values: Values, ms: int) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        sql = f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(values))})'
        self._write(peer, ms, sql, tuple(values.values()))

    def update(self, peer: Any, table: str, key: tuple[Any, ...], values: Values, ms: int) -> None:
        where, args = _where(_schema(table), key)
        sets = ", ".join(f'"{c}" = ?' for c in values)
        self._write(peer, ms, f'UPDATE "{table}" SET {sets} WHERE {where}', (*values.values(), *args))

    def delete(self, peer: Any, table: str, key: tuple[Any, ...], ms: int) -> None:
        where, args = _where(_schema(table), key)
        self._write(peer, ms, f'DELETE FROM "{table}" WHERE {where}', args)

    def rows(self, peer: Any, table: str) -> list[tuple[Any, ...]]:
        import psycopg

        cols = ", ".join(f'"{c}"' for c in _schema(table).columns)
        with psycopg.connect(peer.url) as conn:
            return sorted(conn.execute(f'SELECT {cols} FROM "{table}"').fetchall())

    def cleanup(self) -> None:
        for conn in self.conns.values():
            conn.close()
        for name in self.made:
            self.pool().release(name)


def _pg_ddl() -> list[str]:
    types = {"integer": "bigint", "text": "text"}
    out = []
    for t in TABLES:
        cols = ", ".join(f'"{c}" {types[k]}' for c, k in zip(t.columns, t.types, strict=True))
        out.append(f'CREATE TABLE "{t.name}" ({cols}, PRIMARY KEY ({", ".join(t.key)}))')
    return out


# name -> Kind subclass (its ``fresh(tmp)`` makes one for a test)
KINDS: dict[str, type[Kind]] = {
    "sqlite": SQLiteKind,
    "memory": MemoryKind,
    "mysql": MySQLKind,
    "postgres": PostgresKind,
    "http": HTTPKind,
}
# Peers of a test take their kinds from a combination in turn: one kind alone,
# then ordered pairs of two different kinds (mixed pairs both ways): every
# pair of SQL databases, and the reference peer and the HTTP transport with
# SQLite only (SQLite is checked against the reference, and what crosses the
# wire does not depend on the database behind the server).
_WITH_SQLITE_ONLY = {"memory", "http"}
COMBOS = [(k,) for k in KINDS] + [
    (a, b) for a in KINDS for b in KINDS if a != b and (not {a, b} & _WITH_SQLITE_ONLY or "sqlite" in (a, b))
]
