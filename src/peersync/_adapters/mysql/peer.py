"""The MariaDB/MySQL peer: provisioning, enumeration and the Peer calls.

MariaDB commits DDL implicitly, so provisioning cannot be one transaction:
it records every object it creates and, on any failure, drops them again
(``_undo``) before raising, so a failed ``provision`` leaves nothing behind.
The tick contract is kept by sealing ticks after commit (``schema.py``).
"""

from __future__ import annotations

import heapq
import json
import os
import shlex
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from peersync._adapters.sql.meta import Meta, now_ms
from peersync._engine.errors import (
    ConfigurationError,
    RepairNeeded,
    SchemaMismatch,
    ScopeError,
    SyncError,
    TableError,
)
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    RepairReport,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
)
from peersync._engine.peer import stream_of
from peersync._engine.schema import dependency_order, fingerprint
from peersync._engine.wire import PackedRows, open_batch, pack_batch, row_packer

from . import schema as S
from .apply import Apply
from .conn import MYSQL, Conn, Target, q
from .schema import PREFIX, Scope, Tracked
from .values import to_wire

_SESSIONS_KEPT = 1000


def _definition(t: Tracked) -> str:
    return json.dumps([list(t.schema.columns), list(t.schema.key), list(t.schema.types)])


class MySQLPeer:
    """One MariaDB (or MySQL) database as a peersync peer."""

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

    def __enter__(self) -> MySQLPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MySQLPeer({self.url!r})"

    # -- metadata ------------------------------------------------------------------
    def _has_meta(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
            (PREFIX + "scopes",),
        ).fetchone()
        return row is not None

    def _scope(self, name: str, *, reload: bool = False) -> Scope:
        sc = self._scopes.get(name)
        if sc is not None and not reload:
            return sc
        if not self._has_meta():
            raise ScopeError(f"{self.url} has no peersync scopes; run 'peersync init' first")
        row = self.conn.execute(
            f"SELECT idx, replica_id, tables, fingerprint FROM {PREFIX}scopes WHERE name = %s", (name,)
        ).fetchone()
        if row is None:
            raise ScopeError(f"unknown scope {name!r} in {self.url}")
        idx, rid, tables_json, fp = row
        tids = dict(self.conn.execute(f"SELECT tbl, id FROM {PREFIX}tracked").fetchall())
        try:
            tables = [replace(S.introspect(self.conn, t), tid=int(tids[t])) for t in json.loads(tables_json)]
        except TableError as exc:
            raise SchemaMismatch(f"scope {name!r} in {self.url}: {exc}") from exc
        if fp != fingerprint([t.schema for t in tables]):
            raise SchemaMismatch(f"the tables of scope {name!r} in {self.url} changed since provisioning")
        sc = Scope(name, int(idx), bytes(rid), fp, tables)
        self._scopes[name] = sc
        return sc

    # -- provisioning --------------------------------------------------------------
    def provision(self, scope: str, tables: Sequence[str]) -> bool:
        """Create ``scope`` over ``tables``; True if created, False if it
        exists with the same definition. DDL commits on its own here: a
        failure drops whatever this call created, then raises."""
        if isinstance(tables, str):
            raise TableError(f"tables is a list of names, not the string {tables!r}: write [{tables!r}]")
        if not scope or not tables:
            raise ScopeError("a scope needs a name and at least one table")
        created: list[str] = []  # DDL undo statements, newest last
        with self.conn.errors():
            fresh_meta = not self._has_meta()
            try:
                result = self._provision(scope, tables, created, fresh_meta)
            except BaseException:
                self._undo(created, fresh_meta)
                raise
        self._scopes.pop(scope, None)
        return result

    def _provision(self, scope: str, tables: Sequence[str], created: list[str], fresh_meta: bool) -> bool:
        conn = self.conn
        if fresh_meta:
            for ddl in S.META_DDL:
                conn.execute(ddl)
        wanted = dependency_order(list({t.name: t for t in (S.introspect(conn, n) for n in tables)}.values()))
        names = [t.name for t in wanted]
        fp = fingerprint([t.schema for t in wanted])
        row = conn.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = %s", (scope,)).fetchone()
        if row is not None:
            if sorted(json.loads(row[0])) == sorted(names) and row[1] == fp:
                tids = dict(conn.execute(f"SELECT tbl, id FROM {PREFIX}tracked").fetchall())
                faults = S.trigger_faults(conn, [replace(t, tid=int(tids[t.name])) for t in wanted])
                if faults:
                    raise RepairNeeded(f"scope {scope!r} in {self.url}: triggers lost on {', '.join(sorted(faults))}")
                return False
            raise ScopeError(
                f"scope {scope!r} already exists in {self.url} with tables {', '.join(json.loads(row[0]))};"
                " deprovision it first or choose another name"
            )
        for t in wanted:
            self._track(t, created)
        with conn.txn():
            (idx,) = conn.execute(f"SELECT COALESCE(MAX(idx), 0) + 1 FROM {PREFIX}scopes FOR UPDATE").fetchone()
            empty = Knowledge.empty().to_bytes()
            conn.execute(
                f"INSERT INTO {PREFIX}scopes (name, idx, replica_id, tables, fingerprint, knowledge, forgotten,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (scope, idx, os.urandom(16), json.dumps(names), fp, empty, empty, now_ms()),
            )
        S.seal(conn)
        return True

    def _track(self, t: Tracked, created: list[str]) -> None:
        conn = self.conn
        definition = _definition(t)
        row = conn.execute(f"SELECT definition FROM {PREFIX}tracked WHERE tbl = %s", (t.name,)).fetchone()
        if row is not None:
            if row[0] != definition:
                raise ScopeError(f"table {t.name} changed since another scope started tracking it")
            return
        (tid,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {PREFIX}tracked").fetchone()
        t = replace(t, tid=int(tid))
        for ddl in t.create_sql():
            conn.execute(ddl)
        created.append(f"DROP TABLE IF EXISTS {q(t.tracking)}")
        # Triggers first, then the backfill under a lock on the user table, so
        # no row is written between the two untracked or tracked twice.
        conn.execute(
            f"LOCK TABLES {q(t.name)} WRITE, {q(t.name)} AS u WRITE, {q(t.tracking)} WRITE, {S.LOG} WRITE,"
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
            conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (%s, %s, %s)", (t.name, definition, tid))
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
            if not self._has_meta():
                raise ScopeError(f"unknown scope {scope!r} in {self.url}")
            row = self.conn.execute(f"SELECT idx, tables FROM {PREFIX}scopes WHERE name = %s", (scope,)).fetchone()
            if row is None:
                raise ScopeError(f"unknown scope {scope!r} in {self.url}")
            idx, tables = int(row[0]), json.loads(row[1])
            with self.conn.txn():
                for st in (
                    f"DELETE FROM {PREFIX}scopes WHERE name = %s",
                    f"DELETE FROM {PREFIX}conflicts WHERE scope = %s",
                    f"DELETE FROM {PREFIX}applied WHERE scope = %s",
                    f"DELETE FROM {PREFIX}partial WHERE scope = %s",
                    f"DELETE FROM {PREFIX}sessions WHERE scope = %s",
                ):
                    self.conn.execute(st, (scope,))
                self.conn.execute(f"DELETE FROM {S.PENDING} WHERE scope = %s", (idx,))
            still = {t for (ts,) in self.conn.execute(f"SELECT tables FROM {PREFIX}scopes") for t in json.loads(ts)}
            tids = dict(self.conn.execute(f"SELECT tbl, id FROM {PREFIX}tracked").fetchall())
            for name in tables:
                t = Tracked(TableSchema(name, (), (), ()), (), (), int(tids[name]))
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
        self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        with self.conn.errors():
            if not self._has_meta():
                return []
            return [r[0] for r in self.conn.execute(f"SELECT name FROM {PREFIX}scopes ORDER BY name")]

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        raise ConfigurationError(
            "reidentify is not supported on MariaDB yet: a server database is not copied as a file"
        )

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> RepairReport:
        raise ConfigurationError(
            f"migrate is not supported on MariaDB yet: deprovision and provision again (peersync deprovision"
            f" {shlex.quote(self.url)} --scope {shlex.quote(scope)})"
        )

    def repair(self, scope: str, *, restamp: bool = False) -> RepairReport:
        raise ConfigurationError("repair is not supported on MariaDB yet")

    def compact(self, scope: str | None = None) -> None:
        """Maintenance: nothing to do yet (superseded log entries are not dropped on MariaDB)."""
        if scope is not None:
            with self.conn.errors():
                self._scope(scope)

    # -- the Peer calls --------------------------------------------------------------
    def schemas(self, scope: str) -> dict[str, TableSchema]:
        with self.conn.errors():
            return dict(self._scope(scope).schemas)

    def describe(self, scope: str) -> ReplicaInfo:
        """Seals committed changes (bookkeeping: no row, knowledge or log
        entry changes meaning), then reports the sealed bound."""
        with self.conn.errors():
            S.seal(self.conn)
            with self.conn.txn(read_only=True):
                sc = self._scope(scope, reload=True)
                faults = S.trigger_faults(self.conn, sc.tables)
                if faults:
                    raise RepairNeeded(f"scope {scope!r} in {self.url}: triggers lost on {', '.join(sorted(faults))}")
                stored, forgotten = self.meta.stored_knowledge(scope)
                tick = S.sealed(self.conn)
        k = stored.add_range(sc.rid, 1, tick)
        return ReplicaInfo(scope, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(t.schema for t in sc.tables))

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self._batch(scope, known, after, upto, max_rows, max_bytes)[0]

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        return stream_of(self, scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)

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
            self.meta.load_replicas()
            stored, _ = self.meta.stored_knowledge(scope)
            tick = S.sealed(self.conn)
            made_with = stored.add_range(sc.rid, 1, tick)
            marks: dict[int, int] = {}
            extras: list[Knowledge] = []
            for mw, record in self.meta.partials():
                extra = record.exclude(made_with)
                if not extra.is_empty():
                    extras.append(extra)
                    marks[mw] = len(extras)
            rids = self.meta.rep_rid
            replicas = [sc.rid] + [rids.get(i, sc.rid) for i in range(1, max(rids, default=0) + 1)]
            horizon = min(upto, tick)

            def batch(last: int, tables: list[list[Any]]) -> bytes:
                return pack_batch(
                    scope, sc.rid, sc.fingerprint, made_with, after + 1, last, last >= tick, replicas, tables, extras
                )

            room = max_bytes - len(batch(horizon, []))
            tables, last = self._read(sc, known, marks, replicas, after, horizon, max_rows, room)
            return batch(last, tables), last, last >= tick

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
        size = n = 0
        last = cut
        merged = heapq.merge(*([(r[0], i, r) for r in rows] for i, rows in enumerate(streams)))
        for seq, i, r in merged:
            if seq > cut:
                break
            _, dele, urep, utick, crep, ctick, ctime, mw, *vals = r
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
            values = [None if dele and c not in sc.tables[i].schema.key else f(v)
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
        (tick, del, version rep, version tick or NULL for a local change,
        creation rep, creation tick, time, mw, values...)."""
        s = t.schema
        kmap = dict(zip(s.key, t.kcols, strict=True))
        vals = ", ".join(f"t.{kmap[c]}" if c in kmap else f"u.{q(c)}" for c in s.columns)
        match = " AND ".join(f"u.{q(c)} = t.{k}" for c, k in zip(s.key, t.kcols, strict=True))
        return (
            "SELECT l.seq, t.del, CASE WHEN t.scope = %(scope)s THEN t.urep ELSE 0 END,"
            " CASE WHEN t.scope = %(scope)s THEN t.utick END,"
            " CASE WHEN t.ctick IS NOT NULL THEN COALESCE(t.crep, 0) WHEN t.cid IS NOT NULL THEN 0 END,"
            " CASE WHEN t.ctick IS NOT NULL THEN t.ctick WHEN t.cid IS NOT NULL THEN lc.seq END,"
            f" t.ctime, t.mw, {vals}"
            f" FROM {S.LOG} AS l JOIN {q(t.tracking)} AS t ON t.lt = l.id"
            f" LEFT JOIN {q(t.name)} AS u ON {match} LEFT JOIN {S.LOG} AS lc ON lc.id = t.cid"
            f" WHERE l.tbl = {t.tid} AND l.seq > %(after)s AND l.seq <= %(horizon)s"
            f" AND (t.del = 1 OR u.{q(s.key[0])} IS NOT NULL) ORDER BY l.seq LIMIT %(lim)s"
        )

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        with self.conn.errors():
            sc = self._scope(scope)
        open_batch(data, scope, sc.schemas, sc.fingerprint, sc.rid)
        return Apply(self.conn, self.meta, sc, data, handler, self.consecutive_ids).run()

    def finish(self, scope: str, end: SessionEnd) -> Knowledge:
        with self.conn.errors(), self.conn.txn():
            sc = self._scope(scope)
            seen = self.conn.execute(
                f"SELECT 1 FROM {PREFIX}sessions WHERE scope = %s AND id = %s FOR UPDATE", (scope, end.session)
            ).fetchone()
            self.meta.load_replicas()
            (stored_blob,) = self.conn.execute(
                f"SELECT knowledge FROM {PREFIX}scopes WHERE name = %s FOR UPDATE", (scope,)
            ).fetchone()
            stored = Knowledge.from_bytes(bytes(stored_blob))
            if seen is None:
                (seq,) = self.conn.execute(
                    f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {PREFIX}sessions WHERE scope = %s", (scope,)
                ).fetchone()
                self.conn.execute(f"INSERT INTO {PREFIX}sessions VALUES (%s, %s, %s)", (scope, end.session, seq))
                self.conn.execute(
                    f"DELETE FROM {PREFIX}sessions WHERE scope = %s AND seq <= %s", (scope, seq - _SESSIONS_KEPT)
                )
                merge = end.merge.exclude(end.excluded)
                self.meta.release_beaten(sc, merge)
                stored = self.meta.save_knowledge(sc, stored.union(merge))
                self.meta.insert_conflicts(end.failures)
                self.meta.drop_partials_held(scope, stored.add_range(sc.rid, 1, S.sealed(self.conn)))
        # The session's own applied rows got ticks in its transactions: seal
        # them now, so the knowledge returned is what describe will report.
        with self.conn.errors():
            S.seal(self.conn)
            tick = S.sealed(self.conn)
        return stored.add_range(sc.rid, 1, tick)

    def status(self, scope: str | None = None) -> list[Status]:
        names = [scope] if scope is not None else self.scopes()
        out = []
        with self.conn.errors(), self.conn.txn(read_only=True):
            for name in names:
                sc = self._scope(name, reload=True)
                stored, forgotten = self.meta.stored_knowledge(name)
                tick = S.sealed(self.conn)
                rows = tombs = 0
                for t in sc.tables:
                    n, d = self.conn.execute(f"SELECT count(*), COALESCE(sum(del), 0) FROM {q(t.tracking)}").fetchone()
                    rows, tombs = rows + int(n), tombs + int(d)
                (nconf,) = self.conn.execute(
                    f"SELECT count(*) FROM {PREFIX}conflicts WHERE scope = %s", (name,)
                ).fetchone()
                (pending,) = self.conn.execute(
                    f"SELECT count(*) FROM (SELECT DISTINCT tbl, kj FROM {S.PENDING} WHERE scope = %s) AS p", (sc.idx,)
                ).fetchone()
                k = stored.add_range(sc.rid, 1, tick)
                out.append(
                    Status(
                        name, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(sc.schemas), rows, tombs, int(nconf),
                        int(pending),
                    )
                )  # fmt: skip
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        with self.conn.errors(), self.conn.txn(read_only=True):
            if scope is not None:
                self._scope(scope)
            elif not self._has_meta():
                return []
            return self.meta.conflicts(scope, limit)
