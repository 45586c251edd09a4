"""Provisioned server databases, made once per test session and reset
between tests: what keeps the MariaDB and PostgreSQL kinds of the
conformance suite fast.

Creating a database, its tables and peersync's metadata, tracking tables
and triggers costs a few hundred milliseconds a peer on these servers
(MariaDB's DDL commits and syncs to disk statement by statement), and the
suite creates over a thousand peers. A :class:`Pool` makes each database
once, provisioned, and records its **snapshot**: the rows of every table
(peersync's own included) and the counters (MariaDB ``AUTO_INCREMENT``,
PostgreSQL sequences) just after provisioning, and its **shape** (every
table, column, trigger and function). Handing a database out again resets it
to that snapshot by DML: every table emptied with the triggers off, the
snapshot's rows put back, the counters restored, and a new random replica id
(and creation time) in the scope's row, exactly what a fresh ``provision``
writes. So a test sees a database indistinguishable from a freshly
provisioned one, with its own replica identity; ``test_pool.py`` proves it by
comparing a used-then-reset database with a fresh one, table by table.

A database whose shape changed (a test ran DDL in it) is never reset: it is
dropped and a new one made. Every database of a pool is dropped at the end
of the session (``close_pools``, called by the suite's session fixture).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peersync._adapters.sql.meta import PREFIX

SCOPES = PREFIX + "scopes"
Rows = list[tuple[Any, ...]]


@dataclass
class Snapshot:
    """A database's state just after provisioning."""

    rows: dict[str, Rows]  # every table (qualified, quoted name) -> its rows, in column order
    columns: dict[str, list[str]]  # every table -> its column names
    counters: dict[str, Any]  # MariaDB: table -> AUTO_INCREMENT; PostgreSQL: sequence -> (last_value, is_called)
    shape: Rows  # every table, column, trigger and function, with their definitions


class Server:
    """What a pool needs of one database server (MariaDB or PostgreSQL)."""

    url: Callable[[str], str]  # a database's URL, by name

    def create(self, name: str) -> None:
        """Create database ``name`` holding the suite's tables, scope ``s`` provisioned."""
        raise NotImplementedError

    def drop(self, name: str) -> None:
        raise NotImplementedError

    def snapshot(self, name: str) -> Snapshot:
        raise NotImplementedError

    def shape(self, name: str) -> Rows:
        raise NotImplementedError

    def reset(self, name: str, snap: Snapshot, replica_id: bytes) -> None:
        """Put ``snap`` back, with ``replica_id`` as the scope's replica id."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the server's own connections (after every drop)."""


def scope_rows(snap: Snapshot, table: str, replica_id: bytes, created_at: int) -> Rows:
    """``table``'s rows in ``snap``; for the scopes table, as a new
    ``provision`` writes them: with ``replica_id`` and ``created_at`` (nothing
    else differs between two fresh provisionings)."""
    rows = snap.rows[table]
    if not table.strip("`").endswith(SCOPES):
        return rows
    cols = snap.columns[table]
    rid, created = cols.index("replica_id"), cols.index("created_at")
    out = []
    for row in rows:
        r = list(row)
        r[rid], r[created] = replica_id, created_at
        out.append(tuple(r))
    return out


@dataclass
class Pool:
    """Databases of one server, made on demand and reused: ``acquire()``
    names a database in the freshly provisioned state, ``release(name)``
    gives it back at the end of the test."""

    server: Server
    prefix: str
    free: list[str] = field(default_factory=list)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    made: int = 0
    reused: int = 0

    def acquire(self) -> str:
        while self.free:
            name = self.free.pop()
            snap = self.snapshots[name]
            if self.server.shape(name) == snap.shape:
                self.server.reset(name, snap, os.urandom(16))
                self.reused += 1
                return name
            self._discard(name)  # a test changed its tables or peersync's objects: never reused
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        self.snapshots[name] = Snapshot({}, {}, {}, [])  # dropped at close even if creating it fails
        self.server.create(name)
        self.snapshots[name] = self.server.snapshot(name)
        self.made += 1
        return name

    def release(self, name: str) -> None:
        self.free.append(name)

    def _discard(self, name: str) -> None:
        self.snapshots.pop(name, None)
        self.server.drop(name)

    def close(self) -> None:
        for name in list(self.snapshots):
            self._discard(name)
        self.free.clear()
        self.server.close()


# One pool per server, for the whole test session.
POOLS: dict[str, Pool] = {}


def pool(key: str, make: Callable[[], Pool]) -> Pool:
    p = POOLS.get(key)
    if p is None:
        p = POOLS[key] = make()
    return p


def close_pools() -> None:
    while POOLS:
        _, p = POOLS.popitem()
        p.close()
