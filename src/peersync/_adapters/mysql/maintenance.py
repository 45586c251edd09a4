"""Compaction of the MariaDB change log.

Every change appends a row to ``_peersync_log`` and points its tracking row
at it (``lt``; a local creation keeps its first entry as ``cid``). An entry
that no tracking row points at any more (a later change of the same row
superseded it) is dead weight: :func:`compact` drops those.

Why it is safe without locking the tracking tables: a log entry only ever
becomes referenced when it is made (a trigger or an apply inserts it and
points a tracking row at it in the same transaction) or when a change moves a
row's ``lt`` into its ``cid``, which keeps it referenced. So an entry seen
unreferenced in a committed state stays unreferenced for ever, and only
sealed entries (committed ones) are considered.
"""

from __future__ import annotations

from .conn import Conn, q
from .schema import LOG

_CHUNK = 20000


def compact(conn: Conn, tables: dict[int, str]) -> int:
    """Drop the log entries no tracking row refers to; ``tables`` maps each
    tracked table's log id to its tracking table. Returns how many went.
    Runs in short transactions of its own (one per chunk of entries)."""
    dropped = 0
    (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {LOG} WHERE seq IS NOT NULL").fetchone()
    for tid, tracking in sorted(tables.items()):
        lo = 0
        while lo < int(top):
            hi = lo + _CHUNK
            dead = [
                r[0]
                for r in conn.execute(
                    f"SELECT l.id FROM {LOG} AS l WHERE l.tbl = %s AND l.id > %s AND l.id <= %s"
                    f" AND l.seq IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(tracking)} AS t WHERE t.lt = l.id)"
                    f" AND NOT EXISTS (SELECT 1 FROM {q(tracking)} AS t WHERE t.cid = l.id)",
                    (tid, lo, hi),
                ).fetchall()
            ]
            if dead:
                with conn.txn(isolation="READ COMMITTED"):
                    conn.execute(
                        f"DELETE FROM {LOG} WHERE id IN ({', '.join(['%s'] * len(dead))}) AND seq IS NOT NULL", dead
                    )
                dropped += len(dead)
            lo = hi
    return dropped
