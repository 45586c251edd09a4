"""Applying one batch to a MariaDB database, in one transaction.

The batch is decoded and validated whole first (``decode_batch``: a bad
batch raises :class:`~peersync.ProtocolError` before anything is written).
Then, per table, the user rows and tracking rows of the batch's keys are
locked (``SELECT ... FOR UPDATE``, user rows first, the order writers'
triggers take them) and read in one statement per chunk, so a local write
that committed before is seen and one that comes later waits: a race becomes
a conflict, never an overwrite. Triage runs on the pure rules
(``_engine/rules.py``) over that state; writes are bulk statements (a
multi-row ``INSERT`` for new rows, ``UPDATE`` by key for existing ones;
never ``ON DUPLICATE KEY UPDATE``, which would fire on another UNIQUE index
and overwrite a different row), and a failing bulk statement is replayed row
by row under savepoints so one bad row becomes an ``error`` conflict and the
rest applies. Parents are written before children, deletes children first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from peersync._adapters.sql.meta import Meta, dumps, now_ms
from peersync._engine import model, rules
from peersync._engine.errors import DatabaseLocked, ProtocolError
from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.schema import dependency_order
from peersync._engine.wire import decode_batch

from . import fresh
from . import schema as S
from .collisions import ER_DUP_ENTRY, ask, colliding, unique_indexes
from .conn import Conn, q
from .normalized import drifted, rewritten
from .schema import APPLYING, KEEP_CREATION, PREFIX, Scope, Tracked
from .values import Unfit, converters

_CHUNK = 500
_RETRIES = 3
_STAMPS = 2000  # tracking rows per INSERT statement
# Rows whose incoming version the destination now holds or beats ("superseded": a later change of
# the same key in this batch was applied over it; "fresh": written by fresh.write).
_LEARNED = ("apply", "learn", "write", "restamp", "merge", "superseded", "fresh")


@dataclass
class _Row:
    """One incoming change and what the apply decided for it."""

    change: model.Change
    extra: int  # index into the batch's extras (0: none)
    key: tuple[model.Value, ...]
    local: rules.LocalState | None = None
    local_mw: int | None = None
    exists: bool = False  # the user row exists here
    action: str = "apply"  # apply, skip, learn, defer, write, restamp, merge, failed, fresh
    row: dict[str, model.Value] | None = None  # what to write for write/merge
    time: int = 0  # change time for a rewrite
    conflict: model.Conflict | None = None
    evict: list[tuple[Any, ...]] = field(default_factory=list)  # local rows a collision's outcome deletes


def _same(a: dict[str, model.Value] | None, b: dict[str, model.Value] | None) -> bool:
    return a is not None and b is not None and all(type(a[c]) is type(b[c]) and a[c] == b[c] for c in a)


class Apply:
    """One batch applied to ``peer`` (retried whole on a deadlock)."""

    def __init__(
        self, conn: Conn, meta: Meta, sc: Scope, data: bytes, handler: model.ConflictHandler, consecutive_ids: bool
    ) -> None:
        """``conn`` has the apply's transaction open and ``meta`` works on it;
        ``consecutive_ids``: one multi-row INSERT takes consecutive
        auto-increment ids (innodb_autoinc_lock_mode below 2)."""
        self.conn, self.meta, self.sc = conn, meta, sc
        self.consecutive_ids = consecutive_ids
        self.batch = decode_batch(data, sc.schemas)
        self.handler = handler
        self.uniques: dict[str, list[tuple[str, ...]]] = {}

    def run(self) -> model.ApplyReport:
        for attempt in range(_RETRIES):
            try:
                with self.conn.errors(), self.conn.txn():
                    self.conn.execute(f"SET {APPLYING} = 1")
                    self.applying, self.effects = True, S.user_triggers(self.conn)
                    try:
                        return self._run()
                    finally:
                        self.conn.execute(f"SET {APPLYING} = NULL")
            except DatabaseLocked:
                self.meta.forget_cache()
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _run(self) -> model.ApplyReport:
        b, sc, conn = self.batch, self.sc, self.conn
        self.report = model.ApplyReport(last=b.last, final=b.final, made_with=b.made_with)
        self.meta.load_replicas()
        # One apply at a time per scope: the scope row is the knowledge they both update.
        (blob,) = conn.execute(
            f"SELECT knowledge FROM {PREFIX}scopes WHERE name = %s FOR UPDATE", (sc.name,)
        ).fetchone()
        stored = Knowledge.from_bytes(bytes(blob))
        self.top = S.sealed(conn)
        self.known = stored.add_range(sc.rid, 1, self.top)
        self.excluded: list[tuple[Tracked, tuple[model.Value, ...], Version, int]] = []
        self.conflicts: list[model.Conflict] = []
        self.mw = self.meta.partial_id(sc.name, b.made_with)
        self.extra_ids = [self.meta.partial_id(sc.name, b.made_with | x) for x in b.extras]
        self.records = dict(self.meta.partials(sc.name))
        learned = Knowledge.empty()
        if b.last >= b.first:
            learned = learned.add_range(b.source, b.first, b.last)
        order = dependency_order([t for t in sc.tables if b.changes.get(t.name)])
        effects = any(t.name in self.effects for t in order)
        plans: list[tuple[Tracked, list[_Row]]] = []
        for t in order:  # parents first: a fresh table's rows are written here, before its children's
            changes, extras = b.changes[t.name], b.extra_of.get(t.name)
            rows = self._fresh(t, changes, extras) if fresh.eligible(t, effects, changes, sc.rid, self.known) else None
            plans.append((t, rows if rows is not None else self._triage(t, changes, extras)))
        for t, rows in plans:
            self._upserts(t, rows)
        for t, rows in reversed(plans):
            self._deletes(t, rows)
        versions: list[Version] = []
        for t, rows in plans:
            self._normalized(t, rows, effects)
            self._rewrites(t, rows)
            versions.extend(r.change[2] for r in rows if r.action in _LEARNED)
            self._release_pending(t, rows)
        learned = learned.union(Knowledge.from_versions(versions))
        excluded = self._keep_pending()
        new = self.meta.save_knowledge(sc, stored.union(learned.exclude(excluded)))
        if self.conflicts:
            self.meta.insert_conflicts(self.conflicts)
        self.report.excluded = excluded
        self.report.knowledge = new.add_range(sc.rid, 1, S.sealed(conn))
        return self.report

    # -- triage -------------------------------------------------------------------------
    def _lock(
        self, t: Tracked, keys: Sequence[tuple[model.Value, ...]]
    ) -> tuple[set[tuple[Any, ...]], dict[tuple[Any, ...], Any]]:
        """Lock and read the user rows' keys and the tracking rows of ``keys``."""
        nk = len(t.schema.key)
        tup = "(" + ", ".join(["%s"] * nk) + ")"
        ucols = ", ".join(q(k) for k in t.schema.key)
        exists: set[tuple[Any, ...]] = set()
        tracking: dict[tuple[Any, ...], Any] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            flat = [v for k in chunk for v in k]
            cond = f"({ucols}) IN ({', '.join([tup] * len(chunk))})"
            for r in self.conn.execute(f"SELECT {ucols} FROM {q(t.name)} WHERE {cond} FOR UPDATE", flat).fetchall():
                exists.add(tuple(r))
            kc = ", ".join(f"t.{k}" for k in t.kcols)
            tcond = f"({kc}) IN ({', '.join([tup] * len(chunk))})"
            for r in self.conn.execute(
                f"SELECT {kc}, t.lt, t.urep, t.utick, t.crep, t.ctick, t.cid, t.ctime, t.del, t.scope, t.mw,"
                f" l.seq, lc.seq FROM {q(t.tracking)} AS t LEFT JOIN {S.LOG} AS l ON l.id = t.lt"
                f" LEFT JOIN {S.LOG} AS lc ON lc.id = t.cid WHERE {tcond} FOR UPDATE",
                flat,
            ).fetchall():
                tracking[tuple(r[:nk])] = r[nk:]
        return exists, tracking

    def _state(self, r: Any) -> tuple[rules.LocalState, int | None]:
        sc, rep = self.sc, self.meta.rep_rid
        _lt, urep, utick, crep, ctick, _cid, ctime, deleted, scope, mw, seq, cseq = r
        # A local change not sealed yet is newer than every sealed tick.
        own_tick = int(seq) if seq is not None else self.top + 1
        if scope == sc.idx and utick is not None:
            version: Version = (rep.get(urep, sc.rid) if urep else sc.rid, int(utick))
        else:
            version = (sc.rid, own_tick)
        if ctick is not None:
            creation: Version = (rep.get(crep, sc.rid) if crep else sc.rid, int(ctick))
        elif cseq is not None:
            creation = (sc.rid, int(cseq))
        else:
            creation = version
        return rules.LocalState(version, creation, bool(deleted), int(ctime)), (int(mw) if mw is not None else None)

    def _triage(self, t: Tracked, changes: list[model.Change], extras: list[int] | None) -> list[_Row]:
        b, sc = self.batch, self.sc
        s = t.schema
        rows = [
            _Row(c, extras[i] if extras else 0, c[5] if c[1] else tuple(c[5][p] for p in s.key_positions))
            for i, c in enumerate(changes)
        ]
        # The same key twice in one batch: the later change wins (tick order).
        exists, tracking = self._lock(t, list(dict.fromkeys(r.key for r in rows)))
        for r in rows:
            self.report.received += 1
            version = r.change[2]
            if version[0] == sc.rid and not self.known.contains(*version):
                raise ProtocolError("batch carries a version of this replica that it never made")
            st = tracking.get(r.key)
            r.exists = r.key in exists
            if st is not None:
                r.local, r.local_mw = self._state(st)
            made_with = b.made_with | b.extras[r.extra - 1] if r.extra else b.made_with
            action = rules.triage(version, r.local, made_with, self.known)
            if action is rules.Action.CONFLICT and r.local_mw is not None:
                record = self.records.get(r.local_mw)
                if record is not None and record.contains(*version):
                    action = rules.Action.SKIP_KNOWN
            if action is rules.Action.SKIP_KNOWN:
                r.action = "skip"
                self.report.skipped_known += 1
            elif action is rules.Action.CONFLICT:
                self._conflict(t, r, made_with)
        return rows

    def _fresh(self, t: Tracked, changes: list[model.Change], extras: list[int] | None) -> list[_Row] | None:
        """Write the rows of ``t`` straight in (``fresh.py``); None, with nothing written, if they cannot."""
        try:
            params = [self._params(t, c[5]) for c in changes]
        except Unfit:
            return None
        kp = t.schema.key_positions
        rows = [_Row(c, extras[i] if extras else 0, tuple(c[5][p] for p in kp), action="fresh")
                for i, c in enumerate(changes)]  # fmt: skip
        for rid in {c[2][0] for c in changes} | {c[3][0] for c in changes}:  # stored before the savepoint:
            self._rep(rid)  # the cache of replica indexes must not outlive its rollback
        self._guard(t)
        if not fresh.write(self.conn, t, params, lambda: self._stamp(t, rows, upsert=False)):
            return None
        self.report.received += len(rows)
        return rows

    def _conflict(self, t: Tracked, r: _Row, made_with: Knowledge) -> None:
        s = self.sc
        assert r.local is not None
        lt, deleted, version, creation, ctime, values = r.change
        remote_row = None if deleted else dict(zip(t.schema.columns, values, strict=True))
        kind = rules.classify(r.local, deleted, creation, made_with, self.known)
        local_row = self._local_row(t, r.key) if not r.local.deleted else None
        if (r.local.deleted and deleted) or (not r.local.deleted and _same(local_row, remote_row)):
            wins = rules.remote_wins_by_time(r.local.time, r.local.version, ctime, version)
            r.action = "apply" if wins else "learn"
            if r.local.deleted:
                self.report.conflicts += 1
                self.conflicts.append(rules.both_deleted(s.name, t.name, r.key, r.local, version, ctime, wins))
            return
        conflict = model.Conflict(s.name, t.name, r.key, kind, local_row, remote_row, r.local.version, version,
                            r.local.time, ctime, rules.policy_name(self.handler))  # fmt: skip
        d = rules.decide(self.handler, conflict, t.schema.columns, t.schema.key)
        self.report.conflicts += 1
        lww = self.handler is model.Policy.LAST_WRITER_WINS
        both = max(r.local.time, ctime)
        r.conflict = d.conflict
        if d.outcome is model.Outcome.SOURCE:
            r.action = "apply" if lww else "write"
            r.row, r.time = remote_row, both
        elif d.outcome is model.Outcome.DESTINATION:
            r.action = "learn" if lww else "restamp"
            r.time = both
        elif d.merged is not None:
            r.action, r.row, r.time = "merge", d.merged, both + 1
        if d.outcome is model.Outcome.DEFER:
            r.action = "defer"
            self.report.deferred += 1
            self.excluded.append((t, r.key, version, lt))
        self.conflicts.append(d.conflict)

    def _local_row(self, t: Tracked, key: tuple[model.Value, ...]) -> dict[str, model.Value] | None:
        to, fr = converters(t.specs)
        try:
            params = [f(v) for f, v in zip([fr[p] for p in t.schema.key_positions], key, strict=True)]
        except Unfit:
            return None
        row = self.conn.execute(t.select_row_sql, params).fetchone()
        if row is None:
            return None
        return {c: f(v) for c, f, v in zip(t.schema.columns, to, row, strict=True)}

    # -- writes ---------------------------------------------------------------------------
    def _params(self, t: Tracked, values: Sequence[model.Value]) -> list[Any]:
        _, fr = converters(t.specs)
        out = []
        for c, f, v in zip(t.schema.columns, fr, values, strict=True):
            try:
                out.append(f(v))
            except Unfit as exc:
                raise Unfit(f"column {c}: {exc}") from None
        return out

    def _guard(self, t: Tracked) -> None:
        """The tracking triggers skip the apply's own writes, except on a
        table with triggers of the user's: what those change elsewhere must be
        tracked (the apply's own rows, stamped by the triggers too, get their
        incoming versions from :meth:`_stamp` afterwards)."""
        if self.applying == (t.name in self.effects):
            self.applying = t.name not in self.effects
            self.conn.execute(f"SET {APPLYING} = {'1' if self.applying else 'NULL'}")

    def _upserts(self, t: Tracked, rows: list[_Row]) -> None:
        self._guard(t)
        live = [r for r in rows if r.action == "apply" and not r.change[1]]
        # The last change of a key in the batch is the one that counts.
        last: dict[tuple[model.Value, ...], _Row] = {}
        for r in live:
            if r.key in last:
                last[r.key].action = "superseded"
            last[r.key] = r
        inserts: list[tuple[_Row, list[Any]]] = []
        updates: list[tuple[_Row, list[Any]]] = []
        for r in last.values():
            try:
                params = self._params(t, r.change[5])
            except Unfit as exc:
                self._fail(t, r, str(exc))
                continue
            (updates if r.exists else inserts).append((r, params))
        self._bulk(t, t.insert_sql, inserts, lambda p: p)
        if t.update_sql:
            kp = t.schema.key_positions
            others = [i for i in range(len(t.schema.columns)) if i not in kp]
            self._bulk(t, t.update_sql, updates, lambda p: [p[i] for i in others] + [p[i] for i in kp])
        self._stamp(t, [r for r in last.values() if r.action == "apply"])

    def _deletes(self, t: Tracked, rows: list[_Row]) -> None:
        self._guard(t)
        dead = [r for r in rows if r.action == "apply" and r.change[1]]
        todo = []
        for r in dead:
            try:
                kp = self._params(t, [r.key[t.schema.key_positions.index(i)] if i in t.schema.key_positions else None
                                      for i in range(len(t.schema.columns))])  # fmt: skip
            except Unfit as exc:
                self._fail(t, r, str(exc))
                continue
            todo.append((r, [kp[i] for i in t.schema.key_positions]))
        self._bulk(t, t.delete_sql, [(r, p) for r, p in todo if r.exists], lambda p: p)
        self._stamp(t, [r for r, _ in todo if r.action == "apply"])

    def _bulk(self, t: Tracked, sql: str, items: list[tuple[_Row, list[Any]]], shape: Any) -> None:
        """Run ``sql`` for every item in one go; if that fails, row by row,
        each failing row becoming an error conflict."""
        if not items:
            return
        try:
            with self.conn.savepoint():
                self.conn.executemany(sql, [shape(p) for _, p in items])
            return
        except pymysql.err.MySQLError as exc:
            if getattr(exc, "args", (0,))[0] in (1205, 1213):
                raise
        for r, p in items:
            try:
                with self.conn.savepoint():
                    self.conn.execute(sql, shape(p))
            except pymysql.err.MySQLError as exc:
                if exc.args and exc.args[0] in (1205, 1213):
                    raise
                msg = str(exc.args[-1] if exc.args else exc)
                if exc.args and exc.args[0] == ER_DUP_ENTRY and self._collision(t, r, p, msg):
                    continue
                self._fail(t, r, msg)

    def _collision(self, t: Tracked, r: _Row, params: list[Any], msg: str) -> bool:
        """An incoming row colliding with local rows of other keys on a UNIQUE
        index goes to the conflict callback (``collisions.py``); True when it
        decided (the row is then rewritten by :meth:`_rewrites`)."""
        if isinstance(self.handler, model.Policy) or r.change[1]:
            return False
        if t.name not in self.uniques:
            self.uniques[t.name] = unique_indexes(self.conn, t)
        others = colliding(self.conn, t, self.uniques[t.name], r.key, params)
        if not others:
            return False
        to, _ = converters(t.specs)
        local_row = {c: f(v) for c, f, v in zip(t.schema.columns, to, others[0], strict=True)}
        kp = t.schema.key_positions
        okeys = [tuple(o[i] for i in kp) for o in others]
        _, tracking = self._lock(t, [okeys[0]])
        st = tracking.get(okeys[0])
        loc = self._state(st)[0] if st is not None else None
        _, _, version, _, ctime, values = r.change
        c = model.Conflict(self.sc.name, t.name, r.key, model.ConflictType.ERROR, local_row,
                     dict(zip(t.schema.columns, values, strict=True)), loc.version if loc else None, version,
                     loc.time if loc else None, ctime, rules.policy_name(self.handler), None, msg)  # fmt: skip
        decided = ask(self.handler, c)
        if decided is None:
            return False
        action, row = decided
        assert row is not None
        if set(row) != set(t.schema.columns) or any(row[k] != v for k, v in zip(t.schema.key, r.key, strict=True)):
            return False  # a merged row must keep the key and name every column
        outcome = model.Outcome.SOURCE if action == "write" else model.Outcome.MERGE
        both = max(loc.time if loc else 0, ctime)
        r.action, r.row, r.time = action, row, both + (action == "merge")
        r.evict = okeys if action == "write" else []
        r.conflict = replace(c, outcome=outcome)
        self.report.conflicts += 1
        self.conflicts.append(r.conflict)
        return True

    def _fail(self, t: Tracked, r: _Row, msg: str) -> None:
        lt, deleted, version, _, ctime, values = r.change
        row = None if deleted else dict(zip(t.schema.columns, values, strict=True))
        r.action = "failed"
        self.excluded.append((t, r.key, version, lt))
        self.report.failed.append(
            model.Conflict(self.sc.name, t.name, r.key, model.ConflictType.ERROR, None, row, None, version, None, ctime,
                     rules.policy_name(self.handler), model.Outcome.FAILED, msg)
        )  # fmt: skip

    def _new_ids(self, t: Tracked, n: int) -> list[int]:
        """``n`` new log entries of table ``t``; their ids in order."""
        if not n:
            return []
        if self.consecutive_ids:
            ids: list[int] = []
            for i in range(0, n, 10000):
                m = min(10000, n - i)
                cur = self.conn.execute(f"INSERT INTO {S.LOG} (tbl) VALUES " + ", ".join([f"({t.tid})"] * m))
                first = int(cur.lastrowid)
                ids.extend(range(first, first + m))
            return ids
        return [int(self.conn.execute(f"INSERT INTO {S.LOG} (tbl) VALUES ({t.tid})").lastrowid) for _ in range(n)]

    def _stamp(self, t: Tracked, rows: list[_Row], *, upsert: bool = True) -> None:
        """Tracking rows for applied changes: their origin versions, arrived
        through this scope; without ``upsert``, by plain inserts (keys with no tracking row here)."""
        if not rows:
            return
        ids = self._new_ids(t, len(rows))
        kc = ", ".join(t.kcols)
        cols = "lt, urep, utick, crep, ctick, cid, ctime, del, scope, mw"
        sets = ", ".join(f"{c} = VALUES({c})" for c in cols.split(", "))
        data = []
        _, fr = converters(t.specs)
        kfr = [fr[p] for p in t.schema.key_positions]  # the keys were bound once already: they fit
        reps = {rid: self._rep(rid) for rid in {r.change[2][0] for r in rows} | {r.change[3][0] for r in rows}}
        for r, lt in zip(rows, ids, strict=True):
            _, deleted, version, creation, ctime, _ = r.change
            crep = ctick = None
            if creation != version:
                crep, ctick = reps[creation[0]], creation[1]
            mw = self.extra_ids[r.extra - 1] if r.extra else self.mw
            data.append((*[f(v) for f, v in zip(kfr, r.key, strict=True)], lt, reps[version[0]], version[1], crep,
                         ctick, None, ctime, int(deleted), self.sc.idx, mw))  # fmt: skip
        # Spelled out, not by executemany: PyMySQL's escaping of these integers cost more than the server's work.
        lit = self.conn.raw.escape
        tuples = ["(" + ",".join(str(v) if type(v) is int else "NULL" if v is None else lit(v) for v in d) + ")"
                  for d in data]  # fmt: skip
        for i in range(0, len(tuples), _STAMPS):
            self.conn.execute(
                f"INSERT INTO {q(t.tracking)} ({kc}, {cols}) VALUES {', '.join(tuples[i : i + _STAMPS])}"
                + (f" ON DUPLICATE KEY UPDATE {sets}" if upsert else "")
            )
        self.report.applied += len(rows)

    def _rep(self, rid: bytes) -> int:
        return 0 if rid == self.sc.rid else self.meta.rep_index(rid)

    def _rewrites(self, t: Tracked, rows: list[_Row]) -> None:
        """Conflict outcomes under a policy other than last writer wins become
        new local changes, made knowing both sides, so every replica converges."""
        self._guard(t)
        for r in rows:
            if r.action not in ("write", "restamp", "merge"):
                continue
            try:
                with self.conn.savepoint():
                    mw = self.extra_ids[r.extra - 1] if r.extra else self.mw
                    for k in r.evict:  # local rows in the way of a collision's winner
                        self.conn.execute(t.delete_sql, list(k))
                        self._stamp_local(t, list(k), r.time, True, mw)
                    if r.action in ("write", "merge"):
                        if r.row is None:
                            kv = self._params(t, self._key_row(t, r.key))
                            self.conn.execute(t.delete_sql, [kv[i] for i in t.schema.key_positions])
                        else:
                            p = self._params(t, [r.row[c] for c in t.schema.columns])
                            kp = t.schema.key_positions
                            exists = self.conn.execute(t.select_row_sql, [p[i] for i in kp]).fetchone() is not None
                            if exists and t.update_sql:
                                others = [i for i in range(len(p)) if i not in kp]
                                self.conn.execute(t.update_sql, [p[i] for i in others] + [p[i] for i in kp])
                            elif not exists:
                                self.conn.execute(t.insert_sql, p)
                    if r.local is None:  # a key new here (a collision's winner)
                        kv = self._params(t, self._key_row(t, r.key))
                        self._stamp_local(t, [kv[i] for i in t.schema.key_positions], r.time, r.row is None, mw)
                    else:
                        self._local_change(t, r)
            except (pymysql.err.MySQLError, Unfit) as exc:
                if isinstance(exc, pymysql.err.MySQLError) and exc.args and exc.args[0] in (1205, 1213):
                    raise
                assert r.conflict is not None
                self.excluded.append((t, r.key, r.change[2], r.change[0]))
                self.report.failed.append(
                    replace(r.conflict, type=model.ConflictType.ERROR, outcome=model.Outcome.FAILED, detail=str(exc))
                )
                r.action = "failed"

    def _normalized(self, t: Tracked, rows: list[_Row], effects: bool) -> None:
        """Rows written in another form than received, and (``effects``: a
        table of the batch has triggers of the user's) rows something changed
        after the apply wrote them, become local changes (see normalized.py)."""
        live = [r for r in rows if r.action == "apply" and not r.change[1]]
        kp = t.schema.key_positions

        def bind(key: tuple[model.Value, ...]) -> list[Any]:
            p = self._params(t, self._key_row(t, key))
            return [p[i] for i in kp]

        changed = rewritten(self.conn, t, [(r.key, r.change[5]) for r in live], bind)
        for r in live:
            if r.key in changed:  # made on top of the incoming version: its time plus one
                self._stamp_local(
                    t, bind(r.key), r.change[4] + 1, False, self.extra_ids[r.extra - 1] if r.extra else self.mw
                )
        if not effects:
            return
        done = [r for r in rows if r.action == "apply" and r.key not in changed]
        moved = drifted(self.conn, t, [(r.key, None if r.change[1] else r.change[5]) for r in done], bind)
        for r in done:
            if r.key in moved:  # a change made here, now, on top of the incoming version
                mw = self.extra_ids[r.extra - 1] if r.extra else self.mw
                self._stamp_local(t, bind(r.key), max(now_ms(), r.change[4] + 1), moved[r.key], mw)

    def _key_row(self, t: Tracked, key: tuple[model.Value, ...]) -> list[model.Value]:
        kp = t.schema.key_positions
        return [key[kp.index(i)] if i in kp else None for i in range(len(t.schema.columns))]

    def _stamp_local(self, t: Tracked, key: list[Any], time: int, gone: bool, mw: int) -> None:
        """Stamp the row of ``key`` (driver values) as a new local change,
        whether or not it had a tracking row."""
        (lt,) = self._new_ids(t, 1)
        self.conn.execute(
            f"INSERT INTO {q(t.tracking)} ({', '.join(t.kcols)}, lt, ctime, del, mw)"
            f" VALUES ({', '.join(['%s'] * (len(key) + 4))}) ON DUPLICATE KEY UPDATE {KEEP_CREATION},"
            " lt = VALUES(lt), urep = NULL, utick = NULL, scope = NULL, ctime = GREATEST(ctime, VALUES(ctime)),"
            " del = VALUES(del), mw = VALUES(mw)",
            (*key, lt, time, int(gone), mw),
        )

    def _local_change(self, t: Tracked, r: _Row) -> None:
        """Stamp row ``r`` as a new local change with change time ``r.time``."""
        (lt,) = self._new_ids(t, 1)
        keyp = self._params(t, self._key_row(t, r.key))
        gone = r.action != "restamp" and r.row is None
        if r.action == "restamp":
            gone = bool(r.local and r.local.deleted)
        mw = self.extra_ids[r.extra - 1] if r.extra else self.mw
        where = " AND ".join(f"{k} = %s" for k in t.kcols)
        # Keep the creation; the version becomes a local one (resolved at sealing).
        self.conn.execute(
            f"UPDATE {q(t.tracking)} SET crep = CASE WHEN ctick IS NULL AND cid IS NULL AND utick IS NOT NULL"
            " THEN urep ELSE crep END, ctick = CASE WHEN ctick IS NULL AND cid IS NULL AND utick IS NOT NULL"
            " THEN utick ELSE ctick END, cid = CASE WHEN ctick IS NULL AND cid IS NULL THEN lt ELSE cid END,"
            f" lt = %s, urep = NULL, utick = NULL, scope = NULL, ctime = GREATEST(ctime, %s), del = %s, mw = %s"
            f" WHERE {where}",
            (lt, r.time, int(gone), mw, *[keyp[i] for i in t.schema.key_positions]),
        )

    # -- pending changes ------------------------------------------------------------------
    def _release_pending(self, t: Tracked, rows: list[_Row]) -> None:
        """Forget pending changes of rows this batch wrote or resolved whose
        version the row now holds or beats (the incoming version, or one the
        source's row was made knowing)."""
        done = {dumps(list(r.key)): r for r in rows if r.action in _LEARNED}
        if not done:
            return
        b = self.batch
        for vrep, vtick, kj in self.conn.execute(
            f"SELECT vrep, vtick, kj FROM {S.PENDING} WHERE scope = %s AND tbl = %s", (self.sc.idx, t.tid)
        ).fetchall():
            r = done.get(kj)
            if r is None:
                continue
            rid = self.sc.rid if int(vrep) == 0 else self.meta.rep_rid.get(int(vrep))
            if rid is None:
                continue
            made_with = b.made_with | b.extras[r.extra - 1] if r.extra else b.made_with
            if (rid, int(vtick)) == r.change[2] or made_with.contains(rid, int(vtick)):
                self.conn.execute(
                    f"DELETE FROM {S.PENDING} WHERE scope = %s AND tbl = %s AND kj = %s AND vrep = %s AND vtick = %s",
                    (self.sc.idx, t.tid, kj, vrep, vtick),
                )

    def _keep_pending(self) -> Knowledge:
        source = self.batch.source
        for t, key, version, lt in self.excluded:
            self.conn.execute(
                f"INSERT IGNORE INTO {S.PENDING} (scope, tbl, vrep, vtick, srep, stick, kj)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (self.sc.idx, t.tid, self._rep(version[0]), version[1], self._rep(source), lt, dumps(list(key))),
            )
        return Knowledge.from_versions(v for _, _, version, lt in self.excluded for v in (version, (source, lt)))
