"""The MariaDB/MySQL peer: provisioning, enumeration and the Peer calls.

MariaDB commits DDL implicitly, so provisioning cannot be one transaction:
it records every object it creates and, on any failure, drops them again
(``_undo``) before raising, so a failed ``provision`` leaves nothing behind.
The tick contract is kept by sealing ticks after commit (``schema.py``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

from peersync._adapters.sql import scopes
from peersync._adapters.sql.batch_frame import frame, hidden_versions
from peersync._adapters.sql.finals import Final, finals_ddl, keep_final, kept_finals
from peersync._adapters.sql.meta import NAMES_DDL, Meta
from peersync._adapters.sql.names_file import load_names
from peersync._adapters.sql.reports import logged_conflicts, scope_status
from peersync._adapters.sql.retrack import migrate_command
from peersync._adapters.sql.session_end import end_session
from peersync._adapters.sql.snapshot import Snapshot
from peersync._engine import model
from peersync._engine.errors import (
    RepairNeeded,
    ScopeError,
    SyncError,
)
from peersync._engine.knowledge import Knowledge
from peersync._engine.names import Names, NamesArg
from peersync._engine.peer import BatchPeer
from peersync._engine.schema import fingerprint
from peersync._engine.wire import PackedRows, open_batch, row_packer

from . import cascades, retrack
from . import schema as S
from . import snapshot as snap
from .apply import Apply
from .conn import MYSQL, Conn, Target, q
from .constraints import constraints_of
from .maintenance import compact
from .schema import PREFIX, Scope, Tracked
from .values import to_wire


def _head(text: str) -> list[Any]:
    """The integers of a row's head (``MySQLPeer._wire_sql``), None where empty."""
    return [int(x) if x else None for x in text.split(",")]


def _same_fingerprint(stored: str, schemas: list[model.TableSchema]) -> bool:
    return stored == fingerprint(schemas)


