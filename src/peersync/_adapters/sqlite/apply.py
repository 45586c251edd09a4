"""Applying one batch to a SQLite database, set-based.

The batch's rows go, as decoded, into a temporary table per synced table
(one ``executemany``); validation, triage against knowledge, tick
assignment, tracking stamps and data writes are then a handful of SQL
statements over that table. Python touches single rows only for conflicts
and for rows that fail to apply. Everything runs inside the caller's write
transaction, so a batch and the knowledge it teaches commit together.

Actions per incoming row (column ``action``)::

    0 known (skip)   1 apply   2 conflict (pending)   3 learn only (the
    destination wins)   4 deferred   5 merged   6 failed
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

from peersync._adapters.sql.meta import Meta
from peersync._engine.errors import ProtocolError
from peersync._engine.knowledge import MAX_TICK, Knowledge, Version
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    ConflictType,
    Outcome,
    Policy,
    Value,
)
from peersync._engine.rules import LocalState, both_deleted, classify, decide, policy_name, remote_wins_by_time, resolve
from peersync._engine.schema import dependency_order
from peersync._engine.wire import Envelope

from . import schema as S
from .schema import PREFIX, Scope, Tracked, in_ranges, q
from .text import load_rows
from .txn import TransactionLost, atomic

KNOWN, APPLY, CONFLICT, LEARN, DEFER, MERGE, FAILED = range(7)
APPLY_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, sqlite3.ProgrammingError)
_BIND_ERRORS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, TypeError)
_HEAD = ("dlt", "flags", "vrep", "vtick", "crep", "ctick", "dtime")


class _In:
    """The temporary table holding one synced table's incoming rows."""

    def __init__(self, t: Tracked, n: int, base: int) -> None:
        self.t, self.base = t, base
        self.tbase = 0
        # Named by position and width: one connection may apply tables of
        # other widths at the same position (another scope, a new definition).
        self.name = f"temp._peersync_in_{n}_{len(t.schema.columns)}"
        s = t.schema
        self.cols = [f"c{i}" for i in range(len(s.columns))]
        self.keys = [self.cols[p] for p in s.key_positions]
        self.nonkeys = [c for i, c in enumerate(self.cols) if i not in s.key_positions]
        # Every row in the short form: live, the source's own version and
        # creation, no extra knowledge (set by the load).
        self.short = False

    def create(self) -> str:
        # A short row (``_wire``) binds only its tick and time offsets and its
        # values: the header columns' defaults say what its form means.
        head = "dlt, flags INTEGER DEFAULT 0, vrep INTEGER DEFAULT 0, vtick, crep, ctick, dtime"
        body = f"seq INTEGER PRIMARY KEY, {head}, {', '.join(self.cols)}, action, ex INTEGER NOT NULL DEFAULT 0"
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.name[5:]} ({body})"

    def insert(self, short: bool, unseen: bool = False) -> str:
        """Load rows of either form; ``unseen``: short rows of versions the
        destination knows none of, marked applied until :meth:`seen` says otherwise."""
        cols = ["dlt", "dtime", *self.cols] if short else [*_HEAD, *self.cols]
        marks = ", action" if unseen else ""
        return (
            f"INSERT INTO {self.name} ({', '.join(cols)}{marks})"
            f" VALUES ({', '.join('?' * len(cols))}{f', {APPLY}' if unseen else ''})"
        )

    def invalid(self) -> str:
        """Rows with a bad header, time or tombstone (all short: their offsets alone)."""
        time = f"typeof(dtime) = 'integer' AND typeof(:base + dtime) = 'integer' AND abs(:base + dtime) < {MAX_TICK}"
        ticks = "typeof(dlt) = 'integer' AND dlt >= 1 AND dlt <= :span"
        if self.short:
            return f"SELECT count(*) FROM {self.name} WHERE NOT ({ticks} AND {time})"
        tomb = " AND ".join(f"{c} IS NULL" for c in self.nonkeys) or "1"
        return (
            f"SELECT count(*) FROM {self.name} WHERE NOT ({ticks}"
            " AND typeof(flags) = 'integer' AND flags >= 0 AND (flags >> 1) <= :nex"
            " AND typeof(vrep) = 'integer' AND vrep >= 0 AND vrep < :nrep"
            " AND ((vtick IS NULL AND vrep = 0) OR (typeof(vtick) = 'integer' AND vtick >= 1))"
            " AND ((crep IS NULL AND ctick IS NULL) OR (typeof(crep) = 'integer' AND crep >= 0 AND crep < :nrep"
            "      AND typeof(ctick) = 'integer' AND ctick >= 1))"
            f" AND {time} AND ((flags & 1) = 0 OR ({tomb})))"
        )

    def unknown_to_source(self) -> str:
        """Rows whose version the source's own knowledge lacks: forged. (A row
        without a version tick has the source's own tick in the batch's range,
        which ``apply`` checked against that knowledge.)"""
        known = in_ranges("temp._peersync_mwb", "y.vrep", "y.vtick")
        extra = in_ranges("temp._peersync_mwxb", "y.vrep", "y.vtick", where="r.ex = y.ex AND ")
        return (
            f"SELECT count(*) FROM {self.name} AS y"
            f" WHERE y.vtick IS NOT NULL AND NOT {known} AND NOT (y.ex > 0 AND {extra})"
        )

    def unordered(self) -> str:
        return f"SELECT count(*) FROM {self.name} AS a JOIN {self.name} AS b ON b.seq = a.seq + 1 WHERE b.dlt <= a.dlt"

    def drifted(self) -> str:
        """Rows written from this batch that something changed afterwards in the
        same transaction (a trigger of this database, a cascade): (seq, gone)."""
        s = self.t.schema
        match = " AND ".join(f"u.{q(k)} = x.{c}" for k, c in zip(s.key, self.keys, strict=True))
        # Without affinity a value keeps its storage class: 1 and 1.0 differ.
        same = " AND ".join(
            f"u.{q(col)} IS x.{c} COLLATE BINARY" + (f" AND typeof(u.{q(col)}) = typeof(x.{c})" if k == "blob" else "")
            for col, c, k in zip(s.columns, self.cols, s.types, strict=True)
        )
        present = f"u.{q(s.key[0])} IS NOT NULL"
        return (
            f"SELECT x.seq, NOT {present} FROM {self.name} AS x LEFT JOIN {q(s.name)} AS u ON {match}"
            f" WHERE x.action = 1 AND CASE WHEN x.flags = 0 THEN NOT {present} OR NOT ({same}) ELSE {present} END"
        )

    def seen(self) -> str:
        """Of rows loaded as applied (:meth:`insert` ``unseen``), leave to
        :meth:`triage` those that have a tracking row here. The rest, never
        seen here and with versions this replica knows none of, the rules
        apply as they are."""
        t = self.t
        match = " AND ".join(f"t.{k} = i.{c}" for k, c in zip(t.kcols, self.keys, strict=True))
        return (
            f"UPDATE {self.name} AS i SET action = NULL WHERE EXISTS (SELECT 1 FROM {q(t.tracking)} AS t WHERE {match})"
        )

    def triage(self) -> str:
        """Decide every row not decided yet (see the module docstring)."""
        t = self.t
        match = " AND ".join(f"t.{k} = i.{c}" for k, c in zip(t.kcols, self.keys, strict=True))
        vt = "COALESCE(x.vtick, :first0 + x.dlt)"
        return (
            f"UPDATE {self.name} AS x SET action = CASE"
            f" WHEN {in_ranges('temp._peersync_kd', 'x.vrep', vt)} THEN 0"
            " WHEN j.tlt IS NULL THEN 1"
            f" WHEN j.lrep = (SELECT COALESCE(r.l, 0) FROM temp._peersync_rmap AS r WHERE r.b = x.vrep)"
            f" THEN CASE WHEN {vt} > j.ltick THEN 1 ELSE 0 END"
            # The local row came in a session not yet completed here, made
            # knowing the incoming version: the incoming one is obsolete.
            f" WHEN j.mw IS NOT NULL AND {in_ranges('temp._peersync_lmw', 'x.vrep', vt, where='r.id = j.mw AND ')}"
            " THEN 0"
            f" WHEN {in_ranges('temp._peersync_mw', 'j.lrep', 'j.ltick')} THEN 1"
            f" WHEN x.ex > 0 AND {in_ranges('temp._peersync_mwx', 'j.lrep', 'j.ltick', where='r.ex = x.ex AND ')}"
            " THEN 1"
            " ELSE 2 END"
            " FROM (SELECT i.seq AS s, t.lt AS tlt, t.mw AS mw,"
            " CASE WHEN t.scope = :scope THEN t.urep ELSE 0 END AS lrep,"
            " CASE WHEN t.scope = :scope THEN t.utick ELSE t.lt END AS ltick"
            f" FROM {self.name} AS i LEFT JOIN {q(t.tracking)} AS t ON {match} WHERE i.action IS NULL) AS j"
            " WHERE x.seq = j.s"
        )

    def release_pending(self) -> str:
        """Forget pending changes of rows this batch wrote or resolved whose
        version the row now holds or beats: the incoming version itself, or
        one the source knew when it sent its row (made-with knowledge)."""
        t = self.t
        match = " AND ".join(
            f"p.{k} = x.{c}{t.kcoll(i)}" for i, (k, c) in enumerate(zip(t.kcols, self.keys, strict=True))
        )
        same = "m.l = p.vrep AND COALESCE(x.vtick, :first0 + x.dlt) = p.vtick"
        made = in_ranges("temp._peersync_mw", "p.vrep", "p.vtick")
        extra = in_ranges("temp._peersync_mwx", "p.vrep", "p.vtick", where="r.ex = x.ex AND ")
        return (
            f"DELETE FROM {S.PENDING} AS p WHERE p.scope = :scope AND p.tbl = {t.tid} AND EXISTS (SELECT 1"
            f" FROM {self.name} AS x JOIN temp._peersync_rmap AS m ON m.b = x.vrep"
            f" WHERE x.action IN (1, 3, 5) AND {match}"
            f" AND (({same}) OR {made} OR (x.ex > 0 AND {extra})))"
        )

    def stamp(self) -> str:
        """Tracking rows for the rows to write with seq in ``[:lo, :hi]``."""
        t = self.t
        names = [*t.kcols, *S.TRACKING_COLUMNS]
        sets = ", ".join([*t.key_case_sets(), *(f"{c} = excluded.{c}" for c in S.TRACKING_COLUMNS)])
        keys = ", ".join(f"x.{c}" for c in self.keys)
        return (
            f"INSERT INTO {q(t.tracking)} ({', '.join(names)})"
            f" SELECT {keys}, :tbase + x.seq, rv.l, COALESCE(x.vtick, :first0 + x.dlt),"
            " CASE WHEN x.ctick IS NULL THEN NULL ELSE rc.l END, x.ctick, :base + x.dtime, x.flags, :scope,"
            " CASE WHEN x.ex = 0 THEN :mw ELSE (SELECT e.id FROM temp._peersync_exid AS e WHERE e.ex = x.ex) END"
            f" FROM {self.name} AS x JOIN temp._peersync_rmap AS rv ON rv.b = x.vrep"
            " LEFT JOIN temp._peersync_rmap AS rc ON rc.b = x.crep"
            " WHERE x.action = 1 AND x.flags = :flags AND x.seq BETWEEN :lo AND :hi ORDER BY x.seq"
            f" ON CONFLICT ({', '.join(t.kcols)}) DO UPDATE SET {sets}"
        )

    def write(self, conn: sqlite3.Connection, flags: int, lo: int, hi: int) -> None:
        """Write the rows to apply with seq in ``[lo, hi]``: deletes, or
        updates that set only the columns whose values change, then inserts.

        Columns that keep their value are not touched and an identical row is
        not written at all, so ``UPDATE OF column`` triggers and triggers that
        compare OLD and NEW see only real changes (a trigger that stamps
        ``updated_at`` would otherwise make two peers send a row back and
        forth for ever)."""
        params = {"lo": lo, "hi": hi}
        if flags:
            conn.execute(self.delete(), params)
            return
        mask = self.changed_mask()
        for (m,) in conn.execute(
            f"SELECT DISTINCT {mask} FROM {self.name} AS x JOIN {q(self.t.name)} AS u ON {self.user_match()}"
            f" WHERE {self.to_write()}",
            params,
        ).fetchall():
            if "1" in m:
                conn.execute(self.narrow_update(m), {**params, "mask": m})
        conn.execute(self.upsert(), params)

    def to_write(self) -> str:
        return "x.action = 1 AND x.flags = 0 AND x.seq BETWEEN :lo AND :hi"

    def user_match(self) -> str:
        s = self.t.schema
        return " AND ".join(f"u.{q(k)} = x.{c}" for k, c in zip(s.key, self.keys, strict=True))

    def _writable(self) -> list[tuple[str, str]]:
        """(user column, temp column) pairs an update may set: every non-key
        column, and key columns whose collation lets their letter case change."""
        s, t = self.t.schema, self.t
        cased = {k for i, k in enumerate(s.key) if t.kcoll(i)}
        return [(col, c) for col, c in zip(s.columns, self.cols, strict=True) if col not in s.key or col in cased]

    def changed_mask(self) -> str:
        """One character per writable column, '1' where the incoming value
        differs from the row's (by bytes, or by storage type: 1 vs 1.0)."""
        parts = [
            f"(u.{q(col)} IS NOT x.{c} COLLATE BINARY OR typeof(u.{q(col)}) != typeof(x.{c}))"
            for col, c in self._writable()
        ]
        return " || ".join(f"CAST({p} AS TEXT)" for p in parts) if parts else "''"

    def narrow_update(self, mask: str) -> str:
        sets = ", ".join(
            f"{q(col)} = x.{c}" for (col, c), bit in zip(self._writable(), mask, strict=True) if bit == "1"
        )
        return (
            f"UPDATE {q(self.t.name)} AS u SET {sets} FROM {self.name} AS x"
            f" WHERE {self.to_write()} AND {self.user_match()} AND {self.changed_mask()} = :mask"
        )

    def upsert(self) -> str:
        """Insert the rows that are new here; rows that exist were brought up
        to date by :meth:`narrow_update` (one a side effect changed since is
        overwritten whole, as before)."""
        s = self.t.schema
        writable = self._writable()
        sets = ", ".join(f"{q(col)} = excluded.{q(col)}" for col, _ in writable)
        differs = " OR ".join(
            f"{q(col)} IS NOT excluded.{q(col)} COLLATE BINARY OR typeof({q(col)}) != typeof(excluded.{q(col)})"
            for col, _ in writable
        )
        action = f"DO UPDATE SET {sets} WHERE {differs}" if writable else "DO NOTHING"
        return (
            f"INSERT INTO {q(s.name)} ({', '.join(q(c) for c in s.columns)})"
            f" SELECT {', '.join(self.cols)} FROM {self.name}"
            " WHERE action = 1 AND flags = 0 AND seq BETWEEN :lo AND :hi ORDER BY seq"
            f" ON CONFLICT ({', '.join(q(k) for k in s.key)}) {action}"
        )

    def collisions(self) -> str | None:
        """Rows to upsert that collide on a UNIQUE index with another row here:
        they are tried after the rest, one at a time (the other row may be
        changed or deleted by this batch), instead of failing their group."""
        s = self.t.schema
        uniques = [cols for cols in self.t.uniques if all(c in s.columns for c, _ in cols)]
        if not uniques:
            return None
        other = " OR ".join(f"u.{q(k)} IS NOT x.{c}" for k, c in zip(s.key, self.keys, strict=True))
        probes = " OR ".join(
            f"EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE "
            + " AND ".join(f"u.{q(c)} = x.{self.cols[s.columns.index(c)]} COLLATE {coll}" for c, coll in cols)
            + f" AND ({other}))"
            for cols in uniques
        )
        return f"SELECT seq FROM {self.name} AS x WHERE action = 1 AND flags = 0 AND ({probes}) ORDER BY seq"

    def delete(self) -> str:
        s = self.t.schema
        return (
            f"DELETE FROM {q(s.name)} WHERE ({', '.join(q(k) for k in s.key)}) IN"
            f" (SELECT {', '.join(self.keys)} FROM {self.name}"
            " WHERE action = 1 AND flags = 1 AND seq BETWEEN :lo AND :hi)"
        )


