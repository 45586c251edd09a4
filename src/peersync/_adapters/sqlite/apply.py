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

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from operator import itemgetter
from typing import Any

from peersync._adapters.sql.meta import Meta
from peersync._engine.errors import ProtocolError
from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    ConflictType,
    Outcome,
    Policy,
    Value,
)
from peersync._engine.rules import both_deleted, classify, decide, policy_name, remote_wins_by_time
from peersync._engine.schema import dependency_order
from peersync._engine.wire import Envelope

from . import schema as S
from .apply_writes import WritePhase
from .core import side_effects
from .fit import Fit
from .schema import PREFIX, Scope, Tracked
from .staging import (
    APPLY,
    APPLY_ERRORS,
    BIND_ERRORS,
    CONFLICT,
    DEFER,
    FAILED,
    HEAD,
    KNOWN,
    LEARN,
    MERGE,
    Redo,
    Rewrite,
    Staged,
    int_range,
    same_values,
    short_rows_fault,
    sort_key,
)
from .text import load_rows
from .txn import TransactionLost, atomic

# A batch of never-seen rows at least this large is inserted with the insert
# trigger of its table dropped (see ``untriggered``): below it, making other
# connections prepare their statements again costs more than the trigger.
UNTRIGGERED_ROWS = 1000


@contextmanager
def untriggered(conn: sqlite3.Connection, tables: list[Tracked]) -> Iterator[None]:
    """Drop the insert trigger of ``tables`` inside the caller's write
    transaction and create it again, from the text ``sqlite_master`` holds
    (so byte for byte the same), before the block ends.

    For writes the trigger would skip anyway (the floor is ``SKIP_ALL``:
    nothing here has side effects): calling a trigger costs about as much as
    the insert itself, even one whose WHEN is false. SQLite's DDL is
    transactional, so other connections see the trigger before or after, and
    a rollback (or a crash) restores it. If the block fails and the
    transaction is gone, the trigger is back already and is left alone."""
    saved: list[tuple[str, str]] = []
    for t in tables:
        name = t.trigger_names()[0]
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
        if row is not None:
            conn.execute(f"DROP TRIGGER {S.q(name)}")
            saved.append((name, row[0]))
    try:
        yield
    finally:
        for name, sql in saved:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone():
                conn.execute(sql)


