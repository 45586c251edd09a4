"""A SQLite replica file made from a server replica's snapshot, for a clone
of a PostgreSQL or MariaDB scope (locally, or streamed by a server).

:func:`write_snapshot` fills an empty file with the state a SQLite copy of the
source replica would have, in the source's own ticks, so that
:func:`~peersync._adapters.sqlite.clone.build_clone` makes it a new replica
exactly as it does a SQLite backup:

- the scope's tables, created from their global shape (names and canonical
  types, :func:`declared_type`), so the clone's fingerprint is the source's;
  names the source maps locally are the global ones here. Constraints other
  than the key and NOT NULL (foreign keys, UNIQUE, CHECK, defaults) are not
  carried: the fingerprint leaves them out, and the clone's own tables
  are the user's to alter;
- the scope provisioned over them, with the source's replica id;
- each row at the snapshot's tick and its tracking row, at the row's tick
  *at the source* (its change log entry too), as ``reidentify`` makes a
  copy's rows: a local change of the source carries its version
  ``(source, tick)`` explicitly, a row that arrived through the scope its
  origin version; its creation version, change time, tombstone flag and
  made-with record. The triggers are dropped while the rows are written
  and made again after;
- the source's made-with records, its forgotten knowledge, and the
  knowledge its description hands out (own ticks up to the bound included);
- a change log entry at the bound itself, so the copy's clock is the bound:
  ``reidentify`` then claims the source's ticks up to it, which the
  knowledge already holds, and the clone's own ticks start above it.

Values arrive in the canonical wire form and are stored as a SQLite apply
stores them (a column's affinity applies, as it would to a synced row).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from peersync._adapters.sql.snapshot import Snapshot
from peersync._engine.errors import SchemaMismatch, StorageError
from peersync._engine.model import TableSchema
from peersync._engine.types import Column, ValueType

from . import schema as S
from .catalog import introspect
from .peer import SQLitePeer
from .schema import LOG, PREFIX, q
from .triggers import trigger_sql
from .txn import atomic

_V = ValueType
# A declared SQLite type per canonical type that SQLite reads back as the
# same type (schema.column_type): the fingerprint then matches the source's.
_DECLARED = {
    _V.INTEGER: "INTEGER", _V.REAL: "REAL", _V.DECIMAL: "NUMERIC", _V.TEXT: "TEXT", _V.BYTES: "BLOB",
    _V.BOOLEAN: "BOOLEAN", _V.DATE: "DATE", _V.TIME: "TIME", _V.TIMESTAMP: "TIMESTAMP",
    _V.TIMESTAMPTZ: "TIMESTAMPTZ", _V.UUID: "UUID", _V.JSON: "JSON",
}  # fmt: skip


def declared_type(c: Column) -> str:
    """The SQLite declaration of a column of canonical type ``c.type``,
    with its sizes where the source declares them (``NUMERIC(10,2)``,
    ``VARCHAR(40)``, ``TIMESTAMP(3)``; SQLite enforces none)."""
    if c.type is _V.TEXT and c.length is not None:
        return f"VARCHAR({c.length})"
    base = _DECLARED[c.type]
    if c.type is _V.DECIMAL and c.precision is not None:
        return f"{base}({c.precision},{c.scale or 0})"
    if c.type in (_V.TIME, _V.TIMESTAMP, _V.TIMESTAMPTZ) and c.precision is not None:
        return f"{base}({c.precision})"
    return base


def table_ddl(t: TableSchema) -> str:
    """``CREATE TABLE`` for ``t`` (a single integer key is the rowid)."""
    specs = {c.name: c for c in t.specs}
    rowid = len(t.key) == 1 and specs[t.key[0]].type is _V.INTEGER
    cols = []
    for name in t.columns:
        c = specs[name]
        if rowid and name == t.key[0]:
            cols.append(f"{q(name)} INTEGER PRIMARY KEY NOT NULL")
        else:
            null = "" if c.nullable and name not in t.key else " NOT NULL"
            cols.append(f"{q(name)} {declared_type(c)}{null}")
    if not rowid:
        cols.append(f"PRIMARY KEY ({', '.join(q(k) for k in t.key)})")
    return f"CREATE TABLE {q(t.name)} ({', '.join(cols)})"


def write_snapshot(tmp: str, snap: Snapshot) -> None:
    """Fill the empty SQLite file ``tmp`` from ``snap`` (read while its
    context is open). Raises :class:`~peersync.SchemaMismatch` if a table's
    shape cannot be rebuilt with the same fingerprint, and
    :class:`~peersync.StorageError` for a failure writing the file; the
    caller removes the file."""
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            with atomic(conn):
                for t in snap.tables:
                    conn.execute(table_ddl(t))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot create the clone's tables: {exc}") from exc
    with SQLitePeer(tmp) as copy:
        copy.provision(snap.scope, [t.name for t in snap.tables])
        made = copy.describe(snap.scope).fingerprint
        if made != snap.fingerprint:
            raise SchemaMismatch(
                f"scope {snap.scope!r}: its tables cannot be rebuilt in SQLite with the same shape"
                f" (fingerprint {made} against the source's {snap.fingerprint})"
            )
        try:
            _fill(copy, snap)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the clone of scope {snap.scope!r}: {exc}") from exc


def _fill(copy: SQLitePeer, snap: Snapshot) -> None:
    conn, meta = copy.conn, copy.meta
    # The file is temporary until the clone is complete: no journal needed.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    with atomic(conn):
        # Replica indexes as the source numbers them, so rows need no mapping.
        conn.executemany(f"INSERT INTO {PREFIX}replicas (idx, replica_id) VALUES (?, ?)", sorted(snap.replicas.items()))
        meta.load_replicas()
        src = meta.rep_index(snap.rid)
        (idx,) = conn.execute(f"SELECT idx FROM {PREFIX}scopes WHERE name = ?", (snap.scope,)).fetchone()
        tids = meta.tracked_ids()
        for i, t in enumerate(snap.tables):
            tracked = replace(introspect(conn, t.name), tid=tids[t.name])
            # The rows and their tracking are written as they were at the
            # source: no trigger must stamp them (recreated below).
            for name in tracked.trigger_names():
                conn.execute(f"DROP TRIGGER IF EXISTS {q(name)}")
            put = f"INSERT INTO {q(t.name)} VALUES ({', '.join('?' * len(t.columns))})"
            for chunk in snap.values(i):
                conn.executemany(put, chunk)
            for rows, sql in ((snap.local, _local_sql), (snap.tracking, _tracking_sql)):
                for chunk in rows(i):
                    conn.executemany(sql(tracked, src, idx), chunk)
            _reconcile(conn, tracked)
            kc = ", ".join(tracked.kcols)
            conn.execute(f"INSERT INTO {LOG} (lt, tbl, {kc}) SELECT lt, {tracked.tid}, {kc} FROM {q(tracked.tracking)}")
            for ddl in trigger_sql(tracked):
                conn.execute(ddl)
        top = f"(SELECT COALESCE(max(lt), 0) FROM {LOG})"
        conn.execute(f"INSERT INTO {LOG} (lt, tbl) SELECT ?, 0 WHERE ? > {top}", (snap.tick, snap.tick))
        for mw, k in snap.partials:
            conn.execute(f"INSERT INTO {PREFIX}partial VALUES (?, ?, ?)", (mw, snap.scope, k.to_bytes()))
        conn.execute(
            f"UPDATE {PREFIX}clock SET partial_seq = (SELECT COALESCE(max(id), 0) FROM {PREFIX}partial) WHERE id = 0"
        )
        conn.execute(
            f"UPDATE {PREFIX}scopes SET replica_id = ?, knowledge = ?, forgotten = ?, compacted = ? WHERE name = ?",
            (snap.rid, snap.knowledge.without(snap.rid).to_bytes(), snap.forgotten.to_bytes(), snap.tick, snap.scope),
        )
    conn.execute("PRAGMA journal_mode = DELETE")


def _reconcile(conn: sqlite3.Connection, t: S.Tracked) -> None:
    """Keep the rows that a session up to the bound would send: a row whose
    tracking row the snapshot does not hold up to the bound (it changed
    above it) is left out, and so is a live tracking row without its row
    (the enumeration skips it; the triggers leave none). Anti-joins here
    instead of joins at the source, which reads each table in a plain scan,
    and only when the counts of rows and live tracking rows differ (as the
    triggers leave no live tracking row without its row, equal counts mean
    every row has its tracking row)."""
    user, trk = q(t.name), q(t.tracking)
    if conn.execute(f"SELECT (SELECT count(*) FROM {user}) = (SELECT count(*) FROM {trk} WHERE del = 0)").fetchone()[0]:
        return
    match = " AND ".join(f"t.{k} = u.{q(c)}" for k, c in zip(t.kcols, t.schema.key, strict=True))
    conn.execute(f"DELETE FROM {user} AS u WHERE NOT EXISTS (SELECT 1 FROM {trk} AS t WHERE {match} AND t.del = 0)")
    conn.execute(f"DELETE FROM {trk} AS t WHERE t.del = 0 AND NOT EXISTS (SELECT 1 FROM {user} AS u WHERE {match})")


def _local_sql(t: S.Tracked, src: int, scope: int) -> str:
    """Insert a local row (the short form) as :func:`_tracking_sql` does."""
    n = len(t.kcols)
    keys = ", ".join(f"?{i + 1}" for i in range(n))
    return (
        f"INSERT INTO {q(t.tracking)} ({', '.join(t.kcols)}, lt, urep, utick, ctime, del, scope)"
        f" VALUES ({keys}, ?{n + 1}, {src}, ?{n + 1}, ?{n + 2}, ?{n + 3}, {scope})"
    )


def _tracking_sql(t: S.Tracked, src: int, scope: int) -> str:
    """Insert a :data:`~peersync._adapters.sql.snapshot.Row` as the
    tracking row ``reidentify`` makes of it: a local change of the source
    (no origin version) and a creation made there carry the source's id
    (``src``) explicitly, so ``reidentify`` finds nothing to relabel, and
    every row counts as arrived through ``scope``."""
    n = len(t.kcols)
    keys = ", ".join(f"?{i + 1}" for i in range(n))
    lt, urep, utick, crep, ctick, ctime, dele, _, mw = (f"?{n + i + 1}" for i in range(9))
    return (
        f"INSERT INTO {q(t.tracking)} ({', '.join(t.kcols)}, lt, urep, utick, crep, ctick, ctime, del, scope, mw)"
        f" VALUES ({keys}, {lt}, COALESCE({urep}, {src}), COALESCE({utick}, {lt}),"
        f" CASE WHEN {ctick} IS NOT NULL THEN COALESCE({crep}, {src}) END, {ctick}, {ctime}, {dele}, {scope}, {mw})"
    )
