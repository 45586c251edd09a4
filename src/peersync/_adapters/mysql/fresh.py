"""Rows never seen here, inserted straight into their tables.

An initial sync sends rows this database has never held: no user row, no
tracking row, versions it does not know. For such a batch the checked path
(``apply.py``: lock and read the keys' user and tracking rows, triage,
insert, stamp with ``ON DUPLICATE KEY UPDATE``) does work that can only find
nothing. Here a table's rows are inserted by multi-row ``INSERT``s, then
their log entries and tracking rows by plain ``INSERT``s, in a savepoint,
the tracking triggers stepping aside as for every write of the apply to a
table without triggers of the user's.

Why it is safe: the user table and the tracking table both have the key as
their primary key, so a key that has a user row or a tracking row here (a
tombstone, a concurrent writer's row, committed or not: an uncommitted one
makes the insert wait for its end) makes an ``INSERT`` fail; so does a
UNIQUE collision with another key, a missing parent, a CHECK or a value the
column refuses. Any such failure rolls the savepoint back and the table
takes the checked path, which triages it row by row. A deadlock or a lock
wait timeout is raised as on the checked path (the caller retries the whole
apply). Only tables whose values cannot come back in another form are
eligible (``normalized.py``), and only when no table of the batch has
triggers of the user's (which could change these rows after they are
written: the checked path looks for that): nothing is left to check after
the write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from peersync._engine import model
from peersync._engine.knowledge import Knowledge

from .conn import ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, Conn, errno
from .normalized import rewrites
from .schema import Tracked

# Smaller batches gain little and would pay for a failed attempt more often.
MIN_ROWS = 100
_SAVEPOINT = "peersync_fresh"


def eligible(t: Tracked, effects: bool, changes: Sequence[model.Change], own: bytes, known: Knowledge) -> bool:
    """May ``changes`` of ``t`` take this path? All live rows, each key once,
    of versions neither made here nor known here; ``effects``: a table of
    the batch has triggers of the user's."""
    if effects or len(changes) < MIN_ROWS or any(rewrites(s) for s in t.specs):
        return False
    for c in changes:
        rep, tick = c[2]
        if c[1] or rep == own or known.contains(rep, tick):
            return False
    kp = t.schema.key_positions
    return len({tuple(c[5][p] for p in kp) for c in changes}) == len(changes)


def write(conn: Conn, t: Tracked, params: list[list[Any]], stamp: Callable[[], None]) -> bool:
    """Insert the rows ``params`` (bound values, in column order) into ``t``,
    then run ``stamp`` (their log entries and tracking rows, by plain
    ``INSERT``s), all in a savepoint. False, with nothing written, when any
    statement fails; a deadlock or a lock wait timeout propagates (a deadlock
    has rolled the whole transaction back: no savepoint is left to return to)."""
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        conn.executemany(t.insert_sql, params)
        stamp()
    except pymysql.err.MySQLError as exc:
        if errno(exc) in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT):
            raise
        conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        return False
    conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    return True
