"""The rows of a MariaDB scope's snapshot, for a clone (see
:mod:`peersync._adapters.sql.snapshot` and :meth:`MySQLPeer.snapshot`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from peersync._adapters.sql.snapshot import CHUNK_ROWS, Row

from .conn import Conn
from .schema import Tracked
from .values import to_wire


def snapshot_rows(conn: Conn, t: Tracked, sql: str, params: dict[str, Any]) -> Iterator[list[Row]]:
    """Chunks of the rows ``sql`` reads (the enumeration's query, in the
    caller's open transaction, through an unbuffered cursor), their values
    turned into the canonical wire form."""
    convert = [to_wire(c) for c in t.specs]
    cur = conn.stream(sql, params)
    try:
        while chunk := cur.fetchmany(CHUNK_ROWS):
            yield [(*r[:8], *(f(v) for f, v in zip(convert, r[8:], strict=True))) for r in chunk]
    finally:
        cur.close()
