"""Provisioning a SQLite scope, removing it, and keeping its tracking right
across a copied file (``reidentify``), a change of the tables' columns
(``migrate``) and triggers lost in a rebuild (``repair``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import replace

from peersync._adapters.sql.meta import NAMES_DDL
from peersync._adapters.sql.names_file import load_names
from peersync._adapters.sql.retrack import keep_tables
from peersync._adapters.sql.scopes import (
    check_provision_args,
    definition,
    delete_scope_rows,
    next_id,
    scope_row,
    start_provision,
    tables_in_use,
    tracked_definition,
)
from peersync._engine.errors import (
    SchemaMismatch,
    ScopeError,
    TableError,
)
from peersync._engine.model import (
    RepairReport,
    TableSchema,
)
from peersync._engine.names import NamesArg
from peersync._engine.schema import dependency_order, fingerprint

from . import catalog, triggers
from . import schema as S
from .core import SQLiteCore
from .schema import PREFIX, Tracked, q


def _key_shape(definition: str) -> list[tuple[str, str]]:
    """The key columns of a stored table definition, with their types."""
    cols, key, types = json.loads(definition)
    return [(k, types[cols.index(k)]) for k in key]


class SQLiteProvisioning(SQLiteCore):
    """The scope-management calls of :class:`~peersync._adapters.sqlite.peer.SQLitePeer`."""

    def provision(self, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
        """Create ``scope`` over ``tables``; True if created, False if it
        already exists with the same definition (idempotent). ``names``: this
        database's names where they differ from the global ones (a mapping or
        a TOML file's path, see :mod:`peersync._engine.names`). Raises
        :class:`~peersync.ScopeError` if it exists with another definition and
        :class:`~peersync.TableError` for a missing or keyless table."""
        check_provision_args(scope, tables)
        local = load_names(names)
        with self._txn(write=True) as conn:
            for ddl in (*S.META_DDL, NAMES_DDL):
                conn.execute(ddl)
            plan = start_provision(
                self.meta, scope, self.path, tables, lambda n: catalog.introspect(conn, n), catalog.fingerprint_holds,
                lambda ts, tids: triggers.trigger_faults(conn, [replace(t, tid=tids[t.name]) for t in ts]),
                lambda faults: self._fault_msg(scope, faults),
                lambda names: self._changed_msg(scope, names, provisioning=True), names=local,
            )  # fmt: skip
            if plan is None:
                return False
            for t in plan.tables:
                self._track(conn, t)
            plan.insert_scope(self.meta, scope, compacted=self._clock())
            self._record_home(scope)
        self._scopes.pop(scope, None)
        return True

    def _track(self, conn: sqlite3.Connection, t: Tracked) -> None:
        if tracked_definition(self.meta, t.schema, "; migrate that scope first ('peersync init ... --migrate')"):
            return
        null_key = " OR ".join(f"{q(k)} IS NULL" for k in t.schema.key)
        if conn.execute(f"SELECT 1 FROM {q(t.name)} WHERE {null_key} LIMIT 1").fetchone():
            raise TableError(f"table {t.name} has rows with NULL in its primary key; peersync cannot identify them")
        tid = next_id(self.meta, "tracked", "id")
        t = replace(t, tid=tid)
        for side in (S.LOG, S.EVICT, S.PENDING):  # these hold as many key columns as the widest key
            have = {r[0] for r in conn.execute(f"SELECT name FROM pragma_table_info('{side}')")}
            for k in t.kcols:
                if k not in have:
                    conn.execute(f"ALTER TABLE {side} ADD COLUMN {k}")
        for ddl in triggers.create_sql(t):
            conn.execute(ddl)
        base = self._clock()
        fill, track = triggers.backfill_sql(t)
        conn.execute(fill)
        conn.execute(track, (base,))
        conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (?, ?, ?)", (t.name, definition(t.schema), tid))

    def deprovision(self, scope: str) -> None:
        """Remove every peersync object of ``scope``; user data is untouched.
        Raises :class:`~peersync.ScopeError` for an unknown scope."""
        with self._txn(write=True) as conn:
            idx, tables = scope_row(self.meta, scope, self.path)
            delete_scope_rows(self.meta, scope, idx, sessions=False)
            if self._has_home():
                conn.execute(f"DELETE FROM {S.HOME} WHERE scope = ?", (scope,))
            still = tables_in_use(self.meta)
            tids = self.meta.tracked_ids()
            for name in tables:
                t = S.Tracked(TableSchema(name, (), (), ()), False, (), (), tids[name])
                if name in still:
                    conn.execute(f"UPDATE {q(t.tracking)} SET scope = NULL WHERE scope = ?", (idx,))
                    continue
                for ddl in triggers.drop_sql(t):
                    conn.execute(ddl)
                conn.execute(f"DELETE FROM {PREFIX}tracked WHERE tbl = ?", (name,))
            if not still:
                for m in S.META_TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{m}")
        self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        with self._txn(write=False):
            return self.meta.scope_names()

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """Give ``scope`` a new replica id, for a copied database file or a
        restored backup; returns it. With ``moved``, keep the id and only
        record that this file is the scope's home now (a database moved to
        another filesystem, whose old file is no longer used).

        Rows changed here up to the last peersync write before the copy keep
        their versions under the old id (which the knowledge keeps), so peers
        that already hold them see nothing new. Local changes after it (made
        on the copy, or on the original just before it was copied) become
        changes of the new id: peers that hold the same row from the original
        resolve it like any concurrent change, and nothing is skipped.
        Raises :class:`~peersync.ScopeError` for an unknown scope.
        """
        with self._txn(write=True) as conn:
            sc = self._scope(scope, reload=True)
            conn.execute(S.HOME_DDL)  # in files provisioned before it existed
            if moved:
                self._record_home(scope)
                return sc.rid
            stored, _ = self.meta.stored_knowledge(scope)
            self.meta.load_replicas()
            old = self.meta.rep_index(sc.rid)
            # Ticks up to ``mark`` were made in the original file before the
            # copy; without a record, trust none of them (safe: they are sent
            # again under the new id and meet their originals as identical).
            row = conn.execute(f"SELECT mark FROM {S.HOME} WHERE scope = ?", (scope,)).fetchone()
            mark = int(row[0]) if row else 0
            for t in sc.tables:
                # Only local changes carry this scope's id implicitly; rows that
                # arrived through a scope keep their origin versions.
                conn.execute(
                    f"UPDATE {q(t.tracking)} SET urep = ?, utick = lt, scope = ? WHERE scope IS NULL AND lt <= ?",
                    (old, sc.idx, mark),
                )
                conn.execute(
                    f"UPDATE {q(t.tracking)} SET crep = ? WHERE crep IS NULL AND ctick IS NOT NULL AND ctick <= ?",
                    (old, mark),
                )
            new = os.urandom(16)
            k = stored.add_range(sc.rid, 1, mark) if mark >= 1 else stored
            conn.execute(f"UPDATE {PREFIX}scopes SET replica_id = ? WHERE name = ?", (new, scope))
            self.meta.save_knowledge(replace(sc, rid=new), k)
            self._record_home(scope)
        self._scopes.pop(scope, None)
        return new

    # -- schema changes and repairs --------------------------------------------------
    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> RepairReport:
        """Keep ``scope``'s tracking across a change of its tables' columns.

        After ``ALTER TABLE ... ADD COLUMN`` (or a rebuild that adds, drops or
        retypes columns), update the scope's stored shape and recreate the
        triggers; every row keeps its versions, times and tombstones and the
        scope its knowledge, so edits not yet synced still sync and resolve by
        the normal rules. Run it on every peer: until both have migrated, a
        session between them raises :class:`~peersync.SchemaMismatch`. A
        table that lost its triggers (a rebuild) is reconciled as by
        :meth:`repair`. Idempotent. ``tables``, if given, must be the scope's
        tables. Raises :class:`~peersync.ScopeError` for an unknown scope, other
        tables, or a changed primary key (rows are identified by it: that needs
        a new scope), :class:`~peersync.SchemaMismatch` for a missing table.
        """
        return self._retrack(scope, migrate=True, restamp=False, tables=tables)

    def repair(self, scope: str, *, restamp: bool = False) -> RepairReport:
        """Recreate the triggers of ``scope``'s tables where they are missing or
        out of date (a table rebuilt behind peersync's back: create, copy, drop,
        rename) and track what changed meanwhile: rows inserted or deleted
        become local changes. Rows *updated* meanwhile cannot be detected (the
        report lists such tables in ``untracked``); ``restamp`` makes every
        live row of the scope a new local change, keeping its change time, so
        it reaches every peer and a real edit made elsewhere still wins by the
        normal rules. Idempotent. Raises :class:`~peersync.SchemaMismatch` if
        the tables' shape changed too (that is :meth:`migrate`)."""
        return self._retrack(scope, migrate=False, restamp=restamp, tables=None)

    def _retrack(self, scope: str, *, migrate: bool, restamp: bool, tables: Sequence[str] | None) -> RepairReport:
        with self._txn(write=True) as conn:
            row = None
            if self.meta.has_meta():
                row = conn.execute(
                    f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)
                ).fetchone()
            if row is None:
                raise ScopeError(f"unknown scope {scope!r} in {self.path}")
            names, stored_fp = json.loads(row[0]), row[1]
            tracked = {r[0]: (r[1], r[2]) for r in conn.execute(f"SELECT tbl, definition, id FROM {PREFIX}tracked")}
            local = self.meta.names(scope)
            try:
                current = dependency_order([replace(catalog.introspect(conn, n), tid=tracked[n][1]) for n in names])
                asked = (
                    None if tables is None else {catalog.introspect(conn, local.local_table(n)).name for n in tables}
                )
            except TableError as exc:
                raise SchemaMismatch(f"scope {scope!r} in {self.path}: {exc}") from exc
            keep_tables(asked, names, scope, str(self.path))
            shapes = [local.schema_out(t.schema) for t in current]
            fp = fingerprint(shapes)
            reshaped = not catalog.fingerprint_holds(stored_fp, shapes)
            if reshaped and not migrate:
                raise SchemaMismatch(self._changed_msg(scope, names))
            for t in current:
                # The tracking table's key compares as the user's key did: a
                # new collation makes other rows the same key, or one key two.
                old = _key_shape(tracked[t.name][0])
                before = [
                    (*kt, c) for kt, c in zip(old, catalog.tracking_kcolls(conn, t.tracking, len(old)), strict=True)
                ]
                colls = t.kcolls or ("BINARY",) * len(t.schema.key)  # a rowid key: none recorded
                after = [(*kt, c.upper()) for kt, c in zip(_key_shape(definition(t.schema)), colls, strict=True)]
                if before != after:
                    raise ScopeError(
                        f"the primary key of table {t.name} changed ({_show(before)} -> {_show(after)}): peersync"
                        " identifies rows by their key, so this cannot be migrated; sync every peer until they agree,"
                        f" then deprovision scope {scope!r} and provision it again on each"
                    )
            faults = triggers.trigger_faults(conn, current)
            base = self._clock()
            retracked, untracked, inserted, deleted, restamped = [], [], 0, 0, 0
            for t in current:
                if t.name not in faults and tracked[t.name][0] == definition(t.schema):
                    continue
                if t.name in faults:
                    since = self._clock()
                    for st in triggers.reconcile_sql(t):
                        conn.execute(st, {"base": since})
                    n, d = conn.execute(t.count_since_sql(), {"base": since}).fetchone()
                    inserted, deleted = inserted + n - d, deleted + d
                    if faults[t.name] == "lost":
                        untracked.append(t.name)
                for name in t.trigger_names():
                    conn.execute(f"DROP TRIGGER IF EXISTS {q(name)}")
                for ddl in triggers.trigger_sql(t):
                    conn.execute(ddl)
                conn.execute(f"UPDATE {PREFIX}tracked SET definition = ? WHERE tbl = ?", (definition(t.schema), t.name))
                retracked.append(t.name)
            for t in current if restamp else []:
                top = self._clock()
                for st in triggers.restamp_all_sql(t):
                    conn.execute(st, {"base": base, "top": top})
                restamped += conn.execute(t.count_since_sql(), {"base": top}).fetchone()[0]
            if self._clock() > base:
                for t in current:  # drop the log entries the new ones superseded
                    conn.execute(t.compact_sql(), {"from": 0, "below": base + 1})
            order = json.dumps([t.name for t in current])
            if fp != stored_fp or order != row[0]:
                conn.execute(
                    f"UPDATE {PREFIX}scopes SET fingerprint = ?, tables = ? WHERE name = ?", (fp, order, scope)
                )
        self._scopes.clear()  # scopes sharing a table see its new triggers and shape
        return RepairReport(
            scope, reshaped, tuple(retracked), tuple(untracked), inserted, deleted, restamped
        )  # fmt: skip


def _show(key: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{c} {t}" + ("" if coll == "BINARY" else f" COLLATE {coll}") for c, t, coll in key)
