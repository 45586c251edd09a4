"""The rows of a PostgreSQL scope's snapshot, for a clone (see
:mod:`peersync._adapters.sql.snapshot` and :meth:`PostgresPeer.snapshot`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

from peersync._adapters.sql.snapshot import CHUNK_ROWS, Row

from .schema import Tracked, q, read_expr


def values_sql(t: Tracked) -> str:
    """The row's values in canonical wire form, in column order; key
    columns from the tracking row (``t``), so a tombstone has its key."""
    kmap = dict(zip(t.schema.key, t.kcols, strict=True))
    return ", ".join(
        read_expr(c, f"t.{kmap[c.spec.name]}" if c.spec.name in kmap else f"u.{q(c.spec.name)}") for c in t.columns
    )


def snapshot_sql(t: Tracked) -> str:
    """Every row of ``t`` with a local tick at or below ``%(tick)s``, as
    :data:`~peersync._adapters.sql.snapshot.Row`: the version this scope
    (``%(scope)s``) reports, as the enumeration does (``peer.wire_sql``)."""
    return (
        "SELECT t.lt, t.del::int, CASE WHEN t.scope = %(scope)s THEN t.urep ELSE 0 END,"
        " CASE WHEN t.scope = %(scope)s THEN t.utick END,"
        " CASE WHEN t.ctick IS NULL THEN NULL ELSE COALESCE(t.crep, 0) END, t.ctick, t.ctime, t.mw,"
        f" {values_sql(t)} FROM {t.tracking} AS t LEFT JOIN {t.qualified} AS u ON {t.key_match('t', 'u')}"
        f" WHERE t.lt <= %(tick)s AND (t.del OR u.{q(t.schema.key[0])} IS NOT NULL)"
    )


def snapshot_rows(conn: psycopg.Connection[Any], t: Tracked, scope: int, tick: int) -> Iterator[list[Row]]:
    """Chunks of :func:`snapshot_sql`'s rows, through a server-side cursor
    in the caller's open transaction."""
    with conn.cursor(name=f"_peersync_snapshot_{t.tid}") as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute(snapshot_sql(t), {"scope": scope, "tick": tick})
        while chunk := cur.fetchmany(CHUNK_ROWS):
            yield chunk