@dataclass(frozen=True)
class _Rewrite:
    kind: str  # "write" (a row, or a delete when row is None), "merge" or "restamp"
    table: Tracked
    key: tuple[Value, ...]
    row: dict[str, Value] | None
    time: int  # the new local version's change time (at least this, for a merge)
    version: Version
    lt: int
    conflict: Conflict
    mw: int  # the record of what the incoming version was made with
    evict: tuple[tuple[Value, ...], ...] = ()  # keys of local rows to delete first (UNIQUE collisions)


@dataclass
class Redo:
    """What earlier attempts at applying one batch learned about writes that
    ended the whole transaction (a trigger's ``RAISE(ROLLBACK)``, a constraint
    ``ON CONFLICT ROLLBACK``). The batch is applied again from the start,
    without them: each attempt learns at least one more thing, so the attempts
    end."""

    rows: dict[tuple[str, int], str] = field(default_factory=dict)  # (table, seq) -> error: fail them
    groups: set[tuple[str, int]] = field(default_factory=set)  # (table, flags): write one row at a time
    rewrites: dict[tuple[str, tuple[Value, ...]], str] = field(default_factory=dict)  # conflict outcomes
    # Foreign keys checked statement by statement: checking them after the
    # writes missed a violation (a user's trigger) and the COMMIT failed.
    immediate: bool = False

    def size(self) -> int:
        return len(self.rows) + len(self.groups) + len(self.rewrites) + self.immediate