class SetApply(WritePhase):
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
        self.rewrites: list[Rewrite] = []
        self.mw = 0  # the record of the source's knowledge that applied rows point to
        # Ticks whose log entries this apply wrote for rows never seen here,
        # each its row's current entry at commit (see ``Base._compact``).
        self.fresh: tuple[int, int] | None = None

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
        by_tick = sorted((sc.tables[index[name]] for name, _, _ in env.tables), key=lambda t: sort_key(first[t.name]))
        tables = {name: (base, rows) for name, base, rows in env.tables}
        present = [(index[t.name], *tables[t.name]) for t in dependency_order(by_tick)]
        if any(rows for _, _, rows in present):
            self._maps()
        ins: list[Staged] = []
        for i, base, rows in present:
            if not rows:
                continue
            tin = Staged(sc.tables[i], i, base)
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

    def _load(self, tin: Staged, rows: list[Any]) -> None:
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
        tin.rows = len(rows)
        span = env.last - env.first + 1
        if tin.short:
            fault = short_rows_fault(rows, span, tin.base)
            if fault is not None:
                raise ProtocolError(f"malformed batch: {fault} in {tin.t.name!r}")
            if self.unseen and len(tin.keys) == 1:
                tin.key_range = int_range(list(map(itemgetter(2 + tin.t.schema.key_positions[0]), rows)))
        else:  # one statement loads them all, in order: spell short rows out
            rows = [r if len(r) > 2 + ncols else [r[0], 0, 0, None, None, None, *r[1:]] for r in rows]
        first = 2 if tin.short else len(HEAD)
        fit = Fit(conn, tin.t)
        tin.unfit = {seq: (why, rows[seq - 1][first:]) for seq, why in fit.unfit(rows, first).items()}
        fit.round_decimals(rows)
        insert = tin.insert(tin.short, tin.short and self.unseen)
        try:
            conn.executemany(insert, rows)
        except BIND_ERRORS as exc:
            try:  # TEXT that is not UTF-8 (RawText): loaded as bytes, then cast back to TEXT
                loaded = load_rows(conn, tin.name, insert, rows, 2 if tin.short else len(HEAD))
            except BIND_ERRORS:
                loaded = False
            if not loaded:
                raise ProtocolError(f"malformed batch rows for {tin.t.name!r}: {exc}") from exc
        if tin.short:
            # Each row's version is a tick of the source in first..last, which
            # the source's knowledge holds (``apply`` checked): nothing to vouch for.
            return
        (bad,) = conn.execute(
            tin.invalid(), {"nrep": len(env.replicas), "span": span, "nex": len(env.extras), "base": tin.base}
        ).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: {bad} invalid row(s) for {tin.t.name!r}")
        (bad,) = conn.execute(tin.unordered()).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: ticks of {tin.t.name!r} out of order")
        conn.execute(f"UPDATE {tin.name} SET ex = flags >> 1, flags = flags & 1 WHERE flags > 1")
        (bad,) = conn.execute(tin.unknown_to_source()).fetchone()
        if bad:
            raise ProtocolError(f"malformed batch: {bad} row(s) of {tin.t.name!r} carry versions the source never knew")

    # -- triage, conflicts and writes --------------------------------------------------------
    def _apply(self, ins: list[Staged], tick: int) -> Knowledge:
        conn, sc, report, env = self.conn, self.sc, self.report, self.env
        first0 = env.first - 1
        for tin in ins:
            if tin.short and self.unseen:
                # A row without a tracking row here has no user row either.
                tin.fresh = (
                    tin.key_range is not None and conn.execute(tin.seen_between(), tin.key_range).fetchone() is None
                ) or conn.execute(tin.seen()).rowcount == 0
                if tin.fresh:
                    report.received += tin.rows
                    self._fail_unfit(tin)
                    continue
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
            self._fail_unfit(tin)
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
            # With nothing to cause side effects the triggers skip every write
            # without probing for its stamp. Checked again inside this
            # transaction when the schema changed since (a trigger created by
            # another program after the scope was read).
            (version,) = conn.execute("PRAGMA schema_version").fetchone()
            if sc.effects_checked != version:
                sc.side_effects, sc.effects_checked = side_effects(conn), version
            effects = sc.side_effects
            conn.execute(f"UPDATE {PREFIX}clock SET floor = ? WHERE id = 0", (tick if effects else S.SKIP_ALL,))
            bulk = [] if effects else [tin.t for tin in ins if tin.fresh and tin.rows >= UNTRIGGERED_ROWS]
            with untriggered(conn, bulk):
                failed = self._write(ins)
            if bulk:  # the triggers are back as they were: nothing but the version moved
                (sc.effects_checked,) = conn.execute("PRAGMA schema_version").fetchone()
            conn.execute(f"UPDATE {PREFIX}clock SET floor = NULL WHERE id = 0")
            # The triggers skipped the rows this batch wrote; whatever changed
            # them afterwards must still become a local change, and rows they
            # evicted through a UNIQUE index ... ON CONFLICT REPLACE tombstones.
            for tin in ins:
                for st in tin.t.evictions_sql():
                    conn.execute(st)
                if not effects:
                    continue
                for seq, gone in conn.execute(tin.drifted()).fetchall():
                    key = self._row(tin, conn.execute(f"SELECT * FROM {tin.name} WHERE seq = ?", (seq,)).fetchone())[3]
                    log, stamp = tin.t.restamp_sql(drift=True)
                    conn.execute(log, key)
                    conn.execute(stamp, (int(gone), *key))
            for tin, seq, msg in failed:
                self._fail(tin, seq, msg)
            if all(tin.fresh for tin in ins) and not failed and not effects:
                self.fresh = (tick + 1, tick + total)
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

    def _fail_unfit(self, tin: Staged) -> None:
        """Rows holding a value SQLite would store changed (:attr:`Staged.unfit`)
        fail before any write, unless this replica knows their version already:
        ``error`` conflicts naming the column, their versions kept out of
        knowledge (as a row that fails to write), so they come again. No
        conflict with the local row is looked into: the incoming row cannot be
        stored either way."""
        for seq, (why, values) in tin.unfit.items():
            failed = f"UPDATE {tin.name} SET action = {FAILED} WHERE seq = ? AND action != {KNOWN}"
            if self.conn.execute(failed, (seq,)).rowcount:
                tin.fresh = False  # a row taken out: the write phase lists the rest
                self._fail(tin, seq, why, values)

    def _conflict(self, tin: Staged, r: tuple[Any, ...]) -> None:
        t, seq = tin.t, r[0]
        version, creation, remote_row, key = self._row(tin, r)
        lt, ctime = self.env.first - 1 + r[1], tin.base + r[7]
        loc = self._local(t, key)
        kind = classify(loc, remote_row is None, creation, self.env.made_with, self.known)
        local_row = None
        if not loc.deleted:
            row = self.conn.execute(t.select_row_sql, key).fetchone()
            local_row = None if row is None else dict(zip(t.schema.columns, row, strict=True))
        if (loc.deleted and remote_row is None) or (not loc.deleted and same_values(local_row, remote_row)):
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
                self.rewrites.append(Rewrite("write", t, key, remote_row, both, version, lt, logged, mw))
            elif d.outcome is Outcome.DESTINATION:
                self.rewrites.append(Rewrite("restamp", t, key, local_row, both, version, lt, logged, mw))
        if d.merged is not None:
            self.rewrites.append(Rewrite("merge", t, key, d.merged, both + 1, version, lt, logged, mw))
        if d.outcome is Outcome.DEFER:
            self.report.deferred += 1
            self._exclude(t, key, version, lt)
        self.conflicts.append(logged)
        self.conn.execute(f"UPDATE {tin.name} SET action = ? WHERE seq = ?", (action[d.outcome], seq))

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

    def _rewrite(self, rw: Rewrite) -> None:
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
