"""Incoming rows that collide with local rows of other keys on a UNIQUE
index, on MariaDB: as on SQLite, a conflict callback decides.

The callback sees the incoming row as ``remote_row`` and the first colliding
local row as ``local_row`` (type ``error``). ``Outcome.SOURCE`` deletes the
colliding local rows and writes the incoming one; ``Outcome.MERGE`` writes
the merged row (another value in the UNIQUE column, say). Both become local
changes made knowing the incoming version, so they reach every peer. Any
other answer, a failing callback, and every built-in policy leave the row a
pending ``error`` conflict, as before: it comes again next session.
"""

from __future__ import annotations

from typing import Any

from peersync._engine.model import Conflict, ConflictType, Outcome, Policy, Value
from peersync._engine.rules import resolve

from .conn import Conn, q
from .schema import Tracked

ER_DUP_ENTRY = 1062


def unique_indexes(conn: Conn, t: Tracked) -> list[tuple[str, ...]]:
    """The columns of each UNIQUE index of ``t`` other than its primary key."""
    out: dict[str, list[str]] = {}
    for index, col in conn.execute(
        "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = DATABASE()"
        " AND table_name = %s AND non_unique = 0 AND index_name <> 'PRIMARY' ORDER BY index_name, seq_in_index",
        (t.name,),
    ).fetchall():
        out.setdefault(index, []).append(col)
    return [tuple(cols) for cols in out.values()]


def colliding(
    conn: Conn, t: Tracked, uniques: list[tuple[str, ...]], key: tuple[Value, ...], params: list[Any]
) -> list[tuple[Any, ...]]:
    """Rows of other keys (their raw column values) holding ``params``' values
    (the incoming row, as the driver writes it) in a UNIQUE index."""
    s = t.schema
    pos = {c: i for i, c in enumerate(s.columns)}
    kp = [params[pos[k]] for k in s.key]
    itself = " AND ".join(f"{q(k)} <=> %s" for k in s.key)
    found: list[tuple[Any, ...]] = []
    for cols in uniques:
        vals = [params[pos[c]] for c in cols]
        if any(v is None for v in vals):
            continue  # NULLs never collide
        same = " AND ".join(f"{q(c)} = %s" for c in cols)
        for row in conn.execute(
            f"SELECT {', '.join(t.read(c) for c in s.columns)} FROM {q(t.name)} WHERE {same} AND NOT ({itself})",
            (*vals, *kp),
        ).fetchall():
            okey = tuple(row[pos[k]] for k in s.key)
            if all(tuple(f[pos[k]] for k in s.key) != okey for f in found):
                found.append(tuple(row))
    return found


def ask(handler: Any, conflict: Conflict) -> tuple[str, dict[str, Value] | None] | None:
    """What the callback decided for a collision: ("write", the incoming row),
    ("merge", the merged row), or None (the row stays a pending error)."""
    if isinstance(handler, Policy) or conflict.remote_row is None or conflict.type is not ConflictType.ERROR:
        return None
    try:
        res = resolve(handler, conflict)
    except Exception:  # a failing callback leaves the error as it is
        return None
    if res.outcome is Outcome.SOURCE:
        return "write", conflict.remote_row
    if res.outcome is Outcome.MERGE and res.row is not None:
        return "merge", {**conflict.remote_row, **res.row}
    return None
