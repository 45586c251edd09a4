"""The PostgreSQL peer: provisioning, status, the snapshot bound and enumeration.

Writers are concurrent and commit in any order; the snapshot bound that
:meth:`PostgresPeer.describe` reports and every batch's ``last`` keep the tick
contract of :mod:`peersync._engine.peer` through the mechanism described in
:func:`~peersync._adapters.postgres.schema.bound_sql`. Applying a batch is in
``apply.py``.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import repeat
from typing import Any

import psycopg

from peersync._adapters.sql.dialect import Dialect
from peersync._adapters.sql.meta import PREFIX, Meta, now_ms, range_rows
from peersync._engine.errors import (
    ConfigurationError,
    ProtocolError,
    RepairNeeded,
    SchemaMismatch,
    ScopeError,
    StorageError,
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
from peersync._engine.schema import dependency_order, fingerprint
from peersync._engine.wire import PackedRows, pack_batch, row_packer, unpack_envelope

from . import schema as S
from .conn import RETRYABLE, errors, open_connection, transaction
from .schema import SCHEMA, Scope, Tracked, q, read_expr

POSTGRES = Dialect(paramstyle="format", returning=True)
_SESSIONS_KEPT = 1000  # finished sessions remembered per scope, for retried finish calls
_APPLY_ATTEMPTS = 50  # an apply that keeps meeting concurrent writes gives up after this many tries


def _definition(t: Tracked) -> str:
    return json.dumps([t.qualified, list(t.schema.columns), list(t.schema.key), list(t.schema.types)])


def has(rep: str, tick: str) -> str:
    """SQL truth value: ``tick`` of replica ``rep`` lies in one of the
    half-open ranges passed as arrays ``%(krep)s``, ``%(klo)s``, ``%(khi)s``."""
    return (
        "EXISTS (SELECT 1 FROM unnest(%(krep)s::int[], %(klo)s::int8[], %(khi)s::int8[]) AS r(rep, lo, hi)"
        f" WHERE r.rep = {rep} AND r.lo <= {tick} AND {tick} < r.hi)"
    )


def wire_sql(t: Tracked, filter_known: bool, marks: dict[int, int]) -> str:
    """Rows with a local tick in ``(%(after)s, %(horizon)s]`` in wire form, in
    tick order, skipping those whose reported version (or, for a row that
    came through this scope, whose local tick) the destination knows."""
    s = t.schema
    kmap = dict(zip(s.key, t.kcols, strict=True))
    vals = ", ".join(
        read_expr(c, f"t.{kmap[c.spec.name]}" if c.spec.name in kmap else f"u.{q(c.spec.name)}") for c in t.columns
    )
    rep = "CASE WHEN t.scope = %(scope)s THEN t.urep ELSE 0 END"
    tick = "CASE WHEN t.scope = %(scope)s THEN t.utick ELSE t.lt END"
    flags = "t.del::int"
    if marks:
        cases = " ".join(f"WHEN {mw} THEN {2 * i}" for mw, i in marks.items())
        flags = f"t.del::int + CASE t.mw {cases} ELSE 0 END"
    known = (
        f" AND NOT {has(rep, tick)} AND (t.scope IS DISTINCT FROM %(scope)s OR NOT {has('0', 't.lt')})"
        if filter_known
        else ""
    )
    return (
        f"SELECT t.lt - %(first0)s, {flags}, {rep}, CASE WHEN t.scope = %(scope)s THEN t.utick END,"
        " CASE WHEN t.ctick IS NULL THEN NULL ELSE COALESCE(t.crep, 0) END, t.ctick,"
        f" t.ctime - %(base)s, {vals}"
        f" FROM {t.tracking} AS t LEFT JOIN {t.qualified} AS u ON {t.key_match('t', 'u')}"
        f" WHERE t.lt > %(after)s AND t.lt <= %(horizon)s AND (t.del OR u.{q(s.key[0])} IS NOT NULL){known}"
        " ORDER BY t.lt"
    )


def _tagged(i: int, rows: Iterator[Any]) -> Iterator[tuple[int, int, Any]]:
    for row in rows:
        yield row[0], i, row


class PostgresPeer:
    """A PostgreSQL database as a peersync peer (``postgresql://`` URLs).

    Opening connects (``TransportError`` when the server cannot be reached)
    and creates nothing; :meth:`provision` creates peersync's schema.
    """

    def __init__(self, conninfo: str, shown: str, *, timeout: float = 10.0) -> None:
        if type(timeout) not in (int, float) or not 0 < timeout <= 3600:
            raise ConfigurationError(f"timeout must be a number of seconds from 0 to 3600, not {timeout!r}")
        self.url = shown
        self.conn = open_connection(conninfo, shown, timeout)
        self.meta = Meta(self.conn, POSTGRES)
        self._scopes: dict[str, Scope] = {}

    # -- plumbing -------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PostgresPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresPeer({self.url!r})"

    @contextmanager
    def _txn(self, isolation: str = "READ COMMITTED") -> Iterator[psycopg.Connection[Any]]:
        with errors(self.url):
            try:
                with transaction(self.conn, isolation):
                    yield self.conn
            except BaseException:
                self.meta.forget_cache()
                raise

    def _has_meta(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{PREFIX}scopes",)).fetchone()
        return bool(row and row[0])

    def bound(self) -> int:
        """The snapshot bound (see :func:`schema.bound_sql`); outside any transaction."""
        if not self._has_meta():
            return 0
        last_sql, locks_sql = S.bound_sql()
        (last,) = self.conn.execute(last_sql).fetchone()  # type: ignore[misc]
        (low,) = self.conn.execute(locks_sql).fetchone()  # type: ignore[misc]
        return int(last) if low is None else min(int(last), int(low))

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
        tables = []
        for qualified in json.loads(tables_json):
            try:
                t = S.introspect(self.conn, qualified)
            except TableError as exc:
                raise SchemaMismatch(f"scope {name!r} in {self.url}: {exc}") from exc
            tables.append(replace(t, tid=tids[qualified]))
        if fp != fingerprint([t.schema for t in tables]):
            raise SchemaMismatch(
                f"the tables of scope {name!r} in {self.url} changed since provisioning;"
                " peersync cannot migrate a PostgreSQL scope yet: deprovision and provision it again"
            )
        sc = Scope(name, int(idx), bytes(rid), fp, tables)
        self._scopes[name] = sc
        return sc

    def _verify(self, sc: Scope) -> None:
        """Tracking that lost a trigger (dropped, disabled) cannot be trusted."""
        for t in sc.tables:
            (n,) = self.conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = ANY(%s)"
                " AND tgenabled <> 'D'",
                (t.qualified, t.trigger_names()),
            ).fetchone()
            if n != len(t.trigger_names()):
                raise RepairNeeded(
                    f"the peersync triggers of table {t.name} in {self.url} are missing or disabled;"
                    " changes made meanwhile were not tracked: deprovision and provision the scope again"
                )

    # -- management ------------------------------------------------------------
    def scopes(self) -> list[str]:
        with self._txn():
            if not self._has_meta():
                return []
            return [r[0] for r in self.conn.execute(f"SELECT name FROM {PREFIX}scopes ORDER BY name").fetchall()]

    def provision(self, scope: str, tables: Sequence[str]) -> bool:
        """Create ``scope`` over ``tables`` in one transaction (nothing is
        left behind by a failure); True if created, False if it already
        exists with the same definition. Existing rows become local changes.
        Raises :class:`~peersync.ScopeError` and :class:`~peersync.TableError`."""
        if isinstance(tables, str):
            raise TableError(f"tables is a list of names, not the string {tables!r}: write [{tables!r}]")
        if not scope or not tables:
            raise ScopeError("a scope needs a name and at least one table")
        with self._txn() as conn:
            for ddl in S.META_DDL:
                conn.execute(ddl)
            found = [S.introspect(conn, n) for n in tables]
            wanted = dependency_order(list({t.qualified: t for t in found}.values()))
            names = [t.name for t in wanted]
            if len({n.lower() for n in names}) != len(names):
                raise TableError(f"scope {scope!r} names two tables with the same name in different schemas")
            fp = fingerprint([t.schema for t in wanted])
            quals = [t.qualified for t in wanted]
            row = conn.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = %s", (scope,)).fetchone()
            if row is not None:
                if sorted(json.loads(row[0])) == sorted(quals) and row[1] == fp:
                    return False
                raise ScopeError(
                    f"scope {scope!r} already exists in {self.url} with other tables or another shape;"
                    " deprovision it first or choose another name"
                )
            conn.execute(f"SELECT {SCHEMA}.{PREFIX}take_ticks()")
            for t in wanted:
                self._track(conn, t)
            (idx,) = conn.execute(f"SELECT COALESCE(MAX(idx), 0) + 1 FROM {PREFIX}scopes").fetchone()  # type: ignore[misc]
            empty = Knowledge.empty().to_bytes()
            conn.execute(
                f"INSERT INTO {PREFIX}scopes (name, idx, replica_id, tables, fingerprint, knowledge, forgotten,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (scope, idx, os.urandom(16), json.dumps(quals), fp, empty, empty, now_ms()),
            )
        self._scopes.pop(scope, None)
        return True

    def _track(self, conn: psycopg.Connection[Any], t: Tracked) -> None:
        definition = _definition(t)
        row = conn.execute(f"SELECT definition FROM {PREFIX}tracked WHERE tbl = %s", (t.qualified,)).fetchone()
        if row is not None:
            if row[0] != definition:
                raise ScopeError(f"table {t.name} changed since another scope started tracking it")
            return
        (tid,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {PREFIX}tracked").fetchone()  # type: ignore[misc]
        t = replace(t, tid=tid)
        for ddl in t.create_sql():
            conn.execute(ddl)
        conn.execute(t.backfill_sql())
        conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (%s, %s, %s)", (t.qualified, definition, tid))

    def deprovision(self, scope: str) -> None:
        """Remove ``scope``'s tracking (tables no other scope tracks lose their
        tracking tables and triggers); user data is untouched."""
        with self._txn() as conn:
            if not self._has_meta():
                raise ScopeError(f"unknown scope {scope!r} in {self.url}")
            row = conn.execute(f"SELECT idx, tables FROM {PREFIX}scopes WHERE name = %s", (scope,)).fetchone()
            if row is None:
                raise ScopeError(f"unknown scope {scope!r} in {self.url}")
            idx, tables = row[0], json.loads(row[1])
            for tbl in ("scopes", "conflicts", "applied", "partial", "sessions"):
                conn.execute(f"DELETE FROM {PREFIX}{tbl} WHERE {'name' if tbl == 'scopes' else 'scope'} = %s", (scope,))
            conn.execute(f"DELETE FROM {PREFIX}pending WHERE scope = %s", (idx,))
            still = {
                n for (ts,) in conn.execute(f"SELECT tables FROM {PREFIX}scopes").fetchall() for n in json.loads(ts)
            }
            for qualified in tables:
                if qualified in still:
                    continue
                r = conn.execute(f"SELECT id FROM {PREFIX}tracked WHERE tbl = %s", (qualified,)).fetchone()
                if r is None:
                    continue
                tid = int(r[0])
                exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
                for kind in ("ins", "upd", "del", "trunc"):
                    if exists and exists[0]:
                        conn.execute(f"DROP TRIGGER IF EXISTS {PREFIX}{kind} ON {qualified}")
                    conn.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.{PREFIX}{kind}_{tid}()")
                conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{PREFIX}t_{tid}")
                conn.execute(f"DELETE FROM {PREFIX}tracked WHERE id = %s", (tid,))
        self._scopes.pop(scope, None)

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """Not available for PostgreSQL yet: raises :class:`~peersync.ConfigurationError`."""
        raise ConfigurationError("reidentify is not supported for PostgreSQL databases yet")

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> RepairReport:
        """Not available for PostgreSQL yet: raises :class:`~peersync.ConfigurationError`."""
        raise ConfigurationError("migrate is not supported for PostgreSQL databases yet")

    def repair(self, scope: str, *, restamp: bool = False) -> RepairReport:
        """Not available for PostgreSQL yet: raises :class:`~peersync.ConfigurationError`."""
        raise ConfigurationError("repair is not supported for PostgreSQL databases yet")

    def compact(self, scope: str | None = None) -> None:
        """Nothing to compact: a PostgreSQL peer keeps no change log (its
        tracking tables hold one row per synced row, indexed by tick). Checks
        that ``scope`` exists."""
        if scope is not None:
            with self._txn():
                self._scope(scope)

    def status(self, scope: str | None = None) -> list[Status]:
        names = [scope] if scope is not None else self.scopes()
        out = []
        with errors(self.url):
            tick = self.bound()
        with self._txn() as conn:
            for name in names:
                sc = self._scope(name, reload=True)
                stored, forgotten = self.meta.stored_knowledge(name)
                rows = tombs = 0
                for t in sc.tables:
                    n, d = conn.execute(f"SELECT count(*), count(*) FILTER (WHERE del) FROM {t.tracking}").fetchone()  # type: ignore[misc]
                    rows, tombs = rows + n, tombs + d
                (nconf,) = conn.execute(f"SELECT count(*) FROM {PREFIX}conflicts WHERE scope = %s", (name,)).fetchone()  # type: ignore[misc]
                (pending,) = conn.execute(  # type: ignore[misc]
                    f"SELECT count(*) FROM (SELECT DISTINCT tbl, key FROM {PREFIX}pending WHERE scope = %s) AS p",
                    (sc.idx,),
                ).fetchone()
                k = stored.add_range(sc.rid, 1, tick)
                out.append(
                    Status(
                        name, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(sc.schemas), rows, tombs, nconf, pending
                    )
                )
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        with self._txn():
            if scope is not None:
                self._scope(scope)
            elif not self._has_meta():
                return []
            return self.meta.conflicts(scope, limit)

    # -- the Peer interface -----------------------------------------------------
    def schemas(self, scope: str) -> dict[str, TableSchema]:
        with self._txn():
            return dict(self._scope(scope).schemas)

    def describe(self, scope: str) -> ReplicaInfo:
        with errors(self.url):
            tick = self.bound()
        with self._txn("REPEATABLE READ"):
            sc = self._scope(scope, reload=True)
            self._verify(sc)
            stored, forgotten = self.meta.stored_knowledge(scope)
        k = stored.add_range(sc.rid, 1, tick)
        return ReplicaInfo(scope, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(t.schema for t in sc.tables))

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self._batch(scope, known, after, upto, max_rows, max_bytes)[0]

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        while True:
            data, last, final = self._batch(scope, known, after, upto, max_rows, max_bytes)
            yield data
            if final or last >= upto:
                return
            after = last

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch, with its ``last`` tick and whether it is final. The
        bound is read first, then the rows in one snapshot taken after it."""
        with errors(self.url):
            tick = self.bound()
        with self._txn("REPEATABLE READ"):
            sc = self._scope(scope)
            self.meta.load_replicas()
            stored, _ = self.meta.stored_knowledge(scope)
            made_with = stored.add_range(sc.rid, 1, tick)
            ranges = range_rows(known, self.meta.rep_idx, sc.rid, after)
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
            params = {
                "after": after,
                "horizon": horizon,
                "first0": after,
                "scope": sc.idx,
                "krep": [r[0] for r in ranges],
                "klo": [r[1] for r in ranges],
                "khi": [r[2] for r in ranges],
            }
            tables, stop = self._read(sc, bool(ranges), marks, params, max_rows, room)
            last = horizon if stop is None else after + stop
            return batch(last, tables), last, last >= tick

    def _read(
        self, sc: Scope, filter_known: bool, marks: dict[int, int], params: dict[str, Any], max_rows: int, room: int
    ) -> tuple[list[list[Any]], int | None]:
        """Rows in tick order across tables, up to ``max_rows`` rows and
        ``room`` bytes (the first row goes whatever its size), streamed
        through server-side cursors. Returns the tables' packed rows and the
        tick offset of the last row taken, or None if every row was taken."""
        readers: list[tuple[Tracked, int, psycopg.ServerCursor[Any]]] = []
        for n, t in enumerate(sc.tables):
            row = self.conn.execute(
                f"SELECT ctime FROM {t.tracking} WHERE lt > %s AND lt <= %s ORDER BY lt LIMIT 1",
                (params["after"], params["horizon"]),
            ).fetchone()
            base = int(row[0]) if row else 0
            cur = self.conn.cursor(name=f"_peersync_read_{n}")
            cur.itersize = min(max(max_rows, 1), 2000)
            cur.execute(wire_sql(t, filter_known, marks), {**params, "base": base})
            readers.append((t, base, cur))
        pack = row_packer()
        parts: list[list[bytes]] = [[] for _ in readers]
        size = n = 0
        last: int | None = None
        stream: Iterator[tuple[int, Any]]
        if len(readers) == 1:
            stream = zip(repeat(0), readers[0][2])
        else:
            stream = (
                (i, r) for _, i, r in heapq.merge(*(_tagged(i, iter(cur)) for i, (_, _, cur) in enumerate(readers)))
            )
        try:
            for i, r in stream:
                data = pack(r)
                grown = len(data) if parts[i] else len(data) + len(readers[i][0].name) + 16
                if n and (n >= max_rows or size + grown > room):
                    break
                parts[i].append(data)
                size += grown
                n += 1
                last = r[0]
            else:
                last = None
        finally:
            for _, _, cur in readers:
                cur.close()
        tables = [[t.name, base, PackedRows(len(p), p)] for (t, base, _), p in zip(readers, parts, strict=True) if p]
        return tables, last

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        from .apply import SetApply  # apply.py imports this module's helpers

        with self._txn():
            sc = self._scope(scope)
        env = unpack_envelope(data, sc.schemas)
        if env.scope != scope:
            raise ProtocolError(f"batch is for scope {env.scope!r}, not {scope!r}")
        if env.fingerprint != sc.fingerprint:
            raise SchemaMismatch(f"batch for scope {scope!r} has shape {env.fingerprint}, this peer {sc.fingerprint}")
        if env.source == sc.rid:
            raise ProtocolError("batch claims to come from this very replica")
        if env.last >= env.first and not env.made_with.contains_knowledge(
            Knowledge.from_ranges({env.source: [(env.first, env.last)]})
        ):
            raise ProtocolError("batch covers source ticks beyond the source's own knowledge")
        prepared = SetApply.prepare(sc, data)
        # The apply reads each row's tracking state in its snapshot and writes
        # in the same transaction (REPEATABLE READ): a local write committed
        # after that snapshot makes PostgreSQL refuse our write to the row
        # (a serialization failure) instead of overwriting it, and the apply
        # starts again, now seeing that write as a conflict.
        for attempt in range(_APPLY_ATTEMPTS):
            try:
                with self._txn("REPEATABLE READ"):
                    return SetApply(self.conn, self.meta, sc, prepared, handler).run()
            except StorageError as exc:
                if not isinstance(exc.__cause__, RETRYABLE) or attempt == _APPLY_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.002 * 2**attempt, 0.2))
        raise AssertionError("unreachable")

    def finish(self, scope: str, end: SessionEnd) -> Knowledge:
        with errors(self.url):
            tick = self.bound()
        with self._txn():
            sc = self._scope(scope)
            # One finish (or apply) of a scope at a time: each reads the scope's
            # knowledge, merges and writes it back.
            self.conn.execute(f"SELECT 1 FROM {PREFIX}scopes WHERE name = %s FOR UPDATE", (scope,))
            seen = self.conn.execute(
                f"SELECT 1 FROM {PREFIX}sessions WHERE scope = %s AND id = %s", (scope, end.session)
            ).fetchone()
            stored, _ = self.meta.stored_knowledge(scope)
            if seen is None:
                (seq,) = self.conn.execute(  # type: ignore[misc]
                    f"SELECT coalesce(max(seq), 0) + 1 FROM {PREFIX}sessions WHERE scope = %s", (scope,)
                ).fetchone()
                self.conn.execute(f"INSERT INTO {PREFIX}sessions VALUES (%s, %s, %s)", (scope, end.session, seq))
                self.conn.execute(
                    f"DELETE FROM {PREFIX}sessions WHERE scope = %s AND seq <= %s", (scope, seq - _SESSIONS_KEPT)
                )
                merge = end.merge.exclude(end.excluded)
                self.meta.release_beaten(sc, merge)
                stored = self.meta.save_knowledge(sc, stored.union(merge))
                self.meta.insert_conflicts(end.failures)
                self.meta.drop_partials_held(scope, stored.add_range(sc.rid, 1, tick))
        return stored.add_range(sc.rid, 1, tick)