class MySQLPeer(BatchPeer):
    """One MariaDB (or MySQL) database as a peersync peer."""

    # The server writes a batch (or reads the next) while the session engine
    # reads the next batch from the other peer (or applies this one) in this
    # process: see peersync._engine.ahead.
    server = True

    def __init__(self, target: Target, *, timeout: float = 5.0) -> None:
        self.target = target
        self.url = target.url
        self.conn = Conn(target, timeout=timeout)
        self.meta = Meta(self.conn, MYSQL)
        self._scopes: dict[str, Scope] = {}
        (mode,) = self.conn.execute("SELECT @@innodb_autoinc_lock_mode").fetchone()
        # Consecutive ids for one multi-row insert are only promised below mode 2.
        self.consecutive_ids = int(mode) < 2

    def close(self) -> None:
        self.conn.close()

    # -- metadata ------------------------------------------------------------------
    def _scope(self, name: str, *, reload: bool = False) -> Scope:
        def load() -> Scope:
            idx, rid, fp, tables, names = scopes.load_scope(
                self.meta, name, self.url, lambda t, tid: replace(S.introspect(self.conn, t), tid=tid),
                _same_fingerprint, lambda names: f"the tables of scope {name!r} in {self.url} changed since"
                f" provisioning; run '{migrate_command(self.url, name, names)}' here and on every peer whose tables"
                " changed the same way",
            )  # fmt: skip
            sc = Scope(name, idx, rid, fp, tables)
            sc.names = names
            return sc

        return scopes.cached(self._scopes, name, reload, load)

    # -- provisioning --------------------------------------------------------------
    def provision(self, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
        """Create ``scope`` over ``tables`` (with this database's ``names``
        where they differ from the global ones); True if created, False if it
        exists with the same definition. DDL commits on its own here: a
        failure drops whatever this call created, then raises."""
        scopes.check_provision_args(scope, tables)
        local = load_names(names)
        created: list[str] = []  # DDL undo statements, newest last
        with self.conn.errors():
            fresh_meta = not self.meta.has_meta()
            try:
                result = self._provision(scope, tables, created, fresh_meta, local)
            except BaseException:
                self._undo(created, fresh_meta)
                with suppress(Exception):
                    self._cascades()
                raise
        self._scopes.pop(scope, None)
        return result

    def _provision(self, scope: str, tables: Sequence[str], created: list[str], fresh_meta: bool, local: Names) -> bool:
        conn = self.conn
        if fresh_meta:
            for ddl in S.META_DDL:
                conn.execute(ddl)
        self.meta.execute(NAMES_DDL)  # before the scope row's transaction: DDL commits here
        # The triggers are checked by name alone here: the tables' log ids do not matter.
        plan = scopes.start_provision(
            self.meta, scope, self.url, tables, lambda n: S.introspect(conn, n), _same_fingerprint,
            lambda ts, _tids: S.trigger_faults(conn, ts), lambda faults: self._lost(scope, faults), names=local,
        )  # fmt: skip
        if plan is None:
            return False
        for t in plan.tables:
            self._track(t, created)
        with conn.txn():
            plan.insert_scope(self.meta, scope)
        self._cascades()
        S.seal(conn)
        return True

    def _lost(self, scope: str, faults: dict[str, str]) -> str:
        return f"scope {scope!r} in {self.url}: triggers lost on {', '.join(sorted(faults))}"

    def _cascades(self) -> None:
        """Rebuild the triggers that track foreign-key actions (``cascades.py``)."""
        cascades.refresh(self.conn, self.meta.tracked_ids() if self.meta.has_meta() else {})

    def _track(self, t: Tracked, created: list[str]) -> None:
        conn = self.conn
        if scopes.tracked_definition(self.meta, t.schema):
            return
        tid = scopes.next_id(self.meta, "tracked", "id")
        t = replace(t, tid=tid)
        for ddl in t.create_sql():
            conn.execute(ddl)
        created.append(f"DROP TABLE IF EXISTS {q(t.tracking)}")
        # Triggers first, then the backfill under a lock on the user table, so
        # no row is written between the two untracked or tracked twice.
        conn.execute(
            f"LOCK TABLES {q(t.name)} WRITE, {q(t.name)} AS {S.USER_ALIAS} WRITE, {q(t.tracking)} WRITE, {S.LOG} WRITE,"
            f" {PREFIX}tracked WRITE"
        )
        try:
            for ddl in t.trigger_sql():
                conn.execute(ddl)
            created.extend(f"DROP TRIGGER IF EXISTS {q(n)}" for n in t.trigger_names())
            (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {S.LOG}").fetchone()
            fill, stamp = t.backfill_sql()
            conn.execute(fill)
            conn.execute(stamp, {"top": top})
            conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (%s, %s, %s)", (t.name, scopes.definition(t.schema), tid))
            created.append(f"DELETE FROM {PREFIX}tracked WHERE tbl = {conn.raw.escape(t.name)}")
            created.append(f"DELETE FROM {S.LOG} WHERE tbl = {int(tid)}")
        finally:
            conn.execute("UNLOCK TABLES")

    def _undo(self, created: list[str], fresh_meta: bool) -> None:
        """Drop what a failed provisioning created (best effort, newest first)."""
        with suppress(SyncError, Exception):
            self.conn.execute("UNLOCK TABLES")
        for st in reversed(created):
            with suppress(Exception):
                self.conn.execute(st)
        if fresh_meta:
            for m in S.META_TABLES:
                with suppress(Exception):
                    self.conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{m}")

    def deprovision(self, scope: str) -> None:
        """Remove every peersync object of ``scope``; user data is untouched."""
        with self.conn.errors():
            idx, tables = scopes.scope_row(self.meta, scope, self.url)
            with self.conn.txn():
                scopes.delete_scope_rows(self.meta, scope, idx)
            still = scopes.tables_in_use(self.meta)
            tids = self.meta.tracked_ids()
            for name in tables:
                t = Tracked(model.TableSchema(name, (), (), ()), (), (), tids[name])
                if name in still:
                    self.conn.execute(f"UPDATE {q(t.tracking)} SET scope = NULL WHERE scope = %s", (idx,))
                    continue
                for ddl in t.drop_sql():
                    self.conn.execute(ddl)
                self.conn.execute(f"DELETE FROM {PREFIX}tracked WHERE tbl = %s", (name,))
                self.conn.execute(f"DELETE FROM {S.LOG} WHERE tbl = %s", (t.tid,))
            if not still:
                for m in S.META_TABLES:
                    self.conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{m}")
            self._cascades()
        self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        with self.conn.errors():
            return self.meta.scope_names()

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """A new replica id for ``scope``, for a database restored from a dump
        of another one (or a copy); returns it. ``moved`` keeps the id (the
        same database moved to another server). Every local change becomes a
        change of the new id; rows that came from peers keep their versions.
        Raises :class:`~peersync.ScopeError` for an unknown scope."""
        return retrack.reidentify(self, scope, moved=moved)

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> model.RepairReport:
        """Keep ``scope``'s tracking across a change of its tables' columns
        (``ALTER TABLE ... ADD COLUMN`` and the like): store the new shape and
        recreate the triggers; every row keeps its versions and the scope its
        knowledge. Run it on every peer. Idempotent. Raises
        :class:`~peersync.ScopeError` for an unknown scope, other tables or a
        changed primary key, :class:`~peersync.SchemaMismatch` for a missing
        table. DDL commits on its own here: see ``retrack.py`` for what a
        failure halfway leaves (a scope that refuses to sync until run again)."""
        return retrack.retrack(self, scope, migrate=True, restamp=False, tables=tables)

    def repair(self, scope: str, *, restamp: bool = False) -> model.RepairReport:
        """Recreate lost triggers (a table dropped and created again) and make
        the rows inserted or deleted meanwhile local changes; rows that
        vanished without a trigger (``TRUNCATE TABLE``) become local deletes
        (their tables are reported in ``untracked``); ``restamp``
        also makes every live row a new local change, keeping its change
        time (for rows updated meanwhile). Rebuilds the triggers that track
        foreign-key actions (run it after adding a foreign key). Idempotent.
        Raises :class:`~peersync.SchemaMismatch` if the shape changed (that is
        :meth:`migrate`)."""
        return retrack.retrack(self, scope, migrate=False, restamp=restamp, tables=None)

    def compact(self, scope: str | None = None) -> None:
        """Maintenance: drop change-log entries that later changes superseded
        (every table of the database; ``scope`` is checked to exist). Writers
        carry on meanwhile; see ``maintenance.py``."""
        with self.conn.errors():
            if scope is not None:
                self._scope(scope)
            if not self.meta.has_meta():
                return
            S.seal(self.conn)
            tids = self.meta.tracked_ids()
            compact(
                self.conn,
                {tid: Tracked(model.TableSchema(name, (), (), ()), (), ()).tracking for name, tid in tids.items()},
            )

    # -- the Peer calls --------------------------------------------------------------
    def schemas(self, scope: str) -> dict[str, model.TableSchema]:
        with self.conn.errors():
            return {s.name: s for s in self._scope(scope).global_schemas()}

    def describe(self, scope: str) -> model.ReplicaInfo:
        """Seals committed changes (bookkeeping: no row, knowledge or log
        entry changes meaning), then reports the sealed bound and the scope's
        knowledge: all that it holds, versions of rows still unsealed
        included (an apply may commit between the seal and the snapshot; a
        destination's filter must name them, or a source sends them again).
        Knowledge handed on as made-with leaves those out (:meth:`_hidden`);
        a description's is never merged (``ReplicaInfo``)."""
        with self.conn.errors():
            self._seal(scope)
            with self.conn.txn(read_only=True):
                sc = self._checked(scope)
                stored, forgotten = self.meta.stored_knowledge(scope)
                tick = S.sealed(self.conn)
        return scopes.described(scope, sc, tick, stored, forgotten)

    def _seal(self, scope: str) -> None:
        """Seal committed changes (``schema.seal``) before reading ``scope``:
        :class:`~peersync.ScopeError` if the database has no scopes at all
        (its last one was deprovisioned and the clock went with it)."""
        if not self.meta.has_meta():
            raise ScopeError(f"unknown scope {scope!r} in {self.url}")
        S.seal(self.conn)

    def _checked(self, scope: str) -> Scope:
        """The scope, reloaded, refused if its tracking cannot be trusted."""
        sc = self._scope(scope, reload=True)
        faults = S.trigger_faults(self.conn, sc.tables)
        if faults:
            raise RepairNeeded(self._lost(scope, faults))
        gone = S.emptied(self.conn, sc.tables)
        if gone:
            raise RepairNeeded(
                f"scope {scope!r} in {self.url}: rows of {', '.join(sorted(gone))} vanished untracked"
                " (TRUNCATE TABLE?): run `peersync repair` to send their deletes"
            )
        return sc

    @contextmanager
    def snapshot_of(self, scope: str) -> Iterator[Snapshot]:
        """``scope`` as of its sealed tick, for a clone: committed changes
        are sealed first, then everything is read in one consistent snapshot
        (see :mod:`peersync._adapters.sql.snapshot`); rows stream through an
        unbuffered cursor while the context is open. Raises as
        :meth:`describe` does."""
        with self.conn.errors():
            self._seal(scope)
            with self.conn.txn(read_only=True):
                sc = self._checked(scope)
                tick = S.sealed(self.conn)
                fr = frame(self.meta, sc, sc.fingerprint, tick, None, self._hidden(sc, tick))
                _, forgotten = self.meta.stored_knowledge(scope)
                params = {"scope": sc.idx, "tick": tick}
                t = sc.tables
                glob = tuple(sc.global_schemas())
                yield Snapshot(
                    scope, sc.rid, tick, sc.fingerprint, fr.made_with, forgotten, glob,
                    dict(self.meta.rep_rid), self.meta.partials(),
                    lambda i: snap.stream(self.conn, snap.tracking_sql(t[i], True), params, snap.key_specs(t[i])),
                    lambda i: snap.stream(self.conn, snap.tracking_sql(t[i], False), params, snap.key_specs(t[i])),
                    lambda i: snap.stream(self.conn, snap.rows_sql(t[i]), params, list(t[i].specs)),
                    constraints_of(self.conn, t, glob),
                )  # fmt: skip

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch read in one consistent snapshot, with its ``last`` tick and ``final`` flag.

        Rows whose reported version ``known`` holds are left out in Python
        (MySQL cannot open one temporary table twice in a query, which the
        SQL filter would need); each table is read up to ``max_rows``
        candidates, so ``last`` stops at the first table cut short."""
        with self.conn.errors(), self.conn.txn(read_only=True):
            sc = self._scope(scope)
            tick = S.sealed(self.conn)
            fr = frame(self.meta, sc, sc.fingerprint, tick, sc.names.wire_tables, self._hidden(sc, tick))
            horizon = min(upto, fr.tick)
            room = max_bytes - len(fr.pack(after, horizon, []))
            tables, last = self._read(sc, known, fr.marks, fr.replicas, after, horizon, max_rows, room)
            return fr.pack(after, last, tables), last, last >= fr.tick

    def _hidden(self, sc: Scope, tick: int) -> Knowledge:
        """Versions of rows the open snapshot shows with a tick not sealed
        (or sealed above ``tick``): an apply commits its rows unsealed
        together with knowledge of their versions, and a session reading
        meanwhile neither sees the rows nor sees the sealed clock move. The
        knowledge a batch is made with leaves those versions out (see
        :func:`~peersync._adapters.sql.batch_frame.hidden_versions`);
        the rows are sent, with their versions, once sealed."""
        self.meta.load_replicas()
        rows: list[Any] = []
        for t in sc.tables:
            rows += self.conn.execute(
                f"SELECT t.urep, t.utick, t.crep, t.ctick FROM {S.LOG} AS l JOIN {q(t.tracking)} AS t ON t.lt = l.id"
                f" WHERE l.tbl = {t.tid} AND (l.seq IS NULL OR l.seq > %s) AND t.scope = %s",
                (tick, sc.idx),
            ).fetchall()
        return hidden_versions(self.meta, rows)

    def _read(
        self,
        sc: Scope,
        known: Knowledge,
        marks: dict[int, int],
        replicas: list[bytes],
        after: int,
        horizon: int,
        max_rows: int,
        room: int,
    ) -> tuple[list[list[Any]], int]:
        streams = []
        cut = horizon
        for t in sc.tables:
            rows = self.conn.execute(self._wire_sql(t), {"after": after, "horizon": horizon, "scope": sc.idx,
                                                          "lim": max_rows}).fetchall()  # fmt: skip
            if len(rows) >= max_rows:
                cut = min(cut, int(rows[-1][0]))
            streams.append(rows)
        pack = row_packer()
        parts: list[list[bytes]] = [[] for _ in sc.tables]
        bases: list[int | None] = [None] * len(sc.tables)
        convert = [[to_wire(c) for c in t.specs] for t in sc.tables]
        plain = [all(c.type in snap.AS_THEY_COME for c in t.specs) for t in sc.tables]  # values need no converting
        size = n = 0
        last = cut
        merged = heapq.merge(*([(r[0], i, r) for r in rows] for i, rows in enumerate(streams)))
        for seq, i, r in merged:
            if seq > cut:
                break
            _, head, *vals = r
            dele, urep, utick, crep, ctick, ctime, mw = _head(head)
            rep = urep if utick is not None else 0
            vtick = utick if utick is not None else seq
            rid = replicas[rep] if rep < len(replicas) else None
            if rid is not None and known.contains(rid, vtick):
                continue
            if utick is not None and known.contains(sc.rid, seq):
                continue  # it knows this replica's state of the row as of this tick, or newer
            base = bases[i]
            if base is None:
                base = bases[i] = int(ctime)
            flags = int(dele) | (marks.get(mw, 0) << 1 if mw is not None else 0)
            values = vals if plain[i] and not dele else [None if dele and c not in sc.tables[i].schema.key else f(v)
                      for c, f, v in zip(sc.tables[i].schema.columns, convert[i], vals, strict=True)]  # fmt: skip
            row = [seq - after, flags, rep, utick, crep, ctick, int(ctime) - base, *values]
            data = pack(row)
            grown = len(data) if parts[i] else len(data) + len(sc.tables[i].name) + 16
            if n and (n >= max_rows or size + grown > room):
                last = seq - 1
                break
            parts[i].append(data)
            size += grown
            n += 1
        tables = [
            [t.name, bases[i], PackedRows(len(p), p)]
            for i, (t, p) in enumerate(zip(sc.tables, parts, strict=True))
            if p
        ]
        return tables, last

    def _wire_sql(self, t: Tracked) -> str:
        """Candidate rows of ``t`` with a sealed tick in ``(after, horizon]``:
        (tick, head, values...), the head a text of integers separated by
        commas, empty for NULL: del, version rep, version tick or NULL for a
        local change, creation rep, creation tick, time, mw. One text instead
        of seven fields: the driver decodes each field of each row in Python,
        which is most of the time an enumeration takes."""
        s = t.schema
        kmap = dict(zip(s.key, t.kcols, strict=True))
        vals = ", ".join(f"t.{kmap[c]}" if c in kmap else t.read(c, "u") for c in s.columns)
        match = " AND ".join(f"u.{q(c)} = t.{k}" for c, k in zip(s.key, t.kcols, strict=True))
        head = (
            "t.del", "COALESCE(CASE WHEN t.scope = %(scope)s THEN t.urep ELSE 0 END, '')",
            "COALESCE(CASE WHEN t.scope = %(scope)s THEN t.utick END, '')",
            "COALESCE(CASE WHEN t.ctick IS NOT NULL THEN COALESCE(t.crep, 0) WHEN t.cid IS NOT NULL THEN 0 END, '')",
            "COALESCE(CASE WHEN t.ctick IS NOT NULL THEN t.ctick WHEN t.cid IS NOT NULL THEN lc.seq END, '')",
            "t.ctime", "COALESCE(t.mw, '')",
        )  # fmt: skip
        return (
            f"SELECT l.seq, CONCAT_WS(',', {', '.join(head)}), {vals}"
            f" FROM {S.LOG} AS l JOIN {q(t.tracking)} AS t ON t.lt = l.id"
            f" LEFT JOIN {q(t.name)} AS u ON {match} LEFT JOIN {S.LOG} AS lc ON lc.id = t.cid"
            f" WHERE l.tbl = {t.tid} AND l.seq > %(after)s AND l.seq <= %(horizon)s"
            f" AND (t.del = 1 OR u.{q(s.key[0])} IS NOT NULL) ORDER BY l.seq LIMIT %(lim)s"
        )

    def apply(self, scope: str, data: bytes, handler: model.ConflictHandler) -> model.ApplyReport:
        with self.conn.errors():
            sc = self._scope(scope)
        data = sc.names.batch_in(data)
        open_batch(data, scope, sc.schemas, sc.fingerprint, sc.rid)
        return sc.names.report_out(
            Apply(self.conn, self.meta, sc, data, sc.names.handler(handler), self.consecutive_ids).run()
        )

    def finish(self, scope: str, end: model.SessionEnd) -> Knowledge:
        with self.conn.errors(), self.conn.txn():
            sc = self._scope(scope)
            stored = end_session(self.meta, sc, sc.names.end_in(end), lambda: S.sealed(self.conn))
        # The session's own applied rows got ticks in its transactions: seal
        # them now, so the knowledge returned is what describe will report.
        with self.conn.errors():
            S.seal(self.conn)
            tick = S.sealed(self.conn)
        return stored.add_range(sc.rid, 1, tick)

    def keep_final(self, scope: str, final: Final, known: Knowledge) -> None:
        """Record a final batch applied here (``_adapters/sql/finals.py``)."""
        with self.conn.errors():
            # DDL commits here: before the transaction, once the scope is known to exist.
            scopes.scope_row(self.meta, scope, self.url)
            self.meta.execute(finals_ddl(self.meta))
            with self.conn.txn():
                keep_final(self.meta, scope, final, known, self.url, make=False)

    def kept_finals(self, scope: str) -> list[Final]:
        with self.conn.errors(), self.conn.txn(read_only=True):
            return kept_finals(self.meta, scope, self.url)

    def status(self, scope: str | None = None) -> list[model.Status]:
        names = [scope] if scope is not None else self.scopes()
        out = []
        with self.conn.errors(), self.conn.txn(read_only=True):
            for name in names:
                sc = self._scope(name, reload=True)
                (pending,) = self.conn.execute(
                    f"SELECT count(*) FROM (SELECT DISTINCT tbl, kj FROM {S.PENDING} WHERE scope = %s) AS p", (sc.idx,)
                ).fetchone()
                tracking = [q(t.tracking) for t in sc.tables]
                tick = S.sealed(self.conn)
                tables = [s.name for s in sc.global_schemas()]
                out.append(scope_status(self.meta, sc, sc.fingerprint, tables, tracking, tick, int(pending), sc.names))
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[model.Conflict]:
        with self.conn.errors(), self.conn.txn(read_only=True):
            return logged_conflicts(self.meta, scope, limit, self._scope)
