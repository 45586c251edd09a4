"""Reading a batch's rows from a SQLite database, in tick order across tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Sequence
from typing import Any

from peersync._adapters.sql.batch_frame import take_rows
from peersync._adapters.sql.meta import Meta, range_rows
from peersync._engine.errors import (
    StorageError,
)
from peersync._engine.knowledge import Knowledge

from .schema import Scope, Tracked


def wire_rows(
    conn: sqlite3.Connection, cur: sqlite3.Cursor, heads_sql: str, params: dict[str, int]
) -> Generator[Sequence[Any], None, None]:
    """The rows of ``cur`` (see ``Tracked.wire_sql``) in wire form: a short
    row as it is, any other (negative tick offset) completed with its header
    from ``heads_sql``, read in step from the first such row on (closing the
    generator closes that cursor)."""
    heads: sqlite3.Cursor | None = None
    try:
        for row in cur:
            if row[0] > 0:
                yield row
                continue
            dlt = -row[0]
            if heads is None:
                heads = conn.execute(heads_sql, {**params, "after": params["first0"] + dlt - 1})
            head = heads.fetchone()
            if head is None or head[0] != dlt:  # one snapshot: the two queries see the same rows
                raise StorageError(f"the header of the row at tick {params['first0'] + dlt} went missing")
            yield (*head, *row[1:])
    finally:
        if heads is not None:
            heads.close()


def skip_blocks(blocks: list[tuple[int, int]], after: int) -> int:
    """Advance ``after`` over skippable blocks that start right after it."""
    for lo, hi in blocks:
        if lo <= after + 1 <= hi:
            after = hi
    return after


def read_rows(
    conn: sqlite3.Connection,
    sc: Scope,
    filter_known: bool,
    marks: dict[int, int],
    first0: int,
    start: int,
    horizon: int,
    max_rows: int,
    room: int,
) -> tuple[list[list[Any]], int | None]:
    """Rows of ticks ``(start, horizon]`` in tick order, across tables, up to
    ``max_rows`` rows and ``room`` bytes (the first row goes whatever its
    size). Rows are read and encoded one at a time, so memory holds one
    batch, whatever the rows' size. Returns the tables' packed rows and the
    tick offset of the last row taken, or None if every row was taken."""
    readers: list[tuple[Tracked, int, Generator[Sequence[Any], None, None]]] = []
    cursors: list[sqlite3.Cursor] = []
    try:
        for t in sc.tables:
            base = conn.execute(t.first_time_sql(), (start,)).fetchone()
            params = {"after": start, "horizon": horizon, "first0": first0, "scope": sc.idx}
            params["base"] = base[0] if base else 0
            rows_sql, heads_sql = t.wire_sql(filter_known, marks)
            cursors.append(conn.execute(rows_sql, params))
            readers.append((t, params["base"], wire_rows(conn, cursors[-1], heads_sql, params)))
        return take_rows([(t.name, base, rows) for t, base, rows in readers], max_rows, room)
    finally:
        for _, _, rows in readers:
            rows.close()
        for cur in cursors:
            cur.close()


def known_table(conn: sqlite3.Connection, meta: Meta, sc: Scope, known: Knowledge, after: int) -> bool:
    """Load what the destination knows, in local replica indexes, into
    ``temp._peersync_known``; False when it cannot exclude any candidate row."""
    rows = range_rows(known, meta.rep_idx, sc.rid, after)
    if not rows:
        return False
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _peersync_known (rep INTEGER, lo INTEGER, hi INTEGER, PRIMARY KEY (rep, lo))"
    )
    conn.execute("DELETE FROM temp._peersync_known")
    conn.executemany("INSERT OR IGNORE INTO temp._peersync_known VALUES (?, ?, ?)", rows)
    return True
