"""The PostgreSQL peer: provisioning, status, the snapshot bound and enumeration.

Writers are concurrent and commit in any order; the snapshot bound that
:meth:`PostgresPeer.describe` reports and every batch's ``last`` keep the tick
contract of :mod:`peersync._engine.peer` through the mechanism described in
:func:`~peersync._adapters.postgres.schema.bound_sql`. Applying a batch is in
``apply.py``.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg

from peersync._adapters.sql import scopes
from peersync._adapters.sql.batch_frame import frame, hidden_versions, take_rows
from peersync._adapters.sql.finals import Final, keep_final, kept_finals
from peersync._adapters.sql.meta import NAMES, NAMES_DDL, PREFIX, Meta, range_rows, reported, row_flags
from peersync._adapters.sql.names_file import load_names
from peersync._adapters.sql.reports import logged_conflicts, scope_status
from peersync._adapters.sql.retrack import migrate_command
from peersync._adapters.sql.session_end import end_session
from peersync._adapters.sql.snapshot import Snapshot
from peersync._engine import model
from peersync._engine.errors import ConfigurationError, RepairNeeded, ScopeError, StorageError, TableError
from peersync._engine.knowledge import Knowledge
from peersync._engine.names import NamesArg
from peersync._engine.peer import BatchPeer
from peersync._engine.schema import fingerprint
from peersync._engine.wire import open_batch

from . import retrack
from . import schema as S
from .apply import SetApply
from .conn import POSTGRES, RETRYABLE, errors, open_connection, transaction
from .constraints import constraints_of
from .incoming import prepare
from .schema import SCHEMA, Scope, Tracked, q
from .snapshot import rows_sql, stream, tracking_sql, values_sql

Row = tuple[Any, ...]
_HIDDEN_PAGE = 1000  # tracking rows per read of the rows above the bound
_APPLY_ATTEMPTS = 50  # an apply that keeps meeting concurrent writes gives up after this many tries


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
    vals = values_sql(t)
    rep, tick = reported("%(scope)s")
    flags = row_flags("t.del::int", marks)
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


def short_form(rows: Iterable[Row]) -> Iterator[Row]:
    """Rows of :func:`wire_sql` in wire form: a live local change of this
    replica whose creation is its version, made with no knowledge beyond the
    batch's (flags 0, no version tick, no creation), in the short form
    ``[tick_offset, time_offset, *values]`` (``peersync._engine.wire``): an
    initial sync of the rows made here costs the destination no header."""
    for row in rows:
        if row[1] == 0 and row[3] is None and row[5] is None:
            yield (row[0], row[6], *row[7:])
        else:
            yield row


def _same_fingerprint(stored: str, schemas: list[model.TableSchema]) -> bool:
    return stored == fingerprint(schemas)


class PostgresPeer(BatchPeer):
    """A PostgreSQL database as a peersync peer (``postgresql://`` URLs).

    Opening connects (``TransportError`` when the server cannot be reached)
    and creates nothing; :meth:`provision` creates peersync's schema.
    """

    # The server writes a batch (or reads the next) while the session engine
    # reads the next batch from the other peer (or applies this one) in this
    # process: see peersync._engine.ahead.
    server = True

    def __init__(self, conninfo: str, shown: str, *, timeout: float = 10.0) -> None:
        if type(timeout) not in (int, float) or not 0 < timeout <= 3600:
            raise ConfigurationError(f"timeout must be a number of seconds from 0 to 3600, not {timeout!r}")
        self.url = shown
        self.conn = open_connection(conninfo, shown, timeout)
        self.meta = Meta(self.conn, POSTGRES)
        self._scopes: dict[str, Scope] = {}
        self._verified: dict[str, str | None] = {}  # scope -> shape signature when last loaded and verified
        self._names_table = False
        self._has_meta = False  # seen peersync's metadata on this connection

    # -- plumbing -------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _txn(self, isolation: str = "READ COMMITTED") -> Iterator[psycopg.Connection[Any]]:
        with errors(self.url):
            try:
                with transaction(self.conn, isolation):
                    yield self.conn
            except BaseException:
                self.meta.forget_cache()
                raise

    def bound(self) -> int:
        """The snapshot bound (see :func:`schema.bound_sql`); outside any
        transaction. One round trip: the two statements go as one simple
        query, which the server runs in order."""
        if not self._has_meta:
            if not self.meta.has_meta():
                return 0
            self._has_meta = True  # peersync never drops its schema
        last_sql, locks_sql = S.bound_sql()
        try:
            last, low = (row[0] for row in _results(self.conn.cursor(), f"{last_sql}; {locks_sql}") if row)
        except psycopg.errors.UndefinedTable:  # someone else did
            self._has_meta = False
            return self.bound()
        return int(last) if low is None else min(int(last), int(low))

    def _scope(self, name: str, *, reload: bool = False) -> Scope:
        def load() -> Scope:
            idx, rid, fp, tables, names = scopes.load_scope(
                self.meta, name, self.url, lambda t, tid: replace(S.introspect(self.conn, t), tid=tid),
                _same_fingerprint, lambda _: f"the tables of scope {name!r} in {self.url} changed since provisioning;"
                f" run '{self._migrate_command(name)}' here and on every peer whose tables changed the same way",
            )  # fmt: skip
            sc = Scope(name, idx, rid, fp, tables)
            sc.names = names
            return sc

        return scopes.cached(self._scopes, name, reload, load)

    def _migrate_command(self, name: str) -> str:
        (tables,) = self.meta.execute(f"SELECT tables FROM {PREFIX}scopes WHERE name = ?", (name,)).fetchone()
        return migrate_command(self.url, name, json.loads(tables))

    def _verify(self, sc: Scope) -> None:
        """Tracking that lost a trigger (dropped, disabled, or firing only in
        some session_replication_role: ``ENABLE`` triggers, as peersync
        created them before, miss writers in replica role) cannot be trusted."""
        for t in sc.tables:
            (n,) = self.conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = ANY(%s) AND tgenabled = 'A'",
                (t.qualified, t.trigger_names()),
            ).fetchone()
            if n != len(t.trigger_names()):
                raise RepairNeeded(
                    f"the peersync triggers of table {t.name} in {self.url} are missing, disabled or not"
                    " ENABLE ALWAYS (writers in replica role go untracked); changes made meanwhile were not"
                    f" tracked: run 'peersync repair {shlex.quote(self.url)} --scope {shlex.quote(sc.name)}'"
                )

    # -- management ------------------------------------------------------------
    def scopes(self) -> list[str]:
        with self._txn():
            return self.meta.scope_names()

    def provision(self, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
        """Create ``scope`` over ``tables`` in one transaction (nothing is
        left behind by a failure); True if created, False if it already
        exists with the same definition. Existing rows become local changes.
        ``names``: this database's names where they differ from the scope's
        (a table may be ``schema.table``). Raises :class:`~peersync.ScopeError`,
        :class:`~peersync.TableError` and :class:`~peersync.ConfigurationError`."""
        scopes.check_provision_args(scope, tables)
        local = load_names(names)
        with self._txn() as conn:
            for ddl in (*S.META_DDL, NAMES_DDL):
                conn.execute(ddl)
            # Tables are stored by their qualified names; a repeated provision
            # looks for no lost triggers (describe does).
            plan = scopes.start_provision(
                self.meta, scope, self.url, tables, lambda n: S.introspect(conn, n), _same_fingerprint,
                lambda _ts, _tids: {}, str, stored=lambda t: t.qualified, names=local,
            )  # fmt: skip
            if plan is None:
                return False
            bare = [t.name for t in plan.tables]
            if len({n.lower() for n in bare}) != len(bare):
                raise TableError(f"scope {scope!r} names two tables with the same name in different schemas")
            conn.execute(f"SELECT {SCHEMA}.{PREFIX}take_ticks()")
            for t in plan.tables:
                self._track(conn, t)
            plan.insert_scope(self.meta, scope)
        self._scopes.pop(scope, None)
        return True

    def _track(self, conn: psycopg.Connection[Any], t: Tracked) -> None:
        definition = retrack.definition(t)
        row = conn.execute(f"SELECT definition FROM {PREFIX}tracked WHERE tbl = %s", (t.qualified,)).fetchone()
        if row is not None:
            if row[0] != definition:
                raise ScopeError(f"table {t.name} changed since another scope started tracking it")
            return
        tid = scopes.next_id(self.meta, "tracked", "id")
        t = replace(t, tid=tid)
        for ddl in t.create_sql():
            conn.execute(ddl)
        conn.execute(t.backfill_sql())
        conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (%s, %s, %s)", (t.qualified, definition, tid))

    def deprovision(self, scope: str) -> None:
        """Remove ``scope``'s tracking (tables no other scope tracks lose their
        tracking tables and triggers); user data is untouched."""
        with self._txn() as conn:
            idx, tables = scopes.scope_row(self.meta, scope, self.url)
            scopes.delete_scope_rows(self.meta, scope, idx)
            still = scopes.tables_in_use(self.meta)
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
        """A new replica id for ``scope``, for a database made from another
        (``CREATE DATABASE ... TEMPLATE``, a restored dump); returns it.
        ``moved`` keeps the id (the same database moved to another server).
        Every local change becomes a change of the new id (peers that hold
        the same rows from the original meet them as identical); rows that
        came from peers keep their versions. One transaction. Raises
        :class:`~peersync.ScopeError` for an unknown scope."""
        return retrack.reidentify(self, scope, moved=moved)

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> model.RepairReport:
        """Keep ``scope``'s tracking across a change of its tables' columns
        (``ALTER TABLE ... ADD COLUMN``, a retyped column): store the new shape
        (and recreate lost triggers, as :meth:`repair`); every row keeps its
        versions and the scope its knowledge. Run it on every peer.
        Idempotent, one transaction. Raises :class:`~peersync.ScopeError` for
        an unknown scope, other tables or a changed primary key,
        :class:`~peersync.SchemaMismatch` for a missing table."""
        return retrack.retrack(self, scope, migrate=True, restamp=False, tables=tables)

    def repair(self, scope: str, *, restamp: bool = False) -> model.RepairReport:
        """Recreate missing or disabled triggers (a table dropped and created
        again, ``ALTER TABLE ... DISABLE TRIGGER``) and make the rows inserted
        or deleted meanwhile local changes; ``restamp`` also makes every live
        row a new local change, keeping its change time (for rows updated
        meanwhile). Idempotent, one transaction. Raises
        :class:`~peersync.SchemaMismatch` if the shape changed (that is
        :meth:`migrate`)."""
        return retrack.retrack(self, scope, migrate=False, restamp=restamp, tables=None)

    def compact(self, scope: str | None = None) -> None:
        """Nothing to compact: a PostgreSQL peer keeps no change log (its
        tracking tables hold one row per synced row, indexed by tick). Checks
        that ``scope`` exists."""
        if scope is not None:
            with self._txn():
                self._scope(scope)

    def status(self, scope: str | None = None) -> list[model.Status]:
        names = [scope] if scope is not None else self.scopes()
        out = []
        with errors(self.url):
            tick = self.bound()
        with self._txn() as conn:
            for name in names:
                sc = self._scope(name, reload=True)
                (pending,) = conn.execute(  # type: ignore[misc]
                    f"SELECT count(*) FROM (SELECT DISTINCT tbl, key FROM {PREFIX}pending WHERE scope = %s) AS p",
                    (sc.idx,),
                ).fetchone()
                tracking = [t.tracking for t in sc.tables]
                tables = [s.name for s in sc.global_schemas()]
                out.append(scope_status(self.meta, sc, sc.fingerprint, tables, tracking, tick, int(pending), sc.names))
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[model.Conflict]:
        with self._txn():
            return logged_conflicts(self.meta, scope, limit, self._scope)

    # -- the Peer interface -----------------------------------------------------
    def schemas(self, scope: str) -> dict[str, model.TableSchema]:
        with self._txn():
            return {s.name: s for s in self._scope(scope).global_schemas()}

    def describe(self, scope: str) -> model.ReplicaInfo:
        """The bound, then in one snapshot the scope's knowledge: all that it
        holds, versions of rows committed above the bound included (a
        destination's filter must name them, or a source sends them again).
        Knowledge handed on as made-with leaves those out (:meth:`_hidden`);
        a description's is never merged (``ReplicaInfo``)."""
        with errors(self.url):
            tick = self.bound()
        sc_known = self._unchanged(scope)
        if sc_known is not None:
            sc, stored, forgotten = sc_known
            return scopes.described(scope, sc, tick, stored, forgotten)
        with self._txn("REPEATABLE READ"):
            sc = self._checked_scope(scope)
            stored, forgotten = self.meta.stored_knowledge(scope)
        return scopes.described(scope, sc, tick, stored, forgotten)

    def _unchanged(self, scope: str) -> tuple[Scope, Knowledge, Knowledge] | None:
        """The scope as this connection last verified it and its stored and
        forgotten knowledge, read in one snapshot and one round trip (the
        statements of :meth:`_checked_scope`'s cached case and of
        ``stored_knowledge`` sent as one simple query); None when nothing
        was verified yet or the shape signature changed."""
        cached, verified = self._scopes.get(scope), self._verified.get(scope)
        if cached is None or verified is None:
            return None
        query = (
            f"BEGIN ISOLATION LEVEL REPEATABLE READ; {S.shape_signature(self._names_table)};"
            f" SELECT knowledge, forgotten FROM {PREFIX}scopes WHERE name = %(scope)s; COMMIT"
        )
        with errors(self.url):
            try:
                signature, knowledge = _results(psycopg.ClientCursor(self.conn), query, {"scope": scope})
            except BaseException:
                self.meta.forget_cache()
                if not self.conn.closed and self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.conn.execute("ROLLBACK")
                raise
        if not signature or signature[0] != verified or not knowledge:
            return None
        stored, forgotten = knowledge
        return cached, Knowledge.from_bytes(bytes(stored)), Knowledge.from_bytes(bytes(forgotten))

    def _checked_scope(self, scope: str) -> Scope:
        """The scope as it is now, its triggers verified: loaded again (about
        six catalog queries per table) only when :func:`schema.shape_signature`
        says something it was read from changed since it was last verified."""
        cached = self._scopes.get(scope)
        if cached is not None:
            row = self.conn.execute(S.shape_signature(self._names_table), {"scope": scope}).fetchone()
            if row is not None and row[0] == self._verified.get(scope):
                return cached
        self._names_table = bool(self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (NAMES,)).fetchone()[0])  # type: ignore[index]
        sc = self._scope(scope, reload=True)
        self._verify(sc)
        # Read in the snapshot the scope was just loaded in, so it describes what was verified.
        row = self.conn.execute(S.shape_signature(self._names_table), {"scope": scope}).fetchone()
        self._verified[scope] = None if row is None else row[0]
        return sc

    @contextmanager
    def snapshot_of(self, scope: str) -> Iterator[Snapshot]:
        """``scope`` as of its snapshot bound, for a clone: read in one
        REPEATABLE READ transaction opened after the bound (see
        :mod:`peersync._adapters.sql.snapshot`); rows stream through
        server-side cursors while the context is open. Raises as
        :meth:`describe` does."""
        with errors(self.url):
            tick = self.bound()
        with self._txn("REPEATABLE READ"):
            sc = self._scope(scope, reload=True)
            self._verify(sc)
            fr = frame(self.meta, sc, sc.fingerprint, tick, None, self._hidden(sc, tick))
            _, forgotten = self.meta.stored_knowledge(scope)
            params = {"scope": sc.idx, "tick": tick}
            glob = tuple(sc.global_schemas())
            yield Snapshot(
                scope, sc.rid, tick, sc.fingerprint, fr.made_with, forgotten, glob,
                dict(self.meta.rep_rid), self.meta.partials(),
                lambda i: stream(self.conn, tracking_sql(sc.tables[i], True), params),
                lambda i: stream(self.conn, tracking_sql(sc.tables[i], False), params),
                lambda i: stream(self.conn, rows_sql(sc.tables[i]), params),
                constraints_of(self.conn, sc.tables, glob),
            )  # fmt: skip

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch, with its ``last`` tick and whether it is final. The
        bound is read first, then the rows in one snapshot taken after it."""
        with errors(self.url):
            tick = self.bound()
        with self._txn("REPEATABLE READ"):
            sc = self._scope(scope)
            fr = frame(self.meta, sc, sc.fingerprint, tick, sc.names.wire_tables, self._hidden(sc, tick))
            ranges = range_rows(known, self.meta.rep_idx, sc.rid, after)
            horizon = min(upto, tick)
            room = max_bytes - len(fr.pack(after, horizon, []))
            params = {
                "after": after,
                "horizon": horizon,
                "first0": after,
                "scope": sc.idx,
                "krep": [r[0] for r in ranges],
                "klo": [r[1] for r in ranges],
                "khi": [r[2] for r in ranges],
            }
            tables, stop = self._read(sc, bool(ranges), fr.marks, params, max_rows, room)
            last = horizon if stop is None else after + stop
            return fr.pack(after, last, tables), last, last >= tick

    def _hidden(self, sc: Scope, tick: int) -> Knowledge:
        """Versions of rows the open snapshot shows above the bound ``tick``.

        A local writer's floor holds the bound below the newest tick while
        an apply commits rows above it with knowledge of their versions: the
        knowledge a batch is made with leaves those versions out (see
        :func:`~peersync._adapters.sql.batch_frame.hidden_versions`).
        Cost: one index range scan of ``lt > tick`` per table, usually a
        few rows; the destination learns them with the batch that carries them.
        Read in pages in tick order: a table just loaded has no statistics yet,
        and the planner, guessing that a third of it lies above ``tick``, would
        read it whole (0.4 s for 1,000,000 rows) in every session."""
        self.meta.load_replicas()
        rows: list[Any] = []
        for t in sc.tables:
            after = tick
            while True:
                # The scope is filtered here, not in SQL: a guessed selectivity
                # of the filter too would again make a whole scan look cheaper.
                page = self.conn.execute(
                    f"SELECT lt, urep, utick, crep, ctick, scope FROM {t.tracking} WHERE lt > %s ORDER BY lt LIMIT %s",
                    (after, _HIDDEN_PAGE),
                ).fetchall()
                rows += [r[1:5] for r in page if r[5] == sc.idx]
                if len(page) < _HIDDEN_PAGE:
                    break
                after = page[-1][0]
        return hidden_versions(self.meta, rows)

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
        try:
            return take_rows([(t.name, base, short_form(cur)) for t, base, cur in readers], max_rows, room)
        finally:
            for _, _, cur in readers:
                cur.close()

    def apply(self, scope: str, data: bytes, handler: model.ConflictHandler) -> model.ApplyReport:
        with self._txn():
            sc = self._scope(scope)
        data = sc.names.batch_in(data)
        env = open_batch(data, scope, sc.schemas, sc.fingerprint, sc.rid)
        prepared = prepare(sc, data, env)
        handler = sc.names.handler(handler)
        # The apply reads each row's tracking state in its snapshot and writes
        # in the same transaction (REPEATABLE READ): a local write committed
        # after that snapshot makes PostgreSQL refuse our write to the row
        # (a serialization failure) instead of overwriting it, and the apply
        # starts again, now seeing that write as a conflict.
        for attempt in range(_APPLY_ATTEMPTS):
            try:
                with self._txn("REPEATABLE READ"):
                    return sc.names.report_out(SetApply(self.conn, self.meta, sc, prepared, handler).run())
            except StorageError as exc:
                if not isinstance(exc.__cause__, RETRYABLE) or attempt == _APPLY_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.002 * 2**attempt, 0.2))
        raise AssertionError("unreachable")

    def finish(self, scope: str, end: model.SessionEnd) -> Knowledge:
        with errors(self.url):
            tick = self.bound()
        with self._txn():
            sc = self._scope(scope)
            stored = end_session(self.meta, sc, sc.names.end_in(end), lambda: tick)
        return stored.add_range(sc.rid, 1, tick)

    def keep_final(self, scope: str, final: Final, known: Knowledge) -> None:
        """Record a final batch applied here (``_adapters/sql/finals.py``)."""
        with self._txn():
            keep_final(self.meta, scope, final, known, self.url)

    def kept_finals(self, scope: str) -> list[Final]:
        with self._txn():
            return kept_finals(self.meta, scope, self.url)


def _results(
    cur: psycopg.Cursor[Any], query: str, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...] | None]:
    """The first row (None if none) of each result of ``query``'s
    statements that returns rows, sent as one simple query (a
    ``ClientCursor`` binds ``params`` on this side)."""
    out: list[tuple[Any, ...] | None] = []
    cur.execute(query, params)
    while True:
        if cur.description is not None:
            out.append(cur.fetchone())
        if not cur.nextset():
            return out
