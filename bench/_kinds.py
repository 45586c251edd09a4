"""Peer kinds: how the benchmark makes, fills, copies and measures a database.

The figures only talk to a kind through the methods below, so a PostgreSQL,
MariaDB or HTTP kind is one more class registered in ``KINDS`` (selected with
``--kind``): it makes databases from a URL base (e.g. ``postgresql://host/``
with one database per label), returns a :class:`peersync.Peer` from
``connect`` and a DB-API connection from ``raw``. A figure a kind cannot
measure (e.g. on-disk sizes) is skipped when the method it needs raises
``NotImplementedError``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import peersync
from _common import COLUMNS, SCHEMA, SCOPE, TABLE, Row


class PeerKind(Protocol):
    name: str
    placeholder: str  # DB-API parameter marker of ``raw`` connections

    def create(self, label: str, rows: Iterable[Row] = ()) -> str: ...
    def clone(self, db: str, label: str) -> str: ...
    def drop(self, db: str) -> None: ...
    def connect(self, db: str) -> peersync.Database: ...
    def raw(self, db: str, *, autocommit: bool = False) -> Any: ...
    def tune_small_transactions(self, conn: Any) -> str: ...
    def provision(self, db: str) -> None: ...
    def storage(self, db: str) -> dict[str, int]: ...
    def copy_rows(self, src: str, dst: str, chunk: int = 5000) -> int: ...
    def copy_table(self, db: str) -> None: ...


class SQLiteKind:
    """SQLite files in the benchmark's work folder."""

    name = "sqlite"
    placeholder = "?"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def _path(self, label: str) -> str:
        return str(self.workdir / f"{label}.db")

    def create(self, label: str, rows: Iterable[Row] = ()) -> str:
        path = self._path(label)
        self.drop(path)
        conn = sqlite3.connect(path)
        conn.execute(SCHEMA)
        with conn:
            conn.executemany(f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        conn.close()
        return path

    def clone(self, db: str, label: str) -> str:
        path = self._path(label)
        self.drop(path)
        conn = sqlite3.connect(db)  # fold a WAL back into the file before copying it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        shutil.copyfile(db, path)
        with peersync.connect(path) as clone:  # a clone of a provisioned database is a new replica
            for scope in clone.scopes():
                clone.reidentify(scope)
        return path

    def drop(self, db: str) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)

    def connect(self, db: str) -> peersync.Database:
        return peersync.connect(db)

    def raw(self, db: str, *, autocommit: bool = False) -> sqlite3.Connection:
        """A foreign writer: plain sqlite3, as any other program would open the file."""
        return sqlite3.connect(db, isolation_level=None if autocommit else "DEFERRED")

    def tune_small_transactions(self, conn: sqlite3.Connection) -> str:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return "WAL, synchronous=NORMAL"

    def provision(self, db: str) -> None:
        with self.connect(db) as peer:
            peer.provision(SCOPE, [TABLE])

    def storage(self, db: str) -> dict[str, int]:
        """Bytes on disk per table and index (dbstat), every object of the file."""
        conn = sqlite3.connect(db)
        try:
            rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError as exc:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
            raise NotImplementedError("this SQLite has no dbstat virtual table") from exc
        finally:
            conn.close()
        return {name: int(size) for name, size in rows}

    def copy_rows(self, src: str, dst: str, chunk: int = 5000) -> int:
        """The baseline copy: ``fetchmany`` then ``executemany``, one transaction."""
        s, d = sqlite3.connect(src), sqlite3.connect(dst, isolation_level=None)
        cur = s.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}")
        insert = f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(COLUMNS))})"
        n = 0
        d.execute("BEGIN")
        while rows := cur.fetchmany(chunk):
            d.executemany(insert, rows)
            n += len(rows)
        d.execute("COMMIT")
        s.close()
        d.close()
        return n

    def copy_table(self, db: str) -> None:
        """Copy the table inside its database: CREATE TABLE + INSERT INTO ... SELECT, one transaction."""
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute(SCHEMA.replace(f"TABLE {TABLE} ", f"TABLE {TABLE}_copy ", 1))
        conn.execute(f"INSERT INTO {TABLE}_copy SELECT * FROM {TABLE}")
        conn.execute("COMMIT")
        conn.close()


KINDS: dict[str, Callable[[Path], PeerKind]] = {"sqlite": SQLiteKind}


def make_kind(name: str, workdir: Path) -> PeerKind:
    return KINDS[name](workdir)
