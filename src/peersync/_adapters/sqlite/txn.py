"""One transaction helper for SQLite, used for every transaction and savepoint.

SQLite ends the *whole* transaction, not just the failing statement, when a
trigger runs ``RAISE(ROLLBACK, ...)``, when a constraint declared ``ON CONFLICT
ROLLBACK`` fails, and on some I/O errors. Every savepoint is then gone too:
``ROLLBACK TO`` fails with "no such savepoint" and hides the real error, and
statements run afterwards would each commit on their own. :func:`atomic`
rolls back only while its transaction is still open, and reports a lost
transaction as :class:`TransactionLost`, so the caller can start again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .schema import PREFIX

SAVEPOINT = PREFIX + "sp"


@contextmanager
def page_cache(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    """Let the connection's page cache hold at least ``kib`` KiB inside the
    block, then restore its setting. A write transaction whose pages outgrow
    the cache (2 MiB by default) spills them to the file before its commit,
    which costs an extra journal sync and writes pages twice: a large batch
    is applied with room for all it writes. The cache takes memory only for
    the pages it holds."""
    (size,) = conn.execute("PRAGMA cache_size").fetchone()
    # A negative setting is in KiB, a positive one in pages.
    (page,) = conn.execute("PRAGMA page_size").fetchone() if size > 0 else (1024,)
    if abs(size) * page // 1024 >= kib:
        yield
        return
    conn.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(size)}")


class TransactionLost(Exception):
    """The enclosing transaction ended inside an :func:`atomic` savepoint:
    everything written since ``BEGIN`` is gone. ``cause`` is SQLite's error
    (an :class:`sqlite3.IntegrityError` for ``RAISE(ROLLBACK)``)."""

    def __init__(self, cause: sqlite3.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


@contextmanager
def atomic(conn: sqlite3.Connection, *, begin: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """A transaction (``BEGIN {begin}`` ... ``COMMIT``) when none is open, else
    a savepoint nested in the open one. Leaving the block normally commits or
    releases it; an exception rolls the block back and propagates.

    If the transaction ended inside a savepoint block (see the module
    docstring), nothing is rolled back (nothing is left) and a
    :class:`sqlite3.Error` is raised again as :class:`TransactionLost`. A
    failed ``COMMIT`` (a deferred foreign key) rolls back before raising, so
    no lock is kept. The connection must be in autocommit mode
    (``isolation_level=None``).
    """
    outer = not conn.in_transaction
    conn.execute(f"BEGIN {begin}" if outer else f"SAVEPOINT {SAVEPOINT}")
    try:
        yield conn
    except BaseException as exc:
        if conn.in_transaction:
            if outer:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO {SAVEPOINT}")
                conn.execute(f"RELEASE {SAVEPOINT}")
            raise
        if outer or not isinstance(exc, sqlite3.Error):
            raise
        raise TransactionLost(exc) from exc
    if not outer:
        conn.execute(f"RELEASE {SAVEPOINT}")
        return
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
