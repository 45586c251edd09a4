"""The SQLite peer: provisioning, enumeration and apply on one database file.

Every write runs in one ``BEGIN IMMEDIATE`` transaction; a kill at any point
leaves the file as it was before that transaction or after it. ``sqlite3``
exceptions are translated to :mod:`peersync` ones at this boundary.
"""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import _sqlite_schema as S
from ._conflict import Action, LocalState, classify, policy_name, resolve, triage
from ._errors import DatabaseLocked, InvalidURL, ProtocolError, SchemaMismatch, ScopeError, StorageError, TableError
from ._knowledge import Knowledge, Version
from ._model import (
    ApplyReport,
    Batch,
    Change,
    Conflict,
    ConflictHandler,
    ConflictType,
    Outcome,
    ReplicaInfo,
    Resolution,
    Status,
    TableSchema,
    Value,
)
from ._sqlite_schema import PREFIX, Tracked, q
from ._wire import decode_batch, encode_batch

_LOOKUP_CHUNK = 400
_APPLY_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, sqlite3.ProgrammingError)


@dataclass
class _Scope:
    name: str
    idx: int
    rid: bytes
    fingerprint: str
    tables: list[Tracked]  # parents before children
    schemas: dict[str, TableSchema] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schemas = {t.name: t.schema for t in self.tables}


@dataclass
class _Pending:
    """One incoming row that will be written: tracking stamp plus data."""

    table: Tracked
    change: Change
    key: tuple[Value, ...]
    stamp: list[Any]


def now_ms() -> int:
    return int(time.time() * 1000)


