"""A server database (PostgreSQL or MariaDB) seen the way an adversary sees
it: foreign writer connections with open transactions, a way to kill them,
and a ledger of every batch each destination received.

One table, the same on every database, so the checks compare plain tuples::

    item (id integer PRIMARY KEY, name text, qty integer)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peersync
from peersync.testing import RecordingPeer

SCOPE = "s"
PG_SCHEMA = "CREATE TABLE item (id integer PRIMARY KEY, name text, qty integer)"
MYSQL_SCHEMA = "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(200), qty INT) ENGINE=InnoDB"
SQLITE_SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)"

Row = tuple[Any, ...]


class Writer:
    """A foreign writer: its own driver connection, autocommit off, so each
    transaction stays open until :meth:`commit` or :meth:`rollback`.
    ``lock_wait`` bounds how long a statement waits for a row lock (seconds)."""

    def __init__(self, server: Server, *, isolation: str | None = None, lock_wait: float | None = None) -> None:
        self.kind = server.kind
        if self.kind == "pg":
            import psycopg

            options = f"-c lock_timeout={int(lock_wait * 1000)}" if lock_wait else ""
            self.conn: Any = psycopg.connect(server.url, options=options)
            if isolation:
                self.conn.isolation_level = psycopg.IsolationLevel[isolation.replace(" ", "_")]
            self.pid = int(self.conn.info.backend_pid)
        else:
            from tests.mysql.conftest import raw

            self.conn = raw(server.url, autocommit=False)
            cur = self.conn.cursor()
            if isolation:
                cur.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")
            if lock_wait:
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, round(lock_wait))}")
            self.pid = int(self.conn.thread_id())

    def run(self, statement: str, params: Any = None) -> list[Row]:
        """Run one statement inside the open transaction (opening one if needed)."""
        if self.kind == "pg":
            cur = self.conn.execute(statement, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        c = self.conn.cursor()
        c.execute(statement, params)
        return [tuple(r) for r in c.fetchall()] if c.description else []

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a killed connection may refuse even to close
            self.conn.close()


@dataclass
class Server:
    """A provisioned server database (``kind`` ``pg`` or ``mysql``)."""

    kind: str
    url: str
    admin: Any = None

    def __post_init__(self) -> None:
        if self.kind == "pg":
            import psycopg

            self.admin = psycopg.connect(self.url, autocommit=True)
        else:
            from tests.mysql.conftest import raw

            self.admin = raw(self.url)

    def sql(self, statement: str, params: Any = None) -> list[Row]:
        """One autocommit statement of a foreign writer."""
        if self.kind == "pg":
            cur = self.admin.execute(statement, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        c = self.admin.cursor()
        c.execute(statement, params)
        return [tuple(r) for r in c.fetchall()] if c.description else []

    def rows(self) -> list[Row]:
        return sorted(self.sql("SELECT id, name, qty FROM item"))

    def writer(self, **kw: Any) -> Writer:
        return Writer(self, **kw)

    def kill(self, w: Writer) -> None:
        """End a writer's connection from outside, mid-transaction."""
        if self.kind == "pg":
            self.sql("SELECT pg_terminate_backend(%s)", (w.pid,))
        else:
            self.sql(f"KILL {w.pid}")
        w.close()

    def lock_waiters(self) -> int:
        """How many connections of this database wait for a row lock now."""
        if self.kind == "pg":
            return int(
                self.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )[0][0]
            )
        # information_schema.innodb_trx lags behind here; a locking read of
        # this database running for a while is a wait for a row lock.
        return int(
            self.sql(
                "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() AND command = 'Query'"
                " AND info LIKE '%%FOR UPDATE%%' AND time_ms > 300"
            )[0][0]
        )

    def close(self) -> None:
        self.admin.close()


def new_server(kind: str, request: Any) -> Server:
    """A fresh server database with table ``item``, provisioned as scope ``s``
    (``request`` is the pytest request, for the server fixtures)."""
    if kind == "pg":
        url = request.getfixturevalue("make_pg")(PG_SCHEMA)
    else:
        from tests.mysql.conftest import sql

        url = request.getfixturevalue("mysql_db")()
        sql(url, MYSQL_SCHEMA)
    with peersync.connect(url) as db:
        db.provision(SCOPE, ["item"])
    return Server(kind, url)


def sqlite_replica(path: Path, schema: str = SQLITE_SCHEMA) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.close()
    with peersync.connect(str(path)) as db:
        db.provision(SCOPE, ["item"])
    return str(path)


def sqlite_rows(path: str) -> list[Row]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT id, name, qty FROM item").fetchall())
    finally:
        conn.close()


def sqlite_write(path: str, *statements: str) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            for st in statements:
                conn.execute(st)
    finally:
        conn.close()


def rows_of(url: str) -> list[Row]:
    """The rows of ``item`` in any database of these tests, by URL or path."""
    if "://" not in url:
        return sqlite_rows(url)
    srv = Server("pg" if url.startswith("postgres") else "mysql", url)
    try:
        return srv.rows()
    finally:
        srv.close()


class Watched(RecordingPeer):
    """A peer that records every batch it receives and, as a source, calls
    ``before_batch(n)`` before it reads its n-th batch (after ``describe``
    has fixed the session's bound): the adversary's hook into a session."""

    def __init__(self, peer: Any, before_batch: Callable[[int], None] | None = None) -> None:
        super().__init__(peer)
        self.before_batch = before_batch
        self.batches_read = 0

    def changes(self, scope: str, known: Any, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        if self.before_batch is not None:
            self.before_batch(self.batches_read)
        self.batches_read += 1
        return super().changes(scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)


@dataclass
class Ledger:
    """Every change each destination received, over a whole history.

    :meth:`check` asserts the exactly-once half of the promises: no change
    reached a destination that already knew it (no redundancy), and no
    version reached the same destination twice."""

    seen: Counter[tuple[str, bytes, int]] = field(default_factory=Counter)
    redundant: list[str] = field(default_factory=list)
    sessions: int = 0

    def push(
        self,
        src: str,
        dst: str,
        *,
        before_batch: Callable[[int], None] | None = None,
        **kw: Any,
    ) -> peersync.SyncResult:
        """One session ``src`` -> ``dst`` (``kw`` as for :func:`peersync.sync`)."""
        a = Watched(peersync.connect(src), before_batch)
        b = Watched(peersync.connect(dst))
        try:
            result = peersync.sync(a, b, SCOPE, direction="push", **kw)  # type: ignore[arg-type]
        finally:
            self._record(dst, b)
            a.close()
            b.close()
        self.sessions += 1
        return result

    def _record(self, dst: str, rec: Watched) -> None:
        for sent in rec.received:
            for table, changes in sent.batch.changes.items():
                for ch in changes:
                    version = ch[2]
                    self.seen[(dst, version[0], version[1])] += 1
                    if version in sent.known_before:
                        self.redundant.append(f"{dst}: {table} {ch[5]!r} version {version[0].hex()[:8]}@{version[1]}")

    def received(self, dst: str) -> int:
        return sum(n for (d, _, _), n in self.seen.items() if d == dst)

    def check(self) -> None:
        twice = [f"{d}: {r.hex()[:8]}@{t} x{n}" for (d, r, t), n in self.seen.items() if n > 1]
        assert not self.redundant, f"sent to a destination that knew it: {self.redundant[:5]}"
        assert not twice, f"received more than once: {twice[:5]}"