class _Span(Sequence[int]):
    """The seqs of a group's rows to write, ``lo`` to ``hi`` (``n`` of them),
    read from the temporary table only when indexed past its ends or sliced
    (a failed write halves its span)."""

    def __init__(self, conn: sqlite3.Connection, table: str, flags: int, lo: int, hi: int, n: int) -> None:
        self.conn, self.table, self.flags, self.lo, self.hi, self.n = conn, table, flags, lo, hi, n
        self._seqs: list[int] | None = None

    def __len__(self) -> int:
        return self.n

    def _list(self) -> list[int]:
        if self._seqs is None:
            self._seqs = [
                s
                for (s,) in self.conn.execute(
                    f"SELECT seq FROM {self.table} WHERE action = 1 AND flags = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                    (self.flags, self.lo, self.hi),
                )
            ]
        return self._seqs

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...
    def __getitem__(self, i: int | slice) -> int | list[int]:
        if i == 0:
            return self.lo
        if i == -1 or i == self.n - 1:
            return self.hi
        return self._list()[i]


class _Orphans(Exception):
    """Rows of the batch whose foreign keys do not hold after the writes."""

    def __init__(self, rows: list[tuple[_In, int]]) -> None:
        super().__init__(f"{len(rows)} row(s) violate a foreign key")
        self.rows = rows