class SQLitePeer:
    """A SQLite database file as a peersync peer.

    Opening never creates a file: a missing path raises
    :class:`~peersync.InvalidURL`, a file that is not a database
    :class:`~peersync.StorageError`. ``timeout`` is how long to wait for
    another writer's lock before :class:`~peersync.DatabaseLocked`.
    """

    def __init__(self, path: str, *, timeout: float = 5.0, foreign_keys: bool = True) -> None:
        self.path = os.path.abspath(path)
        self.url = "sqlite:///" + self.path
        if not os.path.isfile(self.path):
            raise InvalidURL(f"no such database file: {path}")
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=rw"
        try:
            self.conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        try:
            with self._errors():
                self.conn.execute("PRAGMA schema_version").fetchone()
                self.conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        except StorageError as exc:
            self.conn.close()
            raise StorageError(f"{path} is not a usable SQLite database: {exc}") from exc
        self._scopes: dict[str, _Scope] = {}
        self._rep_rid: dict[int, bytes] = {}
        self._rep_idx: dict[bytes, int] = {}

    # -- plumbing -------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SQLitePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLitePeer({self.path!r})"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise DatabaseLocked(f"{self.path}: database is locked by another connection") from exc
            raise StorageError(f"{self.path}: {msg}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _txn(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                # Cached replica indexes may name rows the rollback removed.
                self._rep_rid.clear()
                self._rep_idx.clear()
                raise
            self.conn.execute("COMMIT")

    def _has_meta(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (PREFIX + "scopes",)).fetchone()
        return row is not None

    def _load_replicas(self) -> None:
        rows = self.conn.execute(f"SELECT idx, replica_id FROM {PREFIX}replicas").fetchall()
        self._rep_rid = {i: r for i, r in rows}
        self._rep_idx = {r: i for i, r in rows}

    def _rep_index(self, rid: bytes) -> int:
        idx = self._rep_idx.get(rid)
        if idx is None:
            cur = self.conn.execute(f"INSERT INTO {PREFIX}replicas (replica_id) VALUES (?)", (rid,))
            idx = int(cur.lastrowid or 0)
            self._rep_idx[rid] = idx
            self._rep_rid[idx] = rid
        return idx

    def _scope(self, name: str, *, reload: bool = False) -> _Scope:
        sc = self._scopes.get(name)
        if sc is not None and not reload:
            return sc
        if not self._has_meta():
            raise ScopeError(f"{self.path} has no peersync scopes; run 'peersync init' first")
        row = self.conn.execute(
            f"SELECT idx, replica_id, tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise ScopeError(f"unknown scope {name!r} in {self.path}")
        idx, rid, tables_json, fp = row
        try:
            tables = [S.introspect(self.conn, t) for t in json.loads(tables_json)]
        except TableError as exc:
            raise SchemaMismatch(f"scope {name!r} in {self.path}: {exc}") from exc
        now = S.fingerprint([t.schema for t in tables])
        if now != fp:
            raise SchemaMismatch(
                f"the tables of scope {name!r} in {self.path} changed since provisioning;"
                " deprovision and provision the scope again on every peer"
            )
        sc = _Scope(name, idx, rid, fp, tables)
        self._scopes[name] = sc
        return sc

    def _clock(self) -> int:
        tick: int = self.conn.execute(f"SELECT tick FROM {PREFIX}clock WHERE id = 0").fetchone()[0]
        return tick

    def _stored_knowledge(self, scope: str) -> tuple[Knowledge, Knowledge]:
        k, f = self.conn.execute(f"SELECT knowledge, forgotten FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
        return Knowledge.from_bytes(k), Knowledge.from_bytes(f)

    def _save_knowledge(self, scope: str, k: Knowledge) -> None:
        self.conn.execute(f"UPDATE {PREFIX}scopes SET knowledge = ? WHERE name = ?", (k.to_bytes(), scope))

    # -- provisioning ------------------------------------------------------------
    def provision(self, scope: str, tables: Sequence[str]) -> bool:
        """Create ``scope`` over ``tables``; True if created, False if it
        already exists with the same definition (idempotent). Raises
        :class:`~peersync.ScopeError` if it exists with another definition and
        :class:`~peersync.TableError` for a missing or keyless table."""
        if not scope or not tables:
            raise ScopeError("a scope needs a name and at least one table")
        with self._txn(write=True) as conn:
            for ddl in S.META_DDL:
                conn.execute(ddl)
            wanted = S.dependency_order(list({t.name: t for t in (S.introspect(conn, n) for n in tables)}.values()))
            names = [t.name for t in wanted]
            fp = S.fingerprint([t.schema for t in wanted])
            row = conn.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
            if row is not None:
                if sorted(json.loads(row[0])) == sorted(names) and row[1] == fp:
                    return False
                raise ScopeError(
                    f"scope {scope!r} already exists in {self.path} with tables {', '.join(json.loads(row[0]))};"
                    " deprovision it first or choose another name"
                )
            for t in wanted:
                self._track(conn, t)
            idx = conn.execute(f"SELECT COALESCE(MAX(idx), 0) + 1 FROM {PREFIX}scopes").fetchone()[0]
            empty = Knowledge.empty().to_bytes()
            conn.execute(
                f"INSERT INTO {PREFIX}scopes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (scope, idx, os.urandom(16), json.dumps(names), fp, empty, empty, now_ms()),
            )
        self._scopes.pop(scope, None)
        return True

    def _track(self, conn: sqlite3.Connection, t: Tracked) -> None:
        definition = json.dumps([list(t.schema.columns), list(t.schema.key), list(t.schema.types)])
        row = conn.execute(f"SELECT definition FROM {PREFIX}tracked WHERE tbl = ?", (t.name,)).fetchone()
        if row is not None:
            if row[0] != definition:
                raise ScopeError(
                    f"table {t.name} changed since another scope started tracking it; deprovision that scope first"
                )
            return
        for ddl in t.create_sql():
            conn.execute(ddl)
        base = self._clock()
        n = conn.execute(t.backfill_sql(), (base,)).rowcount
        conn.execute(f"UPDATE {PREFIX}clock SET tick = tick + ? WHERE id = 0", (max(n, 0),))
        conn.execute(t.index_sql())
        conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (?, ?)", (t.name, definition))

    def deprovision(self, scope: str) -> None:
        """Remove every peersync object of ``scope``; user data is untouched.
        Raises :class:`~peersync.ScopeError` for an unknown scope."""
        with self._txn(write=True) as conn:
            if not self._has_meta():
                raise ScopeError(f"unknown scope {scope!r} in {self.path}")
            row = conn.execute(f"SELECT idx, tables FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
            if row is None:
                raise ScopeError(f"unknown scope {scope!r} in {self.path}")
            idx, tables = row[0], json.loads(row[1])
            conn.execute(f"DELETE FROM {PREFIX}scopes WHERE name = ?", (scope,))
            conn.execute(f"DELETE FROM {PREFIX}conflicts WHERE scope = ?", (scope,))
            still = {t for (ts,) in conn.execute(f"SELECT tables FROM {PREFIX}scopes") for t in json.loads(ts)}
            for name in tables:
                trk = q(PREFIX + "t_" + name)
                if name in still:
                    conn.execute(f"UPDATE {trk} SET scope = NULL WHERE scope = ?", (idx,))
                    continue
                for op in ("ins", "upd", "del"):
                    conn.execute(f"DROP TRIGGER IF EXISTS {q(f'{PREFIX}{op}_{name}')}")
                conn.execute(f"DROP TABLE IF EXISTS {trk}")
                conn.execute(f"DELETE FROM {PREFIX}tracked WHERE tbl = ?", (name,))
            if not still:
                for m in S.META_TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{m}")
        self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        with self._txn(write=False) as conn:
            if not self._has_meta():
                return []
            return [r[0] for r in conn.execute(f"SELECT name FROM {PREFIX}scopes ORDER BY name")]

    def reidentify(self, scope: str) -> bytes:
        """Give ``scope`` a new replica id, for a copied database file.

        Rows changed here so far keep their versions under the old id (which
        the knowledge keeps), so peers that already hold them see nothing new.
        """
        with self._txn(write=True) as conn:
            sc = self._scope(scope, reload=True)
            stored, _ = self._stored_knowledge(scope)
            old = self._rep_index(sc.rid)
            for t in sc.tables:
                conn.execute(
                    f"UPDATE {q(t.tracking)} SET urep = ?, utick = lt, scope = ? WHERE scope IS NOT ? ",
                    (old, sc.idx, sc.idx),
                )
                conn.execute(f"UPDATE {q(t.tracking)} SET crep = ? WHERE crep IS NULL AND ctick IS NOT NULL", (old,))
            new = os.urandom(16)
            tick = self._clock()
            k = stored.add_range(sc.rid, 1, tick) if tick else stored
            conn.execute(f"UPDATE {PREFIX}scopes SET replica_id = ? WHERE name = ?", (new, scope))
            self._save_knowledge(scope, k.without(new))
        self._scopes.pop(scope, None)
        return new

    # -- the Peer interface ----------------------------------------------------------
    def schemas(self, scope: str) -> dict[str, TableSchema]:
        with self._errors():
            return dict(self._scope(scope).schemas)

    def describe(self, scope: str) -> ReplicaInfo:
        with self._txn(write=False):
            sc = self._scope(scope, reload=True)
            stored, forgotten = self._stored_knowledge(scope)
            tick = self._clock()
        k = stored.add_range(sc.rid, 1, tick) if tick else stored
        return ReplicaInfo(scope, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(t.schema for t in sc.tables))

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        max_rows = max(1, max_rows)
        with self._txn(write=False) as conn:
            sc = self._scope(scope)
            self._load_replicas()
            stored, _ = self._stored_knowledge(scope)
            tick = self._clock()
            made_with = stored.add_range(sc.rid, 1, tick) if tick else stored
            out: dict[str, list[Change]] = {}
            count = size = 0
            pos, last = after, upto
            truncated = False
            while pos < upto and not truncated:
                horizon = upto
                streams = []
                for t in sc.tables:
                    rows = conn.execute(t.enumerate_sql, (pos, upto, max_rows)).fetchall()
                    if len(rows) == max_rows:
                        horizon = min(horizon, rows[-1][0])
                    if rows:
                        streams.append([(r[0], t.name, r) for r in rows])
                merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda e: e[0])
                by_name = {t.name: t for t in sc.tables}
                for lt, name, r in merged:
                    if lt > horizon:
                        break
                    change = self._to_change(sc, by_name[name], r, known)
                    if change is None:
                        continue
                    out.setdefault(name, []).append(change)
                    count += 1
                    size += 12
                    for v in change[5]:
                        size += len(v) if isinstance(v, (str, bytes)) else 9
                    if count >= max_rows or size >= max_bytes:
                        last, truncated = lt, True
                        break
                pos = horizon
        batch = Batch(scope, sc.rid, sc.fingerprint, made_with, after + 1, last, last >= upto, out)
        return encode_batch(batch)

    def _to_change(self, sc: _Scope, t: Tracked, r: tuple[Any, ...], known: Knowledge) -> Change | None:
        lt, urep, utick, crep, ctick, ctime, deleted, scope, missing = r[:9]
        nk = len(t.kcols)
        if deleted:
            values = r[9 : 9 + nk]
        elif missing:
            return None  # tracked as live but gone: its delete trigger was bypassed
        else:
            values = r[9 + nk :]
        version: Version = (self._rep_rid[urep], utick) if scope == sc.idx else (sc.rid, lt)
        if known.contains(version[0], version[1]):
            return None
        if ctick is None:
            creation = version
        else:
            creation = (sc.rid if crep is None else self._rep_rid[crep], ctick)
        return (lt, bool(deleted), version, creation, ctime, tuple(values))

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        with self._errors():
            sc = self._scope(scope)
        batch = decode_batch(data, sc.schemas)
        if batch.scope != scope:
            raise ProtocolError(f"batch is for scope {batch.scope!r}, not {scope!r}")
        if batch.fingerprint != sc.fingerprint:
            raise SchemaMismatch(f"batch for scope {scope!r} has shape {batch.fingerprint}, this peer {sc.fingerprint}")
        if batch.source == sc.rid:
            raise ProtocolError("batch claims to come from this very replica")
        with self._txn(write=True):
            return _Apply(self, sc, batch, handler).run()

    def complete(self, scope: str, source_knowledge: Knowledge, excluded: Knowledge) -> Knowledge:
        with self._txn(write=True):
            sc = self._scope(scope)
            stored, _ = self._stored_knowledge(scope)
            merged = stored.union(source_knowledge.exclude(excluded)).without(sc.rid)
            if merged != stored:
                self._save_knowledge(scope, merged)
            tick = self._clock()
        return merged.add_range(sc.rid, 1, tick) if tick else merged

    def log_conflicts(self, scope: str, conflicts: Sequence[Conflict]) -> None:
        if conflicts:
            with self._txn(write=True):
                self._insert_conflicts(conflicts)

    def _insert_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        def ver(v: Version | None) -> str | None:
            return None if v is None else f"{v[0].hex()}@{v[1]}"

        at = now_ms()
        self.conn.executemany(
            f"INSERT INTO {PREFIX}conflicts (scope, tbl, key, type, policy, outcome, local_version,"
            " remote_version, local_row, remote_row, local_time, remote_time, detail, logged_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c.scope,
                    c.table,
                    _dumps(list(c.key)),
                    c.type.value,
                    c.policy,
                    c.outcome.value if c.outcome else "",
                    ver(c.local_version),
                    ver(c.remote_version),
                    None if c.local_row is None else _dumps(c.local_row),
                    None if c.remote_row is None else _dumps(c.remote_row),
                    c.local_time,
                    c.remote_time,
                    c.detail,
                    at,
                )
                for c in conflicts
            ],
        )

    # -- reading -------------------------------------------------------------------------
    def status(self, scope: str | None = None) -> list[Status]:
        """Status of one scope, or of every scope when ``scope`` is None."""
        names = [scope] if scope is not None else self.scopes()
        out = []
        with self._txn(write=False) as conn:
            for name in names:
                sc = self._scope(name, reload=True)
                stored, forgotten = self._stored_knowledge(name)
                tick = self._clock()
                rows = tombs = 0
                for t in sc.tables:
                    n, d = conn.execute(f"SELECT count(*), COALESCE(sum(del), 0) FROM {q(t.tracking)}").fetchone()
                    rows, tombs = rows + n, tombs + d
                (nconf,) = conn.execute(f"SELECT count(*) FROM {PREFIX}conflicts WHERE scope = ?", (name,)).fetchone()
                k = stored.add_range(sc.rid, 1, tick) if tick else stored
                out.append(
                    Status(name, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(sc.schemas), rows, tombs, nconf)
                )
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        """Logged conflicts, oldest first."""
        with self._txn(write=False) as conn:
            if scope is not None:
                self._scope(scope)
            elif not self._has_meta():
                return []
            sql = (
                f"SELECT id, scope, tbl, key, type, policy, outcome, local_version, remote_version, local_row,"
                f" remote_row, local_time, remote_time, detail, logged_at FROM {PREFIX}conflicts"
            )
            params: tuple[Any, ...] = ()
            if scope is not None:
                sql += " WHERE scope = ?"
                params = (scope,)
            sql += " ORDER BY id"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            rows = conn.execute(sql, params).fetchall()
        return [_conflict_from_row(r) for r in rows]


class _Apply:
    """One batch applied inside the caller's write transaction."""

    def __init__(self, peer: SQLitePeer, sc: _Scope, batch: Batch, handler: ConflictHandler) -> None:
        self.peer, self.conn, self.sc, self.batch, self.handler = peer, peer.conn, sc, batch, handler
        self.report = ApplyReport(last=batch.last, final=batch.final)
        self.learned: list[Version] = []
        self.excluded: list[Version] = []
        self.conflicts: list[Conflict] = []
        self.merges: list[tuple[Tracked, dict[str, Value]]] = []

    def run(self) -> ApplyReport:
        peer, sc, batch = self.peer, self.sc, self.batch
        peer._load_replicas()
        stored, _ = peer._stored_knowledge(sc.name)
        tick = peer._clock()
        self.known = stored.add_range(sc.rid, 1, tick) if tick else stored
        tables = [t for t in sc.tables if t.name in batch.changes]
        plans = {t.name: self._plan(t, batch.changes[t.name]) for t in tables}
        total = sum(len(p) for p in plans.values())
        if total:
            self.conn.execute(f"UPDATE {PREFIX}clock SET floor = tick, tick = tick + ? WHERE id = 0", (total,))
            next_lt = tick + 1
            for t in tables:
                for p in plans[t.name]:
                    p.stamp[len(t.kcols)] = next_lt
                    next_lt += 1
            failed = self._write(tables, plans)
            self.conn.execute(f"UPDATE {PREFIX}clock SET floor = NULL WHERE id = 0")
            for p, msg in failed:
                self._fail(p, msg)
        for t, row in self.merges:
            self.conn.execute(t.upsert_sql, [row[c] for c in t.schema.columns])
        learned = Knowledge.from_versions(self.learned)
        if batch.last >= batch.first:
            learned = learned.add_range(batch.source, batch.first, batch.last)
        excluded = Knowledge.from_versions(self.excluded)
        new = stored.union(learned.exclude(excluded)).without(sc.rid)
        if new != stored:
            peer._save_knowledge(sc.name, new)
        if self.conflicts:
            peer._insert_conflicts(self.conflicts)
        tick = peer._clock()
        self.report.excluded = excluded
        self.report.knowledge = new.add_range(sc.rid, 1, tick) if tick else new
        return self.report

    def _plan(self, t: Tracked, changes: list[Change]) -> list[_Pending]:
        sc, batch, known, report = self.sc, self.batch, self.known, self.report
        kpos = t.schema.key_positions
        keys = [c[5] if c[1] else tuple(c[5][i] for i in kpos) for c in changes]
        local = self._lookup(t, keys)
        out: list[_Pending] = []
        source = batch.source
        for change, key in zip(changes, keys, strict=True):
            lt, deleted, version, creation, ctime, _ = change
            report.received += 1
            vrid, vtick = version
            if vrid == sc.rid and not known.contains(vrid, vtick):
                raise ProtocolError("batch carries a version of this replica that it never made")
            loc = local.get(key)
            action = triage(version, loc, batch.made_with, known)
            if action is Action.SKIP_KNOWN:
                report.skipped_known += 1
                continue
            if vrid != source or vtick != lt:
                self.learned.append(version)
            if action is Action.CONFLICT:
                assert loc is not None
                if not self._conflict(t, change, key, loc):
                    continue
            out.append(_Pending(t, change, key, self._stamp(key, version, creation, ctime, deleted)))
        return out

    def _stamp(self, key: tuple[Value, ...], v: Version, c: Version, ctime: int, deleted: bool) -> list[Any]:
        peer, sc = self.peer, self.sc
        if c == v:
            crep, ctick = None, None
        elif c[0] == sc.rid:
            crep, ctick = None, c[1]
        else:
            crep, ctick = peer._rep_index(c[0]), c[1]
        # The local tick (after the key) is filled in once the batch is planned.
        return [*key, 0, peer._rep_index(v[0]), v[1], crep, ctick, ctime, 1 if deleted else 0, sc.idx]

    def _lookup(self, t: Tracked, keys: list[tuple[Value, ...]]) -> dict[tuple[Value, ...], LocalState]:
        sc, rep = self.sc, self.peer._rep_rid
        nk = len(t.kcols)
        out: dict[tuple[Value, ...], LocalState] = {}
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[i : i + _LOOKUP_CHUNK]
            params = [v for k in chunk for v in k]
            for r in self.conn.execute(t.lookup_sql(len(chunk)), params):
                lt, urep, utick, crep, ctick, ctime, deleted, scope = r[nk:]
                version = (rep[urep], utick) if scope == sc.idx else (sc.rid, lt)
                if ctick is None:
                    creation = version
                else:
                    creation = (sc.rid if crep is None else rep[crep], ctick)
                out[tuple(r[:nk])] = LocalState(version, creation, bool(deleted), ctime)
        return out

    def _conflict(self, t: Tracked, change: Change, key: tuple[Value, ...], loc: LocalState) -> bool:
        """Resolve one conflict; True when the incoming change is to be written."""
        lt, deleted, version, creation, ctime, values = change
        batch, sc = self.batch, self.sc
        kind = classify(loc, deleted, creation, batch.made_with, self.known)
        cols = t.schema.columns
        local_row = None
        if not loc.deleted:
            row = self.conn.execute(t.select_row_sql, key).fetchone()
            local_row = None if row is None else dict(zip(cols, row, strict=True))
        remote_row = None if deleted else dict(zip(cols, values, strict=True))
        conflict = Conflict(
            sc.name,
            t.name,
            key,
            kind,
            local_row,
            remote_row,
            loc.version,
            version,
            loc.time,
            ctime,
            policy_name(self.handler),
        )
        try:
            res = resolve(self.handler, conflict)
        except Exception as exc:  # a user callback failing must not abort the session
            res = Resolution(Outcome.DEFER)
            conflict = _replace(conflict, detail=f"callback raised {type(exc).__name__}: {exc}")
        self.report.conflicts += 1
        self.conflicts.append(_replace(conflict, outcome=res.outcome))
        if res.outcome is Outcome.DEFER:
            self.report.deferred += 1
            self._exclude(version, lt)
            return False
        if res.outcome is Outcome.MERGE:
            assert res.row is not None
            merged = {**(local_row or {}), **(remote_row or {}), **res.row}
            if any(merged.get(k) != v for k, v in zip(t.schema.key, key, strict=True)) or set(merged) != set(cols):
                raise ValueError("a merged row must keep the key and name only the table's columns")
            self.merges.append((t, merged))
            return False
        return res.outcome is Outcome.SOURCE

    def _exclude(self, version: Version, lt: int) -> None:
        self.excluded.append(version)
        self.excluded.append((self.batch.source, lt))

    def _write(self, tables: list[Tracked], plans: dict[str, list[_Pending]]) -> list[tuple[_Pending, str]]:
        """Write stamps and rows: upserts parents first, deletes children first.

        A group that fails (a foreign key, a constraint) is redone row by row;
        rows still failing are retried after the rest, until no progress.
        """
        conn = self.conn
        groups: list[list[_Pending]] = []
        for t in tables:
            ups = [p for p in plans[t.name] if not p.change[1]]
            if ups:
                groups.append(ups)
        for t in reversed(tables):
            dels = [p for p in plans[t.name] if p.change[1]]
            if dels:
                groups.append(dels)
        failed: list[tuple[_Pending, str]] = []
        for group in groups:
            t = group[0].table
            conn.execute("SAVEPOINT ps_group")
            try:
                self._write_rows(t, group)
                conn.execute("RELEASE ps_group")
                self.report.applied += len(group)
                continue
            except _APPLY_ERRORS:
                conn.execute("ROLLBACK TO ps_group")
                conn.execute("RELEASE ps_group")
            failed.extend(self._write_each(group))
        while failed:
            again = self._write_each([p for p, _ in failed])
            if len(again) == len(failed):
                break
            failed = again
        return failed

    def _write_rows(self, t: Tracked, rows: list[_Pending]) -> None:
        self.conn.executemany(t.stamp_sql, [p.stamp for p in rows])
        if rows[0].change[1]:
            self.conn.executemany(t.delete_sql, [p.key for p in rows])
        else:
            self.conn.executemany(t.upsert_sql, [p.change[5] for p in rows])

    def _write_each(self, rows: list[_Pending]) -> list[tuple[_Pending, str]]:
        failed = []
        for p in rows:
            self.conn.execute("SAVEPOINT ps_row")
            try:
                self._write_rows(p.table, [p])
            except _APPLY_ERRORS as exc:
                self.conn.execute("ROLLBACK TO ps_row")
                failed.append((p, str(exc)))
            else:
                self.report.applied += 1
            self.conn.execute("RELEASE ps_row")
        return failed

    def _fail(self, p: _Pending, msg: str) -> None:
        lt, deleted, version, _, ctime, values = p.change
        t = p.table
        self._exclude(version, lt)
        self.report.failed.append(
            Conflict(
                self.sc.name,
                t.name,
                p.key,
                ConflictType.ERROR,
                None,
                None if deleted else dict(zip(t.schema.columns, values, strict=True)),
                None,
                version,
                None,
                ctime,
                policy_name(self.handler),
                Outcome.FAILED,
                msg,
            )
        )


def _replace(c: Conflict, **kw: Any) -> Conflict:
    from dataclasses import replace

    return replace(c, **kw)


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _unjson(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"hex"} and isinstance(v["hex"], str):
            return bytes.fromhex(v["hex"])
        return {k: _unjson(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unjson(x) for x in v]
    return v


def _dumps(v: Any) -> str:
    return json.dumps(_jsonable(v), ensure_ascii=False)


def _version(s: str | None) -> Version | None:
    if s is None:
        return None
    rid, tick = s.split("@")
    return bytes.fromhex(rid), int(tick)


def _conflict_from_row(r: tuple[Any, ...]) -> Conflict:
    (cid, scope, tbl, key, kind, policy, outcome, lv, rv, lrow, rrow, lt, rt, detail, at) = r
    remote = _version(rv)
    assert remote is not None
    return Conflict(
        scope,
        tbl,
        tuple(_unjson(json.loads(key))),
        ConflictType(kind),
        None if lrow is None else _unjson(json.loads(lrow)),
        None if rrow is None else _unjson(json.loads(rrow)),
        _version(lv),
        remote,
        lt,
        rt,
        policy,
        Outcome(outcome) if outcome else None,
        detail,
        cid,
        at,
    )
