"""A SQLite replica file made from a server replica's snapshot, for a clone
of a PostgreSQL or MariaDB scope (locally, or streamed by a server).

:func:`write_snapshot` fills an empty file with the state a SQLite copy of the
source replica would have, in the source's own ticks, so that
:func:`~peersync._adapters.sqlite.clone.build_clone` makes it a new replica
exactly as it does a SQLite backup:

- the scope's tables, created from their global shape (names and canonical
  types, :func:`declared_type`), so the clone's fingerprint is the source's;
  names the source maps locally are the global ones here. What the snapshot
  describes beyond the shape (:attr:`Snapshot.constraints`, which the
  fingerprint leaves out) is carried too: literal defaults and foreign keys
  within the scope in ``CREATE TABLE``, unique and plain indexes once the
  rows are written (faster than keeping them up to date row by row). The
  rows are written with foreign keys off, as the source holds them (a row
  whose parent changed above the bound is there before its parent arrives);
  CHECK constraints are not carried (see
  :mod:`peersync._adapters.sql.constraints`);
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

from peersync._adapters.sql.constraints import ForeignKeySpec, TableConstraints
from peersync._adapters.sql.snapshot import Snapshot
from peersync._engine.errors import SchemaMismatch, StorageError
from peersync._engine.model import TableSchema, Value
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


def table_ddl(t: TableSchema, extra: TableConstraints) -> str:
    """``CREATE TABLE`` for ``t`` (a single integer key is the rowid), with
    ``extra``'s defaults and foreign keys (its indexes: :func:`index_ddl`)."""
    specs = {c.name: c for c in t.specs}
    rowid = len(t.key) == 1 and specs[t.key[0]].type is _V.INTEGER
    cols = []
    for name in t.columns:
        c = specs[name]
        if rowid and name == t.key[0]:
            cols.append(f"{q(name)} INTEGER PRIMARY KEY NOT NULL")
        else:
            null = "" if c.nullable and name not in t.key else " NOT NULL"
            default = f" DEFAULT {_literal(extra.defaults[name])}" if name in extra.defaults else ""
            cols.append(f"{q(name)} {declared_type(c)}{null}{default}")
    if not rowid:
        cols.append(f"PRIMARY KEY ({', '.join(q(k) for k in t.key)})")
    cols += [_foreign_key(fk) for fk in extra.foreign_keys]
    return f"CREATE TABLE {q(t.name)} ({', '.join(cols)})"


def _names(cols: tuple[str, ...]) -> str:
    return ", ".join(q(c) for c in cols)


def _foreign_key(fk: ForeignKeySpec) -> str:
    # RESTRICT is checked at once even while an apply defers foreign keys
    # (PRAGMA defer_foreign_keys) and would refuse a batch that deletes a
    # parent before its children; NO ACTION refuses the same local writes
    # at the end of each statement, as RESTRICT does at the source.
    acts = {a: "NO ACTION" if a == "RESTRICT" else a for a in (fk.on_delete, fk.on_update)}
    return (
        f"FOREIGN KEY ({_names(fk.columns)}) REFERENCES {q(fk.parent)} ({_names(fk.parent_columns)})"
        f" ON DELETE {acts[fk.on_delete]} ON UPDATE {acts[fk.on_update]}"
        + (" DEFERRABLE INITIALLY DEFERRED" if fk.deferred else "")
    )


def _literal(v: Value) -> str:
    """A default value (canonical wire form) as a SQLite literal; the
    column's affinity applies to it as to a synced value."""
    if isinstance(v, (bool, int, float)):
        return repr(int(v) if isinstance(v, bool) else v)
    return "'" + str(v).replace("'", "''") + "'"


def index_ddl(conn: sqlite3.Connection, t: TableSchema, extra: TableConstraints, taken: set[str]) -> list[str]:
    """``CREATE [UNIQUE] INDEX`` for every index ``extra`` carries on table
    ``t``, whose rows ``conn`` holds. An index keeps its source's name unless
    SQLite reserves it or another object of the file (``taken``, lower case,
    updated) has it: then ``<table>_<columns>``, numbered if need be. A
    unique index whose rows SQLite compares equal is made without its
    uniqueness (:func:`_folded`)."""
    out = []
    for ix in extra.indexes:
        name = base = ix.name
        if name.lower() in taken or name.lower().startswith(("sqlite_", PREFIX)):
            name = base = f"{t.name}_{'_'.join(ix.columns)}"
        n = 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name.lower())
        unique = "UNIQUE " if ix.unique and not _folded(conn, t, ix.columns) else ""
        out.append(f"CREATE {unique}INDEX {q(name)} ON {q(t.name)} ({_names(ix.columns)})")
    return out


def _folded(conn: sqlite3.Connection, t: TableSchema, cols: tuple[str, ...]) -> bool:
    """Do two rows of ``t`` hold values in ``cols`` that the source keeps
    distinct and SQLite compares equal? Only a decimal or JSON column can
    (NUMERIC affinity stores ``1.0000000000000001`` and ``1.0`` as the
    integer 1). Asked before the index is made: the file has no journal
    (see :func:`_fill`), so a failed ``CREATE UNIQUE INDEX`` cannot be
    rolled back."""
    types = {c.name: c.type for c in t.specs}
    if not any(types[c] in (_V.DECIMAL, _V.JSON) for c in cols):
        return False
    known = " AND ".join(f"{q(c)} IS NOT NULL" for c in cols)
    dup = f"SELECT 1 FROM {q(t.name)} WHERE {known} GROUP BY {_names(cols)} HAVING count(*) > 1 LIMIT 1"
    return conn.execute(dup).fetchone() is not None


def _extras(snap: Snapshot) -> tuple[TableConstraints, ...]:
    """What ``snap`` carries per table beyond its shape (nothing if it says nothing)."""
    return snap.constraints or tuple(TableConstraints() for _ in snap.tables)


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
                for t, extra in zip(snap.tables, _extras(snap), strict=True):
                    conn.execute(table_ddl(t, extra))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot create the clone's tables: {exc}") from exc
    with SQLitePeer(tmp, foreign_keys=False) as copy:
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
        taken = {r[0].lower() for r in conn.execute("SELECT name FROM sqlite_master")}
        for i, (t, extra) in enumerate(zip(snap.tables, _extras(snap), strict=True)):
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
            # Indexes once the rows are in (one sort each, not a b-tree kept
            # up to date row by row), before the triggers, which know the
            # table's unique indexes.
            for ddl in index_ddl(conn, t, extra, taken):
                conn.execute(ddl)
            if extra.indexes:
                tracked = replace(introspect(conn, t.name), tid=tids[t.name])
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
