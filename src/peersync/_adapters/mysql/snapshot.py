"""The rows of a MariaDB scope's snapshot, for a clone (see
:mod:`peersync._adapters.sql.snapshot` and :meth:`MySQLPeer.snapshot_of`).

A row's tick as the scope reports it is its sealed sequence number (its log
entry's ``seq``); rows whose entry is unsealed or sealed above the bound are
left out, as the enumeration leaves them out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from peersync._adapters.sql.snapshot import CHUNK_ROWS, Row
from peersync._engine.types import Column, ValueType

from . import schema as S
from .conn import Conn, q
from .schema import Tracked
from .values import to_wire

# Types whose values the driver returns in their canonical form already (``values.to_wire``).
AS_THEY_COME = frozenset({ValueType.INTEGER, ValueType.REAL, ValueType.TEXT, ValueType.JSON})


def _sealed(t: Tracked) -> str:
    return f"FROM {S.LOG} AS l JOIN {q(t.tracking)} AS t ON t.lt = l.id"


# A local change of the source whose creation is its update version, with no made-with record.
LOCAL = "(t.scope IS NULL OR t.scope <> %(scope)s) AND t.ctick IS NULL AND t.cid IS NULL AND t.mw IS NULL"


def tracking_sql(t: Tracked, local: bool) -> str:
    """Tracking rows (:data:`~peersync._adapters.sql.snapshot.Row`) sealed
    at or below ``%(tick)s``, with the version scope
    ``%(scope)s`` reports (as ``peer._wire_sql`` does); with ``local``,
    only the local rows, in their short form, else the others."""
    ours = "t.scope = %(scope)s"
    cols = (
        "l.seq, t.ctime, t.del"
        if local
        else f"l.seq, CASE WHEN {ours} THEN NULLIF(t.urep, 0) END,"
        f" CASE WHEN {ours} THEN t.utick END, CASE WHEN t.ctick IS NOT NULL THEN NULLIF(t.crep, 0) END,"
        " CASE WHEN t.ctick IS NOT NULL THEN t.ctick WHEN t.cid IS NOT NULL THEN lc.seq END,"
        f" t.ctime, t.del, CASE WHEN {ours} THEN 1 ELSE 0 END, t.mw"
    )
    return (
        f"SELECT {', '.join(f't.{k}' for k in t.kcols)}, {cols} {_sealed(t)}"
        f" LEFT JOIN {S.LOG} AS lc ON lc.id = t.cid WHERE l.tbl = {t.tid} AND l.seq <= %(tick)s"
        f" AND {'' if local else 'NOT '}({LOCAL})"
    )


def rows_sql(t: Tracked) -> str:
    """Every row of the table, read as the enumeration reads it (``Tracked.read``;
    the clone drops rows whose tracking row it has not)."""
    key = set(t.schema.key)
    cols = ", ".join(f"u.{q(c)}" if c in key else t.read(c, "u") for c in t.schema.columns)
    return f"SELECT {cols} FROM {q(t.name)} AS u"


def stream(conn: Conn, sql: str, params: dict[str, Any], specs: list[Column]) -> Iterator[list[Row]]:
    """Chunks of ``sql``'s rows (in the caller's open transaction, through
    an unbuffered cursor), their first ``len(specs)`` fields (of these
    columns) turned into the canonical wire form; rows pass as they come
    when no such column's driver values need it."""
    n = len(specs)
    convert = [to_wire(c) for c in specs]
    same = all(c.type in AS_THEY_COME for c in specs)
    cur = conn.stream(sql, params)
    try:
        while chunk := cur.fetchmany(CHUNK_ROWS):
            if same:
                yield chunk
            else:
                yield [(*(f(v) for f, v in zip(convert, r[:n], strict=True)), *r[n:]) for r in chunk]
    finally:
        cur.close()


def key_specs(t: Tracked) -> list[Column]:
    specs = {c.name: c for c in t.specs}
    return [specs[k] for k in t.schema.key]
