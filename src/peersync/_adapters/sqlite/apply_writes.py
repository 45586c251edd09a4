"""Writing an applied batch's rows to the user tables, set-based, with the
fallbacks a failing write needs (see :mod:`~peersync._adapters.sqlite.apply`)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from peersync._adapters.sql.meta import Meta
from peersync._engine import model
from peersync._engine.knowledge import Version
from peersync._engine.model import Conflict, ConflictType, Outcome, Value
from peersync._engine.rules import LocalState, policy_name, resolve
from peersync._engine.wire import Envelope

from .schema import PREFIX, Scope, Tracked, in_ranges, q
from .staging import APPLY_ERRORS, HEAD, MERGE, Orphans, Redo, Rewrite, Span, Staged
from .txn import TransactionLost, atomic


class WritePhase:
    """The data writes of :class:`~peersync._adapters.sqlite.apply.SetApply`
    (mixed into it): groups of rows by statement, halving a failing group,
    foreign keys checked after the writes, UNIQUE collisions sent to the
    callback, and the rows that fail for good."""

    conn: sqlite3.Connection
    meta: Meta
    sc: Scope
    env: Envelope
    handler: model.ConflictHandler
    foreign_keys: Callable[[], bool]
    redo: Redo
    applied: int
    _parents: dict[tuple[str, tuple[str | None, ...]], tuple[str, ...] | None]
    report: model.ApplyReport
    excluded: list[tuple[Tracked, tuple[Value, ...], Version, int]]
    conflicts: list[Conflict]
    rewrites: list[Rewrite]
    mw: int

    def _row(
        self, tin: Staged, r: tuple[Any, ...]
    ) -> tuple[Version, Version, dict[str, Value] | None, tuple[Value, ...]]:
        """(version, creation, values or None for a tombstone, key) of a temp-table row."""
        env, s = self.env, tin.t.schema
        ncol = len(s.columns)
        _, dlt, flags, vrep, vtick, crep, ctick, _, *rest = r
        values = rest[:ncol]
        version = (env.replicas[vrep], env.first - 1 + dlt if vtick is None else vtick)
        creation = version if ctick is None else (env.replicas[crep], ctick)
        key = tuple(values[p] for p in s.key_positions)
        row = None if flags else dict(zip(s.columns, values, strict=True))
        return version, creation, row, key

    def _local(self, t: Tracked, key: tuple[Value, ...]) -> LocalState:
        sc, rep = self.sc, self.meta.rep_rid
        nk = len(t.kcols)
        r = self.conn.execute(t.lookup_sql(1), key).fetchone()
        lt, urep, utick, crep, ctick, ctime, deleted, scope = r[nk:]
        version = (rep[urep], utick) if scope == sc.idx else (sc.rid, lt)
        creation = version if ctick is None else (sc.rid if crep is None else rep[crep], ctick)
        return LocalState(version, creation, bool(deleted), ctime)

    def _made_with_record(self, ex: int) -> int:
        """The record of what an incoming row was made with: the batch's, or
        the one for its extra made-with knowledge ``ex``."""
        if not ex:
            return self.mw
        (mw,) = self.conn.execute("SELECT id FROM temp._peersync_exid WHERE ex = ?", (ex,)).fetchone()
        return int(mw)

    def _exclude(self, t: Tracked, key: tuple[Value, ...], version: Version, lt: int) -> None:
        self.excluded.append((t, key, version, lt))

    def _write(self, ins: list[Staged]) -> list[tuple[Staged, int, str]]:
        """Stamps and rows: upserts parents first, deletes children first.

        Foreign keys are checked after all the writes (``PRAGMA
        defer_foreign_keys``, where the scope's tables have any), so the order
        of rows inside a batch does not matter and each group (a table, upserts
        or deletes) is one statement. Rows that collide on a UNIQUE index with
        another row here are found first and tried after the rest. A group
        that still fails is halved until the failing rows are isolated: a
        failing row costs a few statements, not a pass over the batch. Failed
        rows are retried after the rest while that makes progress. Rows whose
        foreign keys do not hold at the end (a parent failed, or comes in a
        later batch), and the rows of the batch that reference them, fail: the
        writes are rolled back and done again without them.
        """
        conn = self.conn
        # The pragma stays on until the transaction ends: turning it off would
        # forget the violations counted so far.
        defer = not self.redo.immediate and self.foreign_keys()
        if defer and conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1:
            conn.execute("PRAGMA defer_foreign_keys = ON")
        else:
            defer = False
        doomed: list[tuple[Staged, int, str]] = []
        by_name = {tin.t.name: tin for tin in ins}
        for (name, seq), msg in self.redo.rows.items():  # rows that ended the transaction before
            tin = by_name[name]
            if conn.execute(f"SELECT 1 FROM {tin.name} WHERE seq = ? AND action = 1", (seq,)).fetchone():
                doomed.append((tin, seq, msg))
        while True:
            for tin, seq, _ in doomed:
                tin.fresh = False
                conn.execute(f"UPDATE {tin.name} SET action = 6 WHERE seq = ?", (seq,))
            self.applied = 0
            try:
                with atomic(conn):
                    failed = self._write_all(ins)
                    orphans = self._orphans(ins) if defer else []
                    if orphans:
                        raise Orphans(orphans)
            except Orphans as exc:
                doomed += [(tin, seq, "FOREIGN KEY constraint failed") for tin, seq in self._closure(ins, exc.rows)]
                continue
            break
        self.report.applied += self.applied
        failed += doomed
        for tin, seq, _ in failed:
            conn.execute(f"UPDATE {tin.name} SET action = 6 WHERE seq = ?", (seq,))
        return failed

    def _write_all(self, ins: list[Staged]) -> list[tuple[Staged, int, str]]:
        conn = self.conn
        groups = [(tin, 0) for tin in ins] + [(tin, 1) for tin in reversed(ins)]
        pending: list[tuple[Staged, int, int]] = []
        postponed: list[tuple[Staged, int, str]] = []
        for tin, flags in groups:
            if flags and tin.short:
                continue  # short rows are live: no deletes
            if flags:
                postponed.extend(self._postpone(tin))
            collisions = None if flags else tin.collisions()
            if collisions is None and (tin.t.name, flags) not in self.redo.groups:
                # The common case, one span of the whole group: its rows are listed only if it fails.
                lo, hi, n = (
                    (1, tin.rows, tin.rows)
                    if tin.fresh
                    else conn.execute(
                        f"SELECT min(seq), max(seq), count(*) FROM {tin.name} WHERE action = 1 AND flags = ?", (flags,)
                    ).fetchone()
                )
                if n:
                    span = Span(conn, tin.name, flags, lo, hi, n)
                    pending.extend((tin, seq, flags) for _, seq, _, _ in self._write_span(tin, flags, span))
                continue
            seqs = [
                s
                for (s,) in conn.execute(
                    f"SELECT seq FROM {tin.name} WHERE action = 1 AND flags = ? ORDER BY seq", (flags,)
                )
            ]
            if not seqs:
                continue
            later: set[int] = set()
            if collisions is not None:
                later = {s for (s,) in conn.execute(collisions)}
            spans: list[list[int]] = [[]]
            for s in seqs:
                if s in later:
                    spans.append([])
                elif (tin.t.name, flags) in self.redo.groups:
                    spans.append([s])
                else:
                    spans[-1].append(s)
            failed = [seq for span in spans for _, seq, _, _ in self._write_span(tin, flags, span)]
            pending.extend((tin, seq, flags) for seq in sorted([*later, *failed]))
        # Rows that failed (or would have) are retried after the rest, while that makes progress.
        while True:
            again = [f for tin, seq, flags in pending for f in self._write_span(tin, flags, [seq])]
            if not again or len(again) == len(pending):
                break
            pending = [(tin, seq, flags) for tin, seq, flags, _ in again]
        return [(tin, seq, msg) for tin, seq, _, msg in again] + postponed

    def _write_span(self, tin: Staged, flags: int, seqs: Sequence[int]) -> list[tuple[Staged, int, int, str]]:
        """Write the group's rows ``seqs`` (consecutive in the group) in one
        statement; if that fails, each half; the rows that fail alone are
        returned with their error."""
        if not seqs:
            return []
        conn = self.conn
        try:
            with atomic(conn):
                conn.execute(tin.stamp(), {**self._params(tin, flags), "lo": seqs[0], "hi": seqs[-1]})
                tin.write(conn, flags, seqs[0], seqs[-1])
        except APPLY_ERRORS as exc:
            if len(seqs) == 1:
                return [(tin, seqs[0], flags, str(exc))]
        except TransactionLost as exc:
            # Which row ended the transaction is known only when it was alone:
            # the next attempt writes this group one row at a time.
            if isinstance(exc.cause, sqlite3.IntegrityError):
                if len(seqs) == 1:
                    self.redo.rows[(tin.t.name, seqs[0])] = str(exc)
                else:
                    self.redo.groups.add((tin.t.name, flags))
            raise
        else:
            self.applied += len(seqs)
            return []
        mid = len(seqs) // 2
        return self._write_span(tin, flags, seqs[:mid]) + self._write_span(tin, flags, seqs[mid:])

    def _parent_key(self, parent: str, to: tuple[str | None, ...]) -> tuple[str, ...] | None:
        """The parent columns a foreign key names (its primary key when it names none), or None."""
        found = self._parents.get((parent, to), ())
        if found == ():
            cols: tuple[str, ...] | None = tuple(c for c in to if c is not None)
            if None in to:
                pk = self.conn.execute(
                    "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (parent,)
                ).fetchall()
                cols = tuple(r[0] for r in pk) if len(pk) == len(to) else None
            elif not self.conn.execute("SELECT 1 FROM pragma_table_info(?)", (parent,)).fetchone():
                cols = None
            self._parents[(parent, to)] = found = cols
        return found

    def _orphans(self, ins: list[Staged]) -> list[tuple[Staged, int]]:
        """Rows of the batch that violate a foreign key after the writes:
        written rows whose parent is missing, deleted rows still referenced.
        (A violation this misses, e.g. made by a user's trigger, fails the
        COMMIT: the batch is then applied again checking each statement.)"""
        conn, out = self.conn, []
        for tin in ins:
            s = tin.t.schema
            this = " AND ".join(f"c.{q(k)} = x.{c}" for k, c in zip(s.key, tin.keys, strict=True))
            for fk in tin.t.fks:
                parent, cols, to = fk.parent, fk.columns, fk.to
                pcols = self._parent_key(parent, to)
                if pcols is None or len(pcols) != len(cols):
                    continue
                match = " AND ".join(f"p.{q(pc)} = c.{q(f)}" for f, pc in zip(cols, pcols, strict=True))
                present = " AND ".join(f"c.{q(f)} IS NOT NULL" for f in cols)
                out += self._seqs(
                    tin,
                    f"SELECT x.seq FROM {tin.name} AS x JOIN {q(s.name)} AS c ON {this}"
                    f" WHERE x.action = 1 AND x.flags = 0 AND {present}"
                    f" AND NOT EXISTS (SELECT 1 FROM {q(parent)} AS p WHERE {match})",
                )
            if not conn.execute(f"SELECT 1 FROM {tin.name} WHERE action = 1 AND flags = 1 LIMIT 1").fetchone():
                continue
            canon = {c.lower(): c for c in s.key}
            gone = " AND ".join(f"u.{q(k)} = x.{c}" for k, c in zip(s.key, tin.keys, strict=True))
            for child, rows in itertools.groupby(
                conn.execute(
                    'SELECT m.name, f.id, f."from", f."to" FROM sqlite_master AS m,'
                    " pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"
                    ' AND f."table" = ? COLLATE NOCASE ORDER BY m.name, f.id, f.seq',
                    (s.name,),
                ).fetchall(),
                key=lambda r: (r[0], r[1]),
            ):
                refs = list(rows)
                pcols = self._parent_key(s.name, tuple(r[3] for r in refs))
                if pcols is None or {c.lower() for c in pcols} != set(canon):
                    continue  # not this table's key: a tombstone carries no other values
                match = " AND ".join(
                    f"c.{q(r[2])} = x.{tin.cols[s.columns.index(canon[pc.lower()])]}"
                    for r, pc in zip(refs, pcols, strict=True)
                )
                out += self._seqs(
                    tin,
                    f"SELECT x.seq FROM {tin.name} AS x WHERE x.action = 1 AND x.flags = 1"
                    f" AND EXISTS (SELECT 1 FROM {q(child[0])} AS c WHERE {match})"
                    f" AND NOT EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {gone})",
                )
        return out

    def _seqs(self, tin: Staged, sql: str) -> list[tuple[Staged, int]]:
        """The staged rows of ``tin`` that ``sql`` selects (by ``seq``), each with ``tin``."""
        return [(tin, seq) for (seq,) in self.conn.execute(sql)]

    def _closure(self, ins: list[Staged], rows: list[tuple[Staged, int]]) -> list[tuple[Staged, int]]:
        """``rows`` and the rows of the batch that reference them through a
        foreign key, directly or not, where the parent does not exist here yet:
        once ``rows`` are left out, those would lack their parent too. One
        statement per level, each probing only the rows the last one added."""
        conn = self.conn
        pos = {id(tin): i for i, tin in enumerate(ins)}
        by_name = {tin.t.name.lower(): tin for tin in ins}
        edges = []
        for cin in ins:
            ccols = {c.lower(): c for c in cin.t.schema.columns}
            for fk in cin.t.fks:
                parent, cols, to = fk.parent, fk.columns, fk.to
                pin = by_name.get(parent.lower())
                pcols = self._parent_key(parent, to)
                if pin is None or pcols is None or len(pcols) != len(cols):
                    continue
                pnames = {c.lower(): c for c in pin.t.schema.columns}
                if not all(c.lower() in pnames for c in pcols) or not all(f.lower() in ccols for f in cols):
                    continue
                fc = [cin.cols[cin.t.schema.columns.index(ccols[f.lower()])] for f in cols]
                pc = [pin.cols[pin.t.schema.columns.index(pnames[c.lower()])] for c in pcols]
                edges.append((cin, pin, fc, pc))
        if not edges:
            return rows
        doom = f"temp.{PREFIX}doom"
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {doom[5:]} (t INTEGER, seq INTEGER, r INTEGER, PRIMARY KEY (t, seq))"
        )
        conn.execute(f"DELETE FROM {doom}")
        conn.executemany(f"INSERT OR IGNORE INTO {doom} VALUES (?, ?, 0)", [(pos[id(tin)], seq) for tin, seq in rows])
        indexes = []
        for n, (cin, _, fc, _) in enumerate(edges):
            indexes.append(f"temp.{PREFIX}doom_{n}")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {indexes[-1]} ON {cin.name[5:]} ({', '.join(fc)})")
        level = 0
        while True:
            added = 0
            for cin, pin, fc, pc in edges:
                ps = pin.t.schema
                match = " AND ".join(f"c.{f} = p.{x}" for f, x in zip(fc, pc, strict=True))
                exists = " AND ".join(f"u.{q(k)} = p.{c}" for k, c in zip(ps.key, pin.keys, strict=True))
                added += conn.execute(
                    f"INSERT OR IGNORE INTO {doom} SELECT {pos[id(cin)]}, c.seq, :next FROM {doom} AS d"
                    f" JOIN {pin.name} AS p ON p.seq = d.seq JOIN {cin.name} AS c ON {match}"
                    f" WHERE d.t = {pos[id(pin)]} AND d.r = :level AND p.flags = 0 AND c.action = 1 AND c.flags = 0"
                    f" AND NOT EXISTS (SELECT 1 FROM {q(ps.name)} AS u WHERE {exists})",
                    {"level": level, "next": level + 1},
                ).rowcount
            if not added:
                break
            level += 1
        for name in indexes:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        return [(ins[t], seq) for t, seq in conn.execute(f"SELECT t, seq FROM {doom} ORDER BY t, seq")]

    def _postpone(self, tin: Staged) -> list[tuple[Staged, int, str]]:
        """Hold back deletes of parents that children here still reference in a
        state the source already knew, where foreign keys are enforced.

        The source deleted the parent knowing those children: either it changed
        or deleted them too and that change is on its way (deleting the parent
        first would cascade onto, or be refused for, a child that should
        survive), or it holds them as orphans itself. Only a batch that is not
        the source's last can have the children's change still to come; from
        the last one on, the delete goes ahead (a cascade or SET NULL then acts
        here as it would on any local delete) unless the foreign key refuses it
        outright (NO ACTION, RESTRICT), which holding back reports more clearly
        and which a deferred key would otherwise turn into a failed COMMIT of
        the whole batch. Without enforced foreign keys nothing cascades and
        nothing is refused: an orphan is the application's business, as it is
        at the source. Held rows count as failed: the session retries them in
        its next pass."""
        conn, out = self.conn, list[tuple[Staged, int, str]]()
        if not conn.execute("PRAGMA foreign_keys").fetchone()[0]:
            return out
        for child in self.sc.tables:
            for fk in child.fks:
                if fk.parent.lower() != tin.t.name.lower():
                    continue
                if self.env.final and fk.on_delete not in ("NO ACTION", "RESTRICT"):
                    continue
                key = tin.t.schema.key
                # SQLite names are case-insensitive: match them so.
                canon = {k.lower(): k for k in key}
                pcols = tuple(canon.get((c or k).lower(), c or k) for c, k in zip(fk.to, key, strict=False))
                if len(fk.columns) != len(key) or set(pcols) != set(key):
                    continue  # a foreign key to other columns than the primary key
                where = " AND ".join(
                    f"c.{q(f)} = x.{tin.cols[tin.t.schema.columns.index(pc)]}"
                    for f, pc in zip(fk.columns, pcols, strict=True)
                )
                match = child.key_match("tc", "c")
                rep = "CASE WHEN tc.scope = :scope THEN tc.urep ELSE 0 END"
                tick = "CASE WHEN tc.scope = :scope THEN tc.utick ELSE tc.lt END"
                known = in_ranges("temp._peersync_mw", rep, tick)
                rows = conn.execute(
                    f"SELECT x.seq FROM {tin.name} AS x WHERE x.action = 1 AND x.flags = 1 AND EXISTS (SELECT 1"
                    f" FROM {q(child.name)} AS c JOIN {q(child.tracking)} AS tc ON {match} WHERE {where} AND {known})",
                    {"scope": self.sc.idx},
                ).fetchall()
                for (seq,) in rows:
                    conn.execute(f"UPDATE {tin.name} SET action = 6 WHERE seq = ?", (seq,))
                    out.append((tin, seq, f"delete held back: rows of {child.name} still reference it"))
        return out

    def _params(self, tin: Staged, flags: int) -> dict[str, int]:
        return {
            "scope": self.sc.idx,
            "flags": flags,
            "tbase": tin.tbase,
            "first0": self.env.first - 1,
            "base": tin.base,
            "mw": self.mw,
        }

    def _fail(self, tin: Staged, seq: int, msg: str, values: list[Value] | None = None) -> None:
        """Row ``seq`` failed for ``msg``: an ``error`` conflict, its version
        kept out of knowledge. ``values``: the row's values as they arrived,
        where the staged ones differ (a NaN is staged as NULL)."""
        r = self.conn.execute(f"SELECT * FROM {tin.name} WHERE seq = ?", (seq,)).fetchone()
        if values is not None:
            r = (*r[: 1 + len(HEAD)], *values, *r[1 + len(HEAD) + len(values) :])
        version, _, row, key = self._row(tin, r)
        lt, ctime = self.env.first - 1 + r[1], tin.base + r[7]
        conflict = Conflict(
            self.sc.name, tin.t.name, key, ConflictType.ERROR, None, row, None, version, None, ctime,
            policy_name(self.handler), Outcome.FAILED, msg,
        )  # fmt: skip
        if row is not None and "UNIQUE constraint failed" in msg and self._collision(tin, seq, conflict, lt):
            return
        self._exclude(tin.t, key, version, lt)
        self.report.failed.append(conflict)

    def _collision(self, tin: Staged, seq: int, conflict: Conflict, lt: int) -> bool:
        """An incoming row that collides on a UNIQUE index with local rows of
        other keys goes to a conflict callback, with the first colliding row as
        ``local_row``. ``SOURCE`` deletes the colliding local rows and keeps the
        incoming one; ``MERGE`` writes the merged row (e.g. another value in the
        UNIQUE column); both become local changes made knowing the incoming
        version. Anything else, and every built-in policy, leaves the row a
        pending error (True when resolved)."""
        t, remote = tin.t, conflict.remote_row
        if isinstance(self.handler, model.Policy) or remote is None:
            return False
        others = self._colliding(t, conflict.key, remote)
        if not others:
            return False
        loc = self._local(t, others[0][0])
        c = replace(
            conflict, local_row=others[0][1], local_version=loc.version, local_time=loc.time, outcome=None
        )  # fmt: skip
        try:
            res = resolve(self.handler, c)
        except Exception:  # a failing callback leaves the error as it is
            return False
        both = max(loc.time, conflict.remote_time)
        (ex,) = self.conn.execute(f"SELECT ex FROM {tin.name} WHERE seq = ?", (seq,)).fetchone()
        mw = self._made_with_record(ex)
        version = conflict.remote_version
        if res.outcome is Outcome.SOURCE:
            evict = tuple(k for k, _ in others)
            self.rewrites.append(Rewrite("write", t, conflict.key, remote, both, version, lt, c, mw, evict))
        elif res.outcome is Outcome.MERGE:
            assert res.row is not None
            merged = {**remote, **res.row}
            if set(merged) != set(t.schema.columns) or any(
                merged[k] != v for k, v in zip(t.schema.key, conflict.key, strict=True)
            ):
                return False
            self.rewrites.append(Rewrite("merge", t, conflict.key, merged, both + 1, version, lt, c, mw))
        else:
            return False
        self.report.conflicts += 1
        self.conflicts.append(replace(c, outcome=res.outcome))
        self.conn.execute(f"UPDATE {tin.name} SET action = ? WHERE seq = ?", (MERGE, seq))
        return True

    def _colliding(
        self, t: Tracked, key: tuple[Value, ...], row: dict[str, Value]
    ) -> list[tuple[tuple[Value, ...], dict[str, Value]]]:
        """Local rows of other keys holding ``row``'s values in a UNIQUE index."""
        s = t.schema
        out: list[tuple[tuple[Value, ...], dict[str, Value]]] = []
        itself = " AND ".join(f"{q(k)} IS ?" for k in s.key)
        for cols in t.uniques:
            if any(row[c] is None for c, _ in cols):
                continue  # NULLs never collide
            same = " AND ".join(f"{q(c)} = ? COLLATE {coll}" for c, coll in cols)
            for found in self.conn.execute(
                f"SELECT {', '.join(q(c) for c in s.columns)} FROM {q(s.name)} WHERE {same} AND NOT ({itself})",
                [*(row[c] for c, _ in cols), *key],
            ):
                other = dict(zip(s.columns, found, strict=True))
                okey = tuple(other[k] for k in s.key)
                if all(okey != k for k, _ in out):
                    out.append((okey, other))
        return out
