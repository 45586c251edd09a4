"""The staging side of a SQLite apply: one temporary table per synced table
holding the batch's rows as decoded (:class:`Staged`, which also writes the
SQL of each set-based step over it), and the records an apply keeps while it
runs (conflict rewrites, what a retried attempt learned, spans of rows to
write).

Actions per incoming row (column ``action``)::

    0 known (skip)   1 apply   2 conflict (pending)   3 learn only (the
    destination wins)   4 deferred   5 merged   6 failed
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter, lt
from typing import Any, overload

from peersync._adapters.sql.meta import reported
from peersync._engine.knowledge import MAX_TICK, Version
from peersync._engine.model import (
    Conflict,
    Value,
)

from . import schema as S
from .schema import Tracked, in_ranges, q

KNOWN, APPLY, CONFLICT, LEARN, DEFER, MERGE, FAILED = range(7)
APPLY_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, sqlite3.ProgrammingError)
BIND_ERRORS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, TypeError)
HEAD = ("dlt", "flags", "vrep", "vtick", "crep", "ctick", "dtime")


class Staged:
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
        self.rows = 0  # rows loaded, numbered 1..rows
        # Every row loaded as applied and none has a tracking row here (set by
        # the apply): nothing to triage, count or compare with a row here.
        # Cleared when the write phase takes a row out.
        self.fresh = False
        # The least and greatest key of the rows, when the key is one column
        # and every row's is an integer (short rows only).
        self.key_range: tuple[int, int] | None = None
        # Rows holding a value SQLite would store changed (``fit.py``), by
        # seq: why, and the row's values as they arrived (set by the load).
        self.unfit: dict[int, tuple[str, list[Value]]] = {}

    def create(self) -> str:
        # A short row (``_wire``) binds only its tick and time offsets and its
        # values: the header columns' defaults say what its form means.
        head = "dlt, flags INTEGER DEFAULT 0, vrep INTEGER DEFAULT 0, vtick, crep, ctick, dtime"
        body = f"seq INTEGER PRIMARY KEY, {head}, {', '.join(self.cols)}, action, ex INTEGER NOT NULL DEFAULT 0"
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.name[5:]} ({body})"

    def insert(self, short: bool, unseen: bool = False) -> str:
        """Load rows of either form; ``unseen``: short rows of versions the
        destination knows none of, marked applied until :meth:`seen` says otherwise."""
        cols = ["dlt", "dtime", *self.cols] if short else [*HEAD, *self.cols]
        marks = ", action" if unseen else ""
        return (
            f"INSERT INTO {self.name} ({', '.join(cols)}{marks})"
            f" VALUES ({', '.join('?' * len(cols))}{f', {APPLY}' if unseen else ''})"
        )

    def invalid(self) -> str:
        """Rows in the full form with a bad header, time or tombstone (short
        rows are checked before loading: :func:`short_rows_fault`)."""
        time = f"typeof(dtime) = 'integer' AND typeof(:base + dtime) = 'integer' AND abs(:base + dtime) < {MAX_TICK}"
        ticks = "typeof(dlt) = 'integer' AND dlt >= 1 AND dlt <= :span"
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

    def seen_between(self) -> str:
        """Is there a tracking row with a key in ``[?, ?]`` (:attr:`key_range`)?
        If not, no row of the batch has one: :meth:`seen` is not needed. (An
        initial sync from a table in key order probes one index entry per
        batch instead of one per row.)"""
        t = self.t
        return f"SELECT 1 FROM {q(t.tracking)} WHERE {t.kcols[0]} BETWEEN ? AND ? LIMIT 1"

    def triage(self) -> str:
        """Decide every row not decided yet (see the module docstring)."""
        t = self.t
        match = " AND ".join(f"t.{k} = i.{c}" for k, c in zip(t.kcols, self.keys, strict=True))
        vt = "COALESCE(x.vtick, :first0 + x.dlt)"
        lrep, ltick = reported(":scope")
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
            f" {lrep} AS lrep, {ltick} AS ltick"
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
        if self.short:  # the source's own version and creation, no extra knowledge: no per-row lookups
            return (
                f"INSERT INTO {q(t.tracking)} ({', '.join(names)})"
                f" SELECT {keys}, :tbase + x.seq, (SELECT l FROM temp._peersync_rmap WHERE b = 0), :first0 + x.dlt,"
                f" NULL, NULL, :base + x.dtime, 0, :scope, :mw FROM {self.name} AS x"
                " WHERE x.action = 1 AND x.flags = :flags AND x.seq BETWEEN :lo AND :hi ORDER BY x.seq"
                f" ON CONFLICT ({', '.join(t.kcols)}) DO UPDATE SET {sets}"
            )
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
        for (m,) in (
            ()
            if self.fresh
            else conn.execute(
                f"SELECT DISTINCT {mask} FROM {self.name} AS x JOIN {q(self.t.name)} AS u ON {self.user_match()}"
                f" WHERE {self.to_write()}",
                params,
            ).fetchall()
        ):
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
class Rewrite:
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


class Span(Sequence[int]):
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


class Orphans(Exception):
    """Rows of the batch whose foreign keys do not hold after the writes."""

    def __init__(self, rows: list[tuple[Staged, int]]) -> None:
        super().__init__(f"{len(rows)} row(s) violate a foreign key")
        self.rows = rows


_tick, _time = itemgetter(0), itemgetter(1)


def short_rows_fault(rows: list[list[Any]], span: int, base: int) -> str | None:
    """What is wrong with short rows' tick and time offsets (see ``_wire``),
    or None: ticks are integers from 1 to ``span``, strictly increasing, and
    ``base`` plus each time offset an integer below :data:`MAX_TICK` either
    side of 0. The checks :meth:`Staged.invalid` and :meth:`Staged.unordered`
    make in SQL for full rows, here a few passes in C over the decoded rows
    instead of two scans of the loaded table. ``rows`` is not empty."""
    ticks, times = list(map(_tick, rows)), list(map(_time, rows))
    if set(map(type, ticks)) != {int} or set(map(type, times)) != {int}:
        return "a row's tick or time offset is not an integer"
    if not all(map(lt, ticks, islice(ticks, 1, None))):
        return "ticks out of order"
    if ticks[0] < 1 or ticks[-1] > span:
        return "a row's tick lies outside the batch's range"
    if max(abs(base + min(times)), abs(base + max(times))) >= MAX_TICK:
        return "a row's change time is out of range"
    return None


def int_range(values: list[Any]) -> tuple[int, int] | None:
    """The least and greatest of ``values`` when all are integers (not
    booleans), else None."""
    if set(map(type, values)) != {int}:
        return None
    return min(values), max(values)


def same_values(local: dict[str, Value] | None, remote: dict[str, Value] | None) -> bool:
    return (
        local is not None
        and remote is not None
        and all(type(local[c]) is type(remote[c]) and local[c] == remote[c] for c in local)
    )


def sort_key(v: object) -> int:
    return v if type(v) is int else 0