def _same(local: dict[str, Value] | None, remote: dict[str, Value] | None) -> bool:
    return (
        local is not None
        and remote is not None
        and all(type(local[c]) is type(remote[c]) and local[c] == remote[c] for c in local)
    )


def _sort_key(v: object) -> int:
    return v if type(v) is int else 0


class SetApply:
    """One batch applied inside the caller's write transaction."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        meta: Meta,
        sc: Scope,
        env: Envelope,
        handler: ConflictHandler,
        foreign_keys: Callable[[], bool],
        redo: Redo | None = None,
    ) -> None:
        """``conn`` has the write transaction open, ``meta`` works on it;
        ``foreign_keys()`` says whether a foreign key touches the scope's
        tables (asked only when a write needs to know)."""
        self.meta, self.conn, self.sc, self.env, self.handler = meta, conn, sc, env, handler
        self.foreign_keys = foreign_keys
        self.redo = redo if redo is not None else Redo()
        self.applied = 0  # rows written by the current attempt at the write phase
        self._parents: dict[tuple[str, tuple[str | None, ...]], tuple[str, ...] | None] = {}
        self.report = ApplyReport(last=env.last, final=env.final, made_with=env.made_with)
        # Changes kept out of knowledge: (table, key, version, source tick).
        self.excluded: list[tuple[Tracked, tuple[Value, ...], Version, int]] = []
        self.conflicts: list[Conflict] = []
        # Conflict outcomes written after the batch's rows, as local changes:
        # (kind, table, key, row or None for a delete, change time to keep, version, source tick, conflict)
        self.rewrites: list[_Rewrite] = []
        self.mw = 0  # the record of the source's knowledge that applied rows point to

    def run(self) -> ApplyReport:
        sc, env = self.sc, self.env
        self.meta.load_replicas()
        stored, _ = self.meta.stored_knowledge(sc.name)
        tick = S.clock(self.conn)
        self.known = stored.add_range(sc.rid, 1, tick)
        # Short rows carry versions of the source in first..last only: does this replica know none of them?
        self.unseen = not any(lo <= env.last and hi >= env.first for lo, hi in self.known.ranges(env.source))
        # Parents before children; otherwise in the source's tick order, so
        # rows a user's trigger derived from others come after them.
        index = {t.name: i for i, t in enumerate(sc.tables)}
        first = {
            name: rows[0][0] if rows and isinstance(rows[0], list) and rows[0] else 0 for name, _, rows in env.tables
        }
        by_tick = sorted((sc.tables[index[name]] for name, _, _ in env.tables), key=lambda t: _sort_key(first[t.name]))
        tables = {name: (base, rows) for name, base, rows in env.tables}
        present = [(index[t.name], *tables[t.name]) for t in dependency_order(by_tick)]
        if any(rows for _, _, rows in present):
            self._maps()
        ins: list[_In] = []
        for i, base, rows in present:
            if not rows:
                continue
            tin = _In(sc.tables[i], i, base)
            self._load(tin, rows)
            ins.append(tin)
        learned = Knowledge.empty()
        if env.last >= env.first:
            learned = learned.add_range(env.source, env.first, env.last)
        if ins:
            learned = learned | self._apply(ins, tick)
        for rw in self.rewrites:
            self._rewrite(rw)
        excluded = self._keep_pending()
        new = self.meta.save_knowledge(sc, stored.union(learned.exclude(excluded)))
        if self.conflicts:
            self.meta.insert_conflicts(self.conflicts)
        tick = S.clock(self.conn)
        self.report.excluded = excluded
        self.report.knowledge = new.add_range(sc.rid, 1, tick)
        return self.report

    # -- loading and validation --------------------------------------------------------
    def _maps(self) -> None:
        """Temp tables translating replica ids: batch index -> local index,
        and the destination's knowledge and the source's made-with knowledge."""
        conn, sc, env = self.conn, self.sc, self.env
        ranges = "rep INTEGER, lo INTEGER, hi INTEGER"
        tables = {
            "rmap": "b INTEGER PRIMARY KEY, l INTEGER, own INTEGER",
            **{n: f"{ranges}, PRIMARY KEY (rep, lo)" for n in ("kd", "mw", "mwb")},
            **{n: f"ex INTEGER, {ranges}, PRIMARY KEY (ex, rep, lo)" for n in ("mwx", "mwxb")},
            "exid": "ex INTEGER PRIMARY KEY, id INTEGER",
            "lmw": f"id INTEGER, {ranges}, PRIMARY KEY (id, rep, lo)",
        }
        for name, columns in tables.items():
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {PREFIX}{name} ({columns})")
            conn.execute(f"DELETE FROM temp.{PREFIX}{name}")
        rmap: list[tuple[int, int | None, int]] = []
        kd: list[tuple[int, int, int]] = []
        mwb: list[tuple[int, int, int]] = []
        for b, rid in enumerate(env.replicas):
            own = rid == sc.rid
            rmap.append((b, None if own else self.meta.rep_index(rid), 1 if own else 0))
            kd.extend((b, lo, hi + 1) for lo, hi in self.known.ranges(rid))
            mwb.extend((b, lo, hi + 1) for lo, hi in env.made_with.ranges(rid))
        conn.executemany("INSERT INTO temp._peersync_rmap VALUES (?, ?, ?)", rmap)
        conn.executemany("INSERT OR IGNORE INTO temp._peersync_kd VALUES (?, ?, ?)", kd)
        conn.executemany("INSERT OR IGNORE INTO temp._peersync_mwb VALUES (?, ?, ?)", mwb)
        mw: list[tuple[int, int, int]] = []
        for rid in env.made_with.replicas():
            local = 0 if rid == sc.rid else self.meta.rep_idx.get(rid)
            if local is not None:
                mw.extend((local, lo, hi + 1) for lo, hi in env.made_with.ranges(rid))
        conn.executemany("INSERT OR IGNORE INTO temp._peersync_mw VALUES (?, ?, ?)", mw)
        # What local rows from unfinished sessions were made with, in batch indexes.
        for mw_id, blob in conn.execute(f"SELECT id, knowledge FROM {PREFIX}partial").fetchall():
            record = Knowledge.from_bytes(blob)
            conn.executemany(
                "INSERT OR IGNORE INTO temp._peersync_lmw VALUES (?, ?, ?, ?)",
                [(mw_id, b, lo, hi + 1) for b, rid in enumerate(env.replicas) for lo, hi in record.ranges(rid)],
            )
        # Rows made with more than ``made_with`` (see ``_wire``): that knowledge
        # in local and in batch replica indexes, and the record each row points to.
        self.mw = self.meta.partial_id(sc.name, env.made_with)
        for ex, extra in enumerate(env.extras, start=1):
            for rid in extra.replicas():
                local = 0 if rid == sc.rid else self.meta.rep_idx.get(rid)
                if local is not None:
                    conn.executemany(
                        "INSERT OR IGNORE INTO temp._peersync_mwx VALUES (?, ?, ?, ?)",
                        [(ex, local, lo, hi + 1) for lo, hi in extra.ranges(rid)],
                    )
            for b, rid in enumerate(env.replicas):
                conn.executemany(
                    "INSERT OR IGNORE INTO temp._peersync_mwxb VALUES (?, ?, ?, ?)",
                    [(ex, b, lo, hi + 1) for lo, hi in extra.ranges(rid)],
                )
            conn.execute(
                "INSERT INTO temp._peersync_exid VALUES (?, ?)",
                (ex, self.meta.partial_id(sc.name, env.made_with | extra)),
            )

    def _load(self, tin: _In, rows: list[Any]) -> None:
        conn, env = self.conn, self.env
        conn.execute(tin.create())
        conn.execute(f"DELETE FROM {tin.name}")
        ncols = len(tin.cols)
        if set(map(type, rows)) != {list}:
            raise ProtocolError(f"malformed batch rows for {tin.t.name!r}: a row is not an array")
        lengths = set(map(len, rows))
        if not lengths <= {2 + ncols, 7 + ncols}:
            raise ProtocolError(f"malformed batch: a row of {tin.t.name!r} does not have {ncols} values")
        tin.short = lengths == {2 + ncols}
        if not tin.short:  # one statement loads them all, in order: spell short rows out
            rows = [r if len(r) > 2 + ncols else [r[0], 0, 0, None, None, None, *r[1:]] for r in rows]
        insert = tin.insert(tin.short, tin.short and self.unseen)
        try:
            conn.executemany(insert, rows)
        except _BIND_ERRORS as exc:
            try:  # TEXT that is not UTF-8 (RawText): loaded as bytes, then cast back to TEXT
                loaded = load_rows(conn, tin.name, insert, rows, 2 if tin.short else len(_HEAD))
            except _BIND_ERRORS:
                loaded = False
            if not loaded:
                raise ProtocolError(f"malformed batch rows for {tin.t.name!r}: {exc}") from exc
        span = env.last - env.first + 1
        (bad,) = conn.execute(
            tin.invalid(), {"nrep": len(env.replicas), "span": span, "nex": len(env.extras), "base": tin.base}
        ).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: {bad} invalid row(s) for {tin.t.name!r}")
        (bad,) = conn.execute(tin.unordered()).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: ticks of {tin.t.name!r} out of order")
        if tin.short:
            # Each row's version is a tick of the source in first..last, which
            # the source's knowledge holds (``apply`` checked): nothing to vouch for.
            return
        conn.execute(f"UPDATE {tin.name} SET ex = flags >> 1, flags = flags & 1 WHERE flags > 1")
        (bad,) = conn.execute(tin.unknown_to_source()).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: {bad} row(s) of {tin.t.name!r} carry versions the source never knew")

    # -- triage, conflicts and writes --------------------------------------------------------
    def _apply(self, ins: list[_In], tick: int) -> Knowledge:
        conn, sc, report, env = self.conn, self.sc, self.report, self.env
        first0 = env.first - 1
        for tin in ins:
            if tin.short and self.unseen:
                conn.execute(tin.seen())
            conn.execute(tin.triage(), {"scope": sc.idx, "first0": first0})
            # (Short rows carry the source's versions, and the source is not this replica.)
            forged = (
                not tin.short
                and conn.execute(
                    f"SELECT 1 FROM {tin.name} AS x JOIN temp._peersync_rmap AS r ON r.b = x.vrep"
                    " WHERE r.own = 1 AND x.action != 0 LIMIT 1"
                ).fetchone()
            )
            if forged:
                raise ProtocolError("batch carries a version of this replica that it never made")
            received, known, conflicts = conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE action = {KNOWN}),"
                f" count(*) FILTER (WHERE action = {CONFLICT}) FROM {tin.name}"
            ).fetchone()
            report.received += received
            report.skipped_known += known
            if conflicts:
                for r in conn.execute(f"SELECT * FROM {tin.name} WHERE action = 2 ORDER BY seq").fetchall():
                    self._conflict(tin, r)
        # New local ticks: tick + offset + seq, unique across the batch's tables;
        # rows not written leave unused ticks, which is harmless.
        total = 0
        for tin in ins:
            tin.tbase = tick + total
            (n,) = conn.execute(f"SELECT max(seq) FROM {tin.name}").fetchone()
            total += n or 0
        if total:
            # Log entries for every row about to be written, before any write:
            # triggers fired by side effects then take ticks above them all.
            for tin in ins:
                kc = ", ".join(tin.t.kcols)
                conn.execute(
                    f"INSERT INTO {S.LOG} (lt, tbl, {kc}) SELECT :tbase + seq, {tin.t.tid}, {', '.join(tin.keys)}"
                    f" FROM {tin.name} WHERE action = 1 ORDER BY seq",
                    {"tbase": tin.tbase},
                )
            self.meta.record_applied(self.sc.name, tick + 1, S.clock(self.conn), self.env.made_with)
            conn.execute(f"UPDATE {PREFIX}clock SET floor = ? WHERE id = 0", (tick,))
            failed = self._write(ins)
            conn.execute(f"UPDATE {PREFIX}clock SET floor = NULL WHERE id = 0")
            # The triggers skipped the rows this batch wrote; whatever changed
            # them afterwards must still become a local change, and rows they
            # evicted through a UNIQUE index ... ON CONFLICT REPLACE tombstones.
            for tin in ins:
                for st in tin.t.evictions_sql():
                    conn.execute(st)
                if not self.sc.side_effects:
                    continue
                for seq, gone in conn.execute(tin.drifted()).fetchall():
                    key = self._row(tin, conn.execute(f"SELECT * FROM {tin.name} WHERE seq = ?", (seq,)).fetchone())[3]
                    log, stamp = tin.t.restamp_sql(drift=True)
                    conn.execute(log, key)
                    conn.execute(stamp, (int(gone), *key))
            for tin, seq, msg in failed:
                self._fail(tin, seq, msg)
        if conn.execute(f"SELECT 1 FROM {S.PENDING} WHERE scope = ? LIMIT 1", (sc.idx,)).fetchone():
            for tin in ins:
                conn.execute(tin.release_pending(), {"scope": sc.idx, "first0": first0})
        learned = Knowledge.empty()
        for tin in ins:
            if tin.short:
                continue  # no row names its version tick: the caller learns first..last
            for b, lo, hi in conn.execute(
                "SELECT vrep, min(v), max(v) FROM (SELECT vrep, vtick AS v,"
                " vtick - row_number() OVER (PARTITION BY vrep ORDER BY vtick) AS g"
                f" FROM {tin.name} WHERE action IN (1, 3, 5) AND vtick IS NOT NULL) GROUP BY vrep, g"
            ):
                learned = learned.add_range(self.env.replicas[b], lo, hi)
        return learned

    def _row(self, tin: _In, r: tuple[Any, ...]) -> tuple[Version, Version, dict[str, Value] | None, tuple[Value, ...]]:
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

    def _conflict(self, tin: _In, r: tuple[Any, ...]) -> None:
        t, seq = tin.t, r[0]
        version, creation, remote_row, key = self._row(tin, r)
        lt, ctime = self.env.first - 1 + r[1], tin.base + r[7]
        loc = self._local(t, key)
        kind = classify(loc, remote_row is None, creation, self.env.made_with, self.known)
        local_row = None
        if not loc.deleted:
            row = self.conn.execute(t.select_row_sql, key).fetchone()
            local_row = None if row is None else dict(zip(t.schema.columns, row, strict=True))
        if (loc.deleted and remote_row is None) or (not loc.deleted and _same(local_row, remote_row)):
            # Both sides hold the same state (identical rows, or two tombstones):
            # any policy gives this content, so no policy is asked. The row must
            # still hold or beat every version its replica will claim to know:
            # keep whichever version wins by last writer, taking the incoming
            # one when it wins (its stamp; the data write then changes nothing).
            # Keeping the older one while learning the newer would let a third
            # version with a time between the two win here and nowhere else.
            wins = remote_wins_by_time(loc.time, loc.version, ctime, version)
            self.conn.execute(f"UPDATE {tin.name} SET action = ? WHERE seq = ?", (APPLY if wins else LEARN, seq))
            if loc.deleted:
                self.report.conflicts += 1
                self.conflicts.append(both_deleted(self.sc.name, t.name, key, loc, version, ctime, wins))
            return
        conflict = Conflict(
            self.sc.name, t.name, key, kind, local_row, remote_row, loc.version, version, loc.time, ctime,
            policy_name(self.handler),
        )  # fmt: skip
        d = decide(self.handler, conflict, t.schema.columns, t.schema.key)
        self.report.conflicts += 1
        # Under last-writer-wins every replica that meets these two versions picks
        # the same one (change times follow causality), so the winner keeps its
        # own version. Any other policy may decide differently elsewhere: then
        # whatever wins becomes a new local change (the two sides differ: equal
        # ones returned above), a version made knowing both, so the decision reaches every
        # replica, including those that already know both old versions. Its
        # change time is the later of the two: a change made on top of both.
        lww = self.handler is Policy.LAST_WRITER_WINS
        action = {
            Outcome.SOURCE: APPLY if lww else LEARN,
            Outcome.DESTINATION: LEARN,
            Outcome.DEFER: DEFER,
            Outcome.MERGE: MERGE,
        }
        both = max(loc.time, ctime)
        mw = self._made_with_record(r[-1])
        logged = d.conflict
        if not lww:
            if d.outcome is Outcome.SOURCE:
                self.rewrites.append(_Rewrite("write", t, key, remote_row, both, version, lt, logged, mw))
            elif d.outcome is Outcome.DESTINATION:
                self.rewrites.append(_Rewrite("restamp", t, key, local_row, both, version, lt, logged, mw))
        if d.merged is not None:
            self.rewrites.append(_Rewrite("merge", t, key, d.merged, both + 1, version, lt, logged, mw))
        if d.outcome is Outcome.DEFER:
            self.report.deferred += 1
            self._exclude(t, key, version, lt)
        self.conflicts.append(logged)
        self.conn.execute(f"UPDATE {tin.name} SET action = ? WHERE seq = ?", (action[d.outcome], seq))

    def _made_with_record(self, ex: int) -> int:
        """The record of what an incoming row was made with: the batch's, or
        the one for its extra made-with knowledge ``ex``."""
        if not ex:
            return self.mw
        (mw,) = self.conn.execute("SELECT id FROM temp._peersync_exid WHERE ex = ?", (ex,)).fetchone()
        return int(mw)

    def _exclude(self, t: Tracked, key: tuple[Value, ...], version: Version, lt: int) -> None:
        self.excluded.append((t, key, version, lt))

    def _keep_pending(self) -> Knowledge:
        """Record this batch's excluded changes as pending (they stay out of
        knowledge across sessions until their rows apply); returns them."""
        source = self.env.source
        for t, key, version, lt in self.excluded:
            kc = ", ".join(t.kcols)
            self.conn.execute(
                f"INSERT OR IGNORE INTO {S.PENDING} (scope, tbl, vrep, vtick, srep, stick, {kc})"
                f" VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' * len(t.kcols))})",
                (
                    self.sc.idx,
                    t.tid,
                    self.meta.rep_index(version[0]),
                    version[1],
                    self.meta.rep_index(source),
                    lt,
                    *key,
                ),
            )
        return Knowledge.from_versions(v for _, _, version, lt in self.excluded for v in (version, (source, lt)))

    def _rewrite(self, rw: _Rewrite) -> None:
        """Write one conflict outcome as a local change; a failure (a constraint)
        makes it an error conflict and keeps the incoming version out of knowledge."""
        conn, t = self.conn, rw.table
        detail = self.redo.rewrites.get((t.name, rw.key))
        if detail is None:
            try:
                with atomic(conn):
                    if rw.kind == "restamp":
                        log, stamp = t.restamp_sql()
                        conn.execute(log, rw.key)
                        conn.execute(stamp, rw.key)
                    elif rw.row is None:
                        conn.execute(t.delete_sql, rw.key)
                    else:
                        for other in rw.evict:
                            conn.execute(t.delete_sql, other)
                        t.write_row(conn, rw.row)
                    conn.execute(t.set_time_sql(at_least=rw.kind == "merge"), (rw.time, *rw.key))
                    # The new version supersedes the incoming one, and so what that was made with.
                    conn.execute(t.set_mw_sql(), (rw.mw, *rw.key))
                return
            except APPLY_ERRORS as exc:
                detail = str(exc)
            except TransactionLost as exc:
                if isinstance(exc.cause, sqlite3.IntegrityError):
                    self.redo.rewrites[(t.name, rw.key)] = str(exc)
                raise
        self._exclude(t, rw.key, rw.version, rw.lt)
        self.report.failed.append(replace(rw.conflict, type=ConflictType.ERROR, outcome=Outcome.FAILED, detail=detail))

    def _write(self, ins: list[_In]) -> list[tuple[_In, int, str]]:
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
        doomed: list[tuple[_In, int, str]] = []
        by_name = {tin.t.name: tin for tin in ins}
        for (name, seq), msg in self.redo.rows.items():  # rows that ended the transaction before
            tin = by_name[name]
            if conn.execute(f"SELECT 1 FROM {tin.name} WHERE seq = ? AND action = 1", (seq,)).fetchone():
                doomed.append((tin, seq, msg))
        while True:
            for tin, seq, _ in doomed:
                conn.execute(f"UPDATE {tin.name} SET action = 6 WHERE seq = ?", (seq,))
            self.applied = 0
            try:
                with atomic(conn):
                    failed = self._write_all(ins)
                    orphans = self._orphans(ins) if defer else []
                    if orphans:
                        raise _Orphans(orphans)
            except _Orphans as exc:
                doomed += [(tin, seq, "FOREIGN KEY constraint failed") for tin, seq in self._closure(ins, exc.rows)]
                continue
            break
        self.report.applied += self.applied
        failed += doomed
        for tin, seq, _ in failed:
            conn.execute(f"UPDATE {tin.name} SET action = 6 WHERE seq = ?", (seq,))
        return failed

    def _write_all(self, ins: list[_In]) -> list[tuple[_In, int, str]]:
        conn = self.conn
        groups = [(tin, 0) for tin in ins] + [(tin, 1) for tin in reversed(ins)]
        pending: list[tuple[_In, int, int]] = []
        postponed: list[tuple[_In, int, str]] = []
        for tin, flags in groups:
            if flags and tin.short:
                continue  # short rows are live: no deletes
            if flags:
                postponed.extend(self._postpone(tin))
            collisions = None if flags else tin.collisions()
            if collisions is None and (tin.t.name, flags) not in self.redo.groups:
                # The common case, one span of the whole group: its rows are listed only if it fails.
                lo, hi, n = conn.execute(
                    f"SELECT min(seq), max(seq), count(*) FROM {tin.name} WHERE action = 1 AND flags = ?", (flags,)
                ).fetchone()
                if n:
                    span = _Span(conn, tin.name, flags, lo, hi, n)
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

    def _write_span(self, tin: _In, flags: int, seqs: Sequence[int]) -> list[tuple[_In, int, int, str]]:
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

    def _orphans(self, ins: list[_In]) -> list[tuple[_In, int]]:
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
                out += [
                    (tin, seq)
                    for (seq,) in conn.execute(
                        f"SELECT x.seq FROM {tin.name} AS x JOIN {q(s.name)} AS c ON {this}"
                        f" WHERE x.action = 1 AND x.flags = 0 AND {present}"
                        f" AND NOT EXISTS (SELECT 1 FROM {q(parent)} AS p WHERE {match})"
                    )
                ]
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
                out += [
                    (tin, seq)
                    for (seq,) in conn.execute(
                        f"SELECT x.seq FROM {tin.name} AS x WHERE x.action = 1 AND x.flags = 1"
                        f" AND EXISTS (SELECT 1 FROM {q(child[0])} AS c WHERE {match})"
                        f" AND NOT EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {gone})"
                    )
                ]
        return out

    def _closure(self, ins: list[_In], rows: list[tuple[_In, int]]) -> list[tuple[_In, int]]:
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

    def _postpone(self, tin: _In) -> list[tuple[_In, int, str]]:
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
        conn, out = self.conn, list[tuple[_In, int, str]]()
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
                match = child._key_match("tc", "c")
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

    def _params(self, tin: _In, flags: int) -> dict[str, int]:
        return {
            "scope": self.sc.idx,
            "flags": flags,
            "tbase": tin.tbase,
            "first0": self.env.first - 1,
            "base": tin.base,
            "mw": self.mw,
        }

    def _fail(self, tin: _In, seq: int, msg: str) -> None:
        r = self.conn.execute(f"SELECT * FROM {tin.name} WHERE seq = ?", (seq,)).fetchone()
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

    def _collision(self, tin: _In, seq: int, conflict: Conflict, lt: int) -> bool:
        """An incoming row that collides on a UNIQUE index with local rows of
        other keys goes to a conflict callback, with the first colliding row as
        ``local_row``. ``SOURCE`` deletes the colliding local rows and keeps the
        incoming one; ``MERGE`` writes the merged row (e.g. another value in the
        UNIQUE column); both become local changes made knowing the incoming
        version. Anything else, and every built-in policy, leaves the row a
        pending error (True when resolved)."""
        t, remote = tin.t, conflict.remote_row
        if isinstance(self.handler, Policy) or remote is None:
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
            self.rewrites.append(_Rewrite("write", t, conflict.key, remote, both, version, lt, c, mw, evict))
        elif res.outcome is Outcome.MERGE:
            assert res.row is not None
            merged = {**remote, **res.row}
            if set(merged) != set(t.schema.columns) or any(
                merged[k] != v for k, v in zip(t.schema.key, conflict.key, strict=True)
            ):
                return False
            self.rewrites.append(_Rewrite("merge", t, conflict.key, merged, both + 1, version, lt, c, mw))
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
