"""The rows of a PostgreSQL scope's snapshot, for a clone (see
:mod:`peersync._adapters.sql.snapshot` and :meth:`PostgresPeer.snapshot_of`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

from peersync._adapters.sql.snapshot import CHUNK_ROWS, Row

from .schema import Tracked, q, read_expr


def values_sql(t: Tracked, key_from: str = "t") -> str:
    """The row's values in canonical wire form, in column order; the key
    columns from the tracking row (``t``: a tombstone has its key there)
    unless ``key_from`` is ``u``."""
    kmap = dict(zip(t.schema.key, t.kcols, strict=True))
    return ", ".join(
        read_expr(c, f"t.{kmap[c.spec.name]}" if c.spec.name in kmap and key_from == "t" else f"u.{q(c.spec.name)}")
        for c in t.columns
    )


# A local change of the source whose creation is its update version, with no made-with record.
LOCAL = "t.scope IS DISTINCT FROM %(scope)s AND t.ctick IS NULL AND t.mw IS NULL"


def tracking_sql(t: Tracked, local: bool) -> str:
    """Tracking rows (:data:`~peersync._adapters.sql.snapshot.Row`) with a
    local tick at or below ``%(tick)s``: the version scope
    ``%(scope)s`` reports, as the enumeration does (``peer.wire_sql``);
    with ``local``, only the local rows, in their short form, else the others."""
    by_name = {c.spec.name: c for c in t.columns}
    keys = ", ".join(read_expr(by_name[c], f"t.{k}") for c, k in zip(t.schema.key, t.kcols, strict=True))
    ours = "t.scope = %(scope)s"
    cols = (
        "t.lt, t.ctime, t.del::int"
        if local
        else f"t.lt, CASE WHEN {ours} THEN NULLIF(t.urep, 0) END, CASE WHEN {ours} THEN t.utick END,"
        " CASE WHEN t.ctick IS NOT NULL THEN NULLIF(t.crep, 0) END, t.ctick, t.ctime, t.del::int,"
        f" CASE WHEN {ours} THEN 1 ELSE 0 END, t.mw"
    )
    return f"SELECT {keys}, {cols} FROM {t.tracking} AS t WHERE t.lt <= %(tick)s AND {'' if local else 'NOT '}({LOCAL})"


def rows_sql(t: Tracked) -> str:
    """Every row of the table, values in canonical wire form (a plain scan:
    the clone drops rows whose tracking row it has not, see
    ``sqlite/from_server.py``)."""
    return f"SELECT {values_sql(t, 'u')} FROM {t.qualified} AS u"


def stream(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> Iterator[list[Row]]:
    """Chunks of ``sql``'s rows, through a server-side cursor in the
    caller's open transaction."""
    with conn.cursor(name="_peersync_snapshot") as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute(sql, params)
        while chunk := cur.fetchmany(CHUNK_ROWS):
            yield chunk
