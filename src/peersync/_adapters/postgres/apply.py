"""Applying one batch to a PostgreSQL database.

Inside one REPEATABLE READ transaction (see ``PostgresPeer.apply``): the
user rows and tracking rows of the batch's keys are locked and read in one
statement per table (user rows first, as writers' triggers lock them); each
incoming change is triaged against that tracking state and knowledge by the
engine's rules; conflicts go through ``rules.resolve``; then the writes are
one statement per table and kind (upserts parents first, deletes children
first), each in a savepoint, halved until the failing rows are isolated; a
failing row becomes an ``error`` conflict and stays out of knowledge. The
tracking rows of written rows are then stamped with their origin version in
one statement per table (the triggers stamped them as local changes first,
so side effects such as cascades stay tracked as local changes).

Every write bound for a row changed by a transaction that committed after
this one's snapshot fails with a serialization error, never overwriting it:
the caller runs the apply again, which then sees that change as a conflict.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from peersync._adapters.sql.meta import PREFIX, Meta
from peersync._engine.errors import ProtocolError
from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import (
    ApplyReport,
    Batch,
    Conflict,
    ConflictHandler,
    ConflictType,
    Outcome,
    Policy,
    Resolution,
    Value,
)
from peersync._engine.rules import LocalState, classify, policy_name, remote_wins_by_time, resolve
from peersync._engine.schema import dependency_order

from . import collisions, fresh, pending
from .conn import RETRYABLE, savepoint
from .incoming import APPLY, CONFLICT, DEFER, FAILED, KNOWN, LEARN, MERGE, Row, Table
from .normalized import restamp_drifted, restamp_rewritten
from .schema import LAST_TICK, SCHEMA, TICK, Scope, Tracked, q, read_expr
from .values import Unfit, bind_type, blame, to_pg
from .values import bound_param as _param


@dataclass(frozen=True)
class _Rewrite:
    kind: str  # "write" (a row, or a delete when row is None), "merge" or "restamp"
    table: Tracked
    row: Row
    values: dict[str, Value] | None
    time: int
    conflict: Conflict
    mw: int
    evict: tuple[tuple[Any, ...], ...] = ()  # raw keys of local rows a UNIQUE collision's winner replaces


def _same(local: dict[str, Value] | None, remote: dict[str, Value] | None) -> bool:
    return (
        local is not None
        and remote is not None
        and all(type(local[c]) is type(remote[c]) and local[c] == remote[c] for c in local)
    )


class SetApply:
    """One batch applied inside the caller's REPEATABLE READ transaction."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        meta: Meta,
        sc: Scope,
        prepared: tuple[Batch, dict[str, Table]],
        handler: ConflictHandler,
    ) -> None:
        self.conn, self.meta, self.sc, self.handler = conn, meta, sc, handler
        self.batch, tables = prepared
        # Fresh rows: a retried apply decides everything again.
        self.tables = [tab.copy() for tab in tables.values()]
        self.report = ApplyReport(last=self.batch.last, final=self.batch.final, made_with=self.batch.made_with)
        self.excluded: list[tuple[Tracked, Row]] = []
        self.conflicts: list[Conflict] = []
        self.rewrites: list[_Rewrite] = []

    # -- the steps ------------------------------------------------------------------
    def run(self) -> ApplyReport:
        conn, sc, b = self.conn, self.sc, self.batch
        conn.execute(f"SELECT {SCHEMA}.{PREFIX}take_ticks()")
        # The batch's rows are probed one by one through the key indexes: a hash
        # or merge join would read whole tables, so a batch would cost more as
        # the table grows (the planner knows nothing of the staging table).
        conn.execute("SET LOCAL enable_hashjoin = off")
        conn.execute("SET LOCAL enable_mergejoin = off")
        self.meta.load_replicas()
        stored, _ = self.meta.stored_knowledge(sc.name)
        (top,) = conn.execute(f"SELECT {LAST_TICK}").fetchone()  # type: ignore[misc]
        self.known = stored.add_range(sc.rid, 1, int(top))
        learned = Knowledge.empty()
        if b.last >= b.first:
            learned = learned.add_range(b.source, b.first, b.last)
        order = {t.name: i for i, t in enumerate(dependency_order(sc.tables))}
        self.tables.sort(key=lambda tab: order[tab.t.name])
        if any(tab.rows or tab.short for tab in self.tables):
            self.partials = dict(self.meta.partials())
            self.mw = self.meta.partial_id(sc.name, b.made_with)
            self.ex_ids = [self.meta.partial_id(sc.name, b.made_with | extra) for extra in b.extras]
            for tab in self.tables:
                if not self._fresh(tab):
                    self._lock_and_read(tab)
                    self._triage(tab)
            for tab in self.tables:
                for r in tab.rows:
                    if r.action == CONFLICT:
                        self._conflict(tab.t, r)
            self._write()
            for rw in self.rewrites:
                self._rewrite(rw)
            withs = [b.made_with, *(b.made_with | extra for extra in b.extras)]
            settled = (
                (tab.t.tid, r.key, r.version, withs[r.mark])
                for tab in self.tables
                for r in tab.rows
                if r.action in (APPLY, LEARN, MERGE)
            )
            shorts = [tab.short.settled(tab.t.tid, b.made_with) for tab in self.tables if tab.short is not None]
            pending.release(conn, sc.idx, itertools.chain(settled, *shorts))
            # (Rows still short were written by fresh.write_short; their versions,
            # the source's ticks in this batch's range, are learned already.)
            learned = learned | Knowledge.from_versions(
                r.version for tab in self.tables for r in tab.rows if r.action in (APPLY, LEARN, MERGE)
            )
        kept = ((t.tid, r.key, r.version, r.change[0]) for t, r in self.excluded)
        excluded = pending.keep(conn, self.meta, sc.idx, b.source, kept)
        new = self.meta.save_knowledge(sc, stored.union(learned.exclude(excluded)))
        if self.conflicts:
            self.meta.insert_conflicts(self.conflicts)
        (top,) = conn.execute(f"SELECT {LAST_TICK}").fetchone()  # type: ignore[misc]
        self.report.excluded = excluded
        self.report.knowledge = new.add_range(sc.rid, 1, int(top))
        return self.report

    def _staging(self, t: Tracked) -> str:
        """This connection's staging table for ``t``'s incoming rows: the
        values as bound (see ``values.bind_type``) and the stamp each row
        gets if written. Emptied at every commit (and by any rollback)."""
        types = [bind_type(c) for c in t.columns]
        name = f"_peersync_in_{t.tid}_{abs(hash((t.qualified, *types))) % 10**9}"
        cols = ", ".join(f"c{i} {ty}" for i, ty in enumerate(types))
        self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} (ord int8 PRIMARY KEY, urep int4, utick int8, crep int4,"
            f" ctick int8, ctime int8, del bool, mw int8, {cols}) ON COMMIT DELETE ROWS"
        )
        return name

    def _load(self, tab: Table) -> None:
        """COPY the rows whose values fit into the staging table (binary)."""
        t = tab.t
        tab.staging = self._staging(t)
        # Replica indexes first: nothing else may run on the connection during the COPY.
        idx = self._rep_indexes(tab.rows)
        stamps: list[tuple[Any, ...]] = []
        for r in tab.rows:
            if r.bound is None:
                continue
            r.ord = len(stamps) + 1
            urep, utick, crep, ctick, ctime, mw = self._stamp_of(r, idx)
            stamps.append((r.ord, urep, utick, crep, ctick, ctime, r.deleted, mw, *r.bound))
        with self.conn.cursor() as cur, cur.copy(f"COPY {tab.staging} FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int4", "int8", "int4", "int8", "int8", "bool", "int8", *map(bind_type, t.columns)])
            for row in stamps:
                cp.write_row(row)

    def _rep_indexes(self, rows: list[Row]) -> dict[bytes, int]:
        """The index of each replica other than this one that made a version of ``rows``."""
        rids = {r.version[0] for r in rows} | {r.change[3][0] for r in rows}
        return {rid: self.meta.rep_index(rid) for rid in rids if rid != self.sc.rid}

    def _stamp_of(self, r: Row, idx: dict[bytes, int]) -> fresh.Stamp:
        """``r``'s tracking stamp if written: urep, utick, crep, ctick (NULL
        when the creation is the version), ctime, mw; ``idx`` maps replica ids
        (other than this one's) to their indexes."""
        _, _, version, creation, when, _ = r.change
        same = creation == version
        crep, ctick = (None, None) if same else (idx.get(creation[0]), creation[1])
        return idx.get(version[0]), version[1], crep, ctick, when, self._made_with_record(r)

    def _fresh(self, tab: Table) -> bool:
        """Write a table's rows by ``fresh.write`` when all are live rows of
        versions this replica does not know, that fit their columns; True if
        they were (each counted received and applied). Short rows
        (``short.py``) are made :class:`Row` objects unless written so."""
        t, rows, known, own = tab.t, tab.rows, self.known, self.sc.rid
        if tab.short is not None:
            s, origin = tab.short, tab.origin
            if not (origin and origin.no_fresh) and s.unknown_to(known):
                urep = self.meta.rep_index(s.source)
                if fresh.write_short(self.conn, t, self.sc.idx, s, urep, self.mw):
                    return self._written_fresh(tab, len(s))
                if origin is not None:
                    origin.no_fresh = True
            tab.materialize()
            return False
        if len(rows) < fresh.MIN_ROWS or not fresh.eligible(t) or (tab.origin and tab.origin.no_fresh):
            return False
        if any(x.t.side_effects for x in self.tables):  # a user's trigger may change these rows later
            return False
        has = known.contains
        for r in rows:
            rep, tick = r.change[2]
            if r.bound is None or r.change[1] or rep == own or has(rep, tick):
                return False
        idx = self._rep_indexes(rows)
        bound = [(r.bound, self._stamp_of(r, idx)) for r in rows if r.bound is not None]
        if not fresh.write(self.conn, t, self.sc.idx, bound):
            if tab.origin is not None:
                tab.origin.no_fresh = True
            return False
        for r in rows:
            r.action = APPLY
        return self._written_fresh(tab, len(rows))

    def _written_fresh(self, tab: Table, n: int) -> bool:
        self.report.received += n
        self.report.applied += n
        tab.fresh = True
        return True

    def _keys(self, t: Tracked) -> str:
        """Staging row ``x``'s key, as the key columns' types."""
        return ", ".join(_param(t, p, f"x.c{p}") for p in t.schema.key_positions)

    def _lock_and_read(self, tab: Table) -> None:
        """Lock the batch's user rows and tracking rows (in that order, the
        order writers take them in) and read the tracking state."""
        t = tab.t
        self._load(tab)
        loaded = {r.ord: r for r in tab.rows if r.ord}
        if not loaded:
            return
        user_keys = ", ".join(f"u.{q(k)}" for k in t.schema.key)
        keys = self._keys(t)
        self.conn.execute(
            f"SELECT 1 FROM {t.qualified} AS u WHERE ({user_keys}) IN (SELECT {keys} FROM {tab.staging} AS x)"
            " FOR UPDATE OF u"
        )
        tkeys = ", ".join(f"t.{k}" for k in t.kcols)
        cur = self.conn.execute(
            f"SELECT x.ord, t.lt, t.urep, t.utick, t.crep, t.ctick, t.ctime, t.del, t.scope, t.mw"
            f" FROM {tab.staging} AS x JOIN {t.tracking} AS t ON ({tkeys}) = ({keys}) FOR UPDATE OF t"
        )
        for ord_, *state in cur.fetchall():
            loaded[int(ord_)].local = tuple(state)

    def _local_version(self, local: tuple[Any, ...]) -> Version:
        lt, urep, utick, _, _, _, _, scope, _ = local
        return (self.meta.rep_rid[urep], int(utick)) if scope == self.sc.idx else (self.sc.rid, int(lt))

    def _triage(self, tab: Table) -> None:
        """The engine's rules (``rules.triage``) plus the two that need
        per-row knowledge: a local row from an unfinished session made knowing
        the incoming version makes it obsolete; a row's extra made-with
        knowledge counts like the batch's."""
        b, known, rid = self.batch, self.known, self.sc.rid
        for r in tab.rows:
            rep, tick = r.version
            if known.contains(rep, tick):
                r.action = KNOWN
            elif rep == rid:
                raise ProtocolError("batch carries a version of this replica that it never made")
            elif r.bound is None:
                r.action = FAILED
            elif r.local is None:
                r.action = APPLY
            else:
                lrep, ltick = self._local_version(r.local)
                mw = r.local[8]
                if lrep == rep:
                    r.action = APPLY if tick > ltick else KNOWN
                elif mw is not None and mw in self.partials and self.partials[mw].contains(rep, tick):
                    r.action = KNOWN
                elif b.made_with.contains(lrep, ltick) or (r.mark and b.extras[r.mark - 1].contains(lrep, ltick)):
                    r.action = APPLY
                else:
                    r.action = CONFLICT
            self.report.received += 1
            if r.action == KNOWN:
                self.report.skipped_known += 1
            elif r.action == FAILED:
                self._fail(tab.t, r, r.unfit)

    # -- conflicts ------------------------------------------------------------------
    def _local_state(self, r: Row) -> LocalState:
        assert r.local is not None
        _, _, _, crep, ctick, ctime, deleted, _, _ = r.local
        version = self._local_version(r.local)
        creation = version if ctick is None else (self.sc.rid if crep is None else self.meta.rep_rid[crep], int(ctick))
        return LocalState(version, creation, bool(deleted), int(ctime))

    def _local_row(self, t: Tracked, r: Row) -> dict[str, Value] | None:
        assert r.bound is not None
        where = " AND ".join(f"u.{q(t.schema.columns[p])} = {_param(t, p, '%s')}" for p in t.schema.key_positions)
        vals = ", ".join(read_expr(c, f"u.{q(c.spec.name)}") for c in t.columns)
        found = self.conn.execute(
            f"SELECT {vals} FROM {t.qualified} AS u WHERE {where}", [r.bound[p] for p in t.schema.key_positions]
        ).fetchone()
        return None if found is None else dict(zip(t.schema.columns, found, strict=True))

    def _remote_row(self, t: Tracked, r: Row) -> dict[str, Value] | None:
        return None if r.deleted else dict(zip(t.schema.columns, r.change[5], strict=True))

    def _made_with_record(self, r: Row) -> int:
        return self.ex_ids[r.mark - 1] if r.mark else self.mw

    def _conflict(self, t: Tracked, r: Row) -> None:
        lt, _, version, creation, ctime, _ = r.change
        loc = self._local_state(r)
        remote_row = self._remote_row(t, r)
        kind = classify(loc, remote_row is None, creation, self.batch.made_with, self.known)
        local_row = None if loc.deleted else self._local_row(t, r)
        if (loc.deleted and remote_row is None) or (not loc.deleted and _same(local_row, remote_row)):
            # Both sides hold the same content: no policy is asked, and the row
            # keeps whichever version wins by last writer (see the SQLite apply).
            wins = remote_wins_by_time(loc.time, loc.version, ctime, version)
            r.action = APPLY if wins else LEARN
            if loc.deleted:
                self.report.conflicts += 1
                self.conflicts.append(
                    Conflict(
                        self.sc.name, t.name, r.key, kind, None, None, loc.version, version, loc.time, ctime,
                        Policy.LAST_WRITER_WINS.value, Outcome.SOURCE if wins else Outcome.DESTINATION,
                        "both sides deleted the row",
                    )
                )  # fmt: skip
            return
        conflict = Conflict(
            self.sc.name, t.name, r.key, kind, local_row, remote_row, loc.version, version, loc.time, ctime,
            policy_name(self.handler),
        )  # fmt: skip
        try:
            res = resolve(self.handler, conflict)
        except Exception as exc:  # a failing user callback must not abort the session
            res = Resolution(Outcome.DEFER)
            conflict = replace(conflict, detail=f"callback raised {type(exc).__name__}: {exc}")
        self.report.conflicts += 1
        # Under last writer wins every replica picks the same winner, which
        # keeps its own version; any other policy's outcome becomes a new
        # local change made knowing both (see the SQLite apply).
        lww = self.handler is Policy.LAST_WRITER_WINS
        action = {Outcome.SOURCE: APPLY if lww else LEARN, Outcome.DESTINATION: LEARN, Outcome.DEFER: DEFER}
        both = max(loc.time, ctime)
        mw = self._made_with_record(r)
        if not lww:
            if res.outcome is Outcome.SOURCE:
                self.rewrites.append(_Rewrite("write", t, r, remote_row, both, conflict, mw))
            elif res.outcome is Outcome.DESTINATION:
                self.rewrites.append(_Rewrite("restamp", t, r, local_row, both, conflict, mw))
        if res.outcome is Outcome.MERGE:
            assert res.row is not None
            merged = {**(local_row or {}), **(remote_row or {}), **res.row}
            if set(merged) != set(t.schema.columns) or any(
                merged[k] != v for k, v in zip(t.schema.key, r.key, strict=True)
            ):
                res = Resolution(Outcome.DEFER)
                conflict = replace(conflict, detail="merged row changed the key or named unknown columns")
            else:
                self.rewrites.append(_Rewrite("merge", t, r, merged, both + 1, conflict, mw))
                action[Outcome.MERGE] = MERGE
        if res.outcome is Outcome.DEFER:
            self.report.deferred += 1
            self.excluded.append((t, r))
        self.conflicts.append(replace(conflict, outcome=res.outcome))
        r.action = action[res.outcome]
        del lt

    def _collision(self, t: Tracked, r: Row, msg: str) -> bool:
        """A row colliding with local rows of other keys on a UNIQUE index:
        the callback's outcome becomes a rewrite (``collisions.py``)."""
        d = collisions.decide(self, t, r, msg)
        if d is None:
            return False
        kind, row, time, conflict, evict = d
        self.rewrites.append(_Rewrite(kind, t, r, row, time, conflict, self._made_with_record(r), tuple(evict)))
        r.action = MERGE if kind == "merge" else LEARN
        self.report.conflicts += 1
        self.conflicts.append(conflict)
        return True

    def _fail(self, t: Tracked, r: Row, msg: str) -> None:
        _, _, version, _, ctime, _ = r.change
        r.action = FAILED
        self.excluded.append((t, r))
        self.report.failed.append(
            Conflict(
                self.sc.name, t.name, r.key, ConflictType.ERROR, None, self._remote_row(t, r), None, version, None,
                ctime, policy_name(self.handler), Outcome.FAILED, msg,
            )
        )  # fmt: skip

    # -- writes -------------------------------------------------------------------
    def _write(self) -> None:
        """Upserts parents first, then deletes children first; then stamps."""
        staged = [tab for tab in self.tables if not tab.fresh]
        groups = [(tab, False) for tab in staged] + [(tab, True) for tab in reversed(staged)]
        for tab, deletes in groups:
            rows = [r for r in tab.rows if r.action == APPLY and r.deleted == deletes]
            failed = self._write_span(tab, rows, deletes)
            # A row that failed may succeed once the rest is written (a parent
            # later in the batch): retried while that makes progress.
            while failed:
                again = [f for r, msg in failed for f in self._write_span(tab, [r], deletes)]
                if len(again) == len(failed):
                    break
                failed = again
            for r, msg in failed:
                if not (not deletes and self._collision(tab.t, r, msg)):
                    self._fail(tab.t, r, msg)
        for tab in staged:
            self._stamp(tab, [r.ord for r in tab.rows if r.action == APPLY])
        # A trigger on any table of the batch may change rows of another that it stamped before.
        effects = any(tab.t.side_effects for tab in self.tables)
        for tab in staged:
            # Rows written in another form than received become local changes (see normalized.py).
            live = [(r.ord, r.change[5], r.bound) for r in tab.rows if r.action == APPLY and not r.deleted]
            restamp_rewritten(self.conn, tab.t, tab.staging, live, _param)
            if effects:
                restamp_drifted(self.conn, tab.t, tab.staging, [r.ord for r in tab.rows if r.action == APPLY], _param)

    def _write_span(self, tab: Table, rows: list[Row], deletes: bool) -> list[tuple[Row, str]]:
        """Write ``rows`` in one statement; if that fails, each half; the rows
        that fail alone are returned with their error."""
        if not rows:
            return []
        # A table without side effects: only this statement changes its rows,
        # and _stamp writes their tracking once, instead of after the triggers.
        quiet = not tab.t.side_effects
        try:
            with savepoint(self.conn):
                if quiet:
                    self.conn.execute("SELECT set_config('peersync.applying', %s, true)", (str(tab.t.tid),))
                self._write_rows(
                    tab.t, f"(SELECT * FROM {tab.staging} WHERE ord = ANY(%s))", [[r.ord for r in rows]], deletes
                )
                if quiet:
                    self.conn.execute("SELECT set_config('peersync.applying', '', true)")
        except RETRYABLE:
            raise
        except psycopg.Error as exc:
            if len(rows) == 1:
                return [(rows[0], blame(self.conn, tab.t, rows[0].bound or [], " ".join(str(exc).split())))]
            mid = len(rows) // 2
            return self._write_span(tab, rows[:mid], deletes) + self._write_span(tab, rows[mid:], deletes)
        self.report.applied += len(rows)
        return []

    def _write_rows(self, t: Tracked, source: str, params: list[Any], deletes: bool) -> None:
        """Write the rows of ``source`` (a subquery with columns ``ord, c0..``; ``params`` its parameters)."""
        s = t.schema
        if deletes:
            user_keys = ", ".join(q(k) for k in s.key)
            self.conn.execute(
                f"DELETE FROM {t.qualified} WHERE ({user_keys}) IN (SELECT {self._keys(t)} FROM {source} AS x)",
                params,
            )
            return
        values = ", ".join(_param(t, i, f"x.c{i}") for i in range(len(t.columns)))
        others = [c for c in s.columns if c not in s.key]
        if others:
            # Only rows whose values differ are updated: an identical row fires no trigger.
            sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in others)
            differs = " OR ".join(f"u.{q(c)}::text IS DISTINCT FROM excluded.{q(c)}::text" for c in others)
            action = f"DO UPDATE SET {sets} WHERE {differs}"
        else:
            action = "DO NOTHING"
        self.conn.execute(
            f"INSERT INTO {t.qualified} AS u ({', '.join(q(c) for c in s.columns)})"
            f" SELECT {values} FROM {source} AS x ORDER BY x.ord"
            f" ON CONFLICT ({', '.join(q(k) for k in s.key)}) {action}",
            params,
        )

    def _stamp(self, tab: Table, ords: list[int]) -> None:
        """Tracking rows for written rows: a new local tick, the origin version,
        this scope, and the record of what the source made them with."""
        if not ords:
            return
        t = tab.t
        kc = ", ".join(t.kcols)
        sets = ", ".join(
            f"{c} = excluded.{c}" for c in ("lt", "urep", "utick", "crep", "ctick", "ctime", "del", "scope", "mw")
        )
        self.conn.execute(
            f"INSERT INTO {t.tracking} ({kc}, lt, urep, utick, crep, ctick, ctime, del, scope, mw)"
            f" SELECT {self._keys(t)}, nextval('{TICK}'), x.urep, x.utick, x.crep, x.ctick, x.ctime, x.del, %s, x.mw"
            f" FROM {tab.staging} AS x WHERE x.ord = ANY(%s) ORDER BY x.ord ON CONFLICT ({kc}) DO UPDATE SET {sets}",
            [self.sc.idx, ords],
        )

    def _rewrite(self, rw: _Rewrite) -> None:
        """One conflict outcome written as a local change; a failure makes it
        an error conflict and keeps the incoming version out of knowledge."""
        t, r = rw.table, rw.row
        kpos = t.schema.key_positions
        assert r.bound is not None
        key = [r.bound[p] for p in kpos]
        where = " AND ".join(f"{k} = {_param(t, p, '%s')}" for k, p in zip(t.kcols, kpos, strict=True))
        try:
            with savepoint(self.conn):
                if rw.kind == "restamp":
                    self.conn.execute(
                        f"UPDATE {t.tracking} SET lt = nextval('{TICK}'), urep = NULL, utick = NULL, scope = NULL,"
                        " crep = CASE WHEN ctick IS NULL THEN urep ELSE crep END,"
                        f" ctick = CASE WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END WHERE {where}",
                        key,
                    )
                else:
                    for k in rw.evict:  # the triggers make these deletes local changes
                        match = " AND ".join(f"{q(c)} = %s" for c in t.schema.key)
                        self.conn.execute(f"DELETE FROM {t.qualified} WHERE {match}", list(k))
                    values = r.bound if rw.values is None else [to_pg(c, rw.values[c.spec.name]) for c in t.columns]
                    types = ", ".join(f"%s::{bind_type(c)} AS c{i}" for i, c in enumerate(t.columns))
                    self._write_rows(t, f"(SELECT 1 AS ord, {types})", list(values), deletes=rw.values is None)
                value = "greatest(ctime, %s)" if rw.kind == "merge" else "%s"
                self.conn.execute(
                    f"UPDATE {t.tracking} SET ctime = {value}, mw = %s WHERE {where}", [rw.time, rw.mw, *key]
                )
            return
        except RETRYABLE:
            raise
        except (psycopg.Error, Unfit) as exc:
            detail = " ".join(str(exc).split())
        self.excluded.append((t, r))
        self.report.failed.append(replace(rw.conflict, type=ConflictType.ERROR, outcome=Outcome.FAILED, detail=detail))
