"""peersync's metadata tables, read and written the same way by every SQL
adapter: replica ids, each scope's knowledge, pending changes, applied
blocks, partial knowledge records and the conflict log.

A :class:`Meta` works inside the caller's transaction on the caller's
connection; it never begins or commits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import Conflict, ConflictType, Outcome, RawText, Value
from peersync._engine.names import Names

from .dialect import Connection, Dialect


class ScopeRef(Protocol):
    """What the metadata statements need of a provisioned scope."""

    name: str  # the scope's name
    idx: int  # its index in _peersync_scopes (pending rows refer to it)
    rid: bytes  # its replica id in this database


PREFIX = "_peersync_"
PENDING = PREFIX + "pending"
NAMES = PREFIX + "names"  # per scope, its local names where they differ from the global ones
# Portable SQL (SQLite, PostgreSQL, MariaDB): run by provisioning, before its transaction.
NAMES_DDL = f"CREATE TABLE IF NOT EXISTS {NAMES} (scope VARCHAR(255) NOT NULL PRIMARY KEY, names TEXT NOT NULL)"
APPLIED_KEPT = 64  # applied blocks remembered per scope (older ones are just not skipped)

CONFLICT_COLUMNS = (
    "id, scope, tbl, key, type, policy, outcome, local_version, remote_version, local_row,"
    " remote_row, local_time, remote_time, detail, logged_at"
)


def now_ms() -> int:
    return int(time.time() * 1000)


def range_rows(known: Knowledge, local: dict[bytes, int], own: bytes, after: int) -> list[tuple[int, int, int]]:
    """``known`` as rows ``(replica index, lo, hi + 1)`` in this database's
    replica indexes (its own replica ``own`` is index 0), ready for a ranges
    table probed by :func:`in_ranges`. Replicas unknown here are left out (no
    row here has their versions); ranges of ``own`` that end at or before
    ``after`` too (enumeration starts after it)."""
    rows: list[tuple[int, int, int]] = []
    for rid in known.replicas():
        idx = 0 if rid == own else local.get(rid)
        if idx is None:
            continue
        rows.extend((idx, lo, hi + 1) for lo, hi in known.ranges(rid) if idx or hi > after)
    return rows


def in_ranges(table: str, rep: str, tick: str, where: str = "") -> str:
    """SQL truth value: ``tick`` lies in one of replica ``rep``'s half-open
    ranges ``[lo, hi)`` stored in ``table`` (columns rep, lo, hi, keyed by rep
    and lo: one index probe, whatever the number of ranges)."""
    return (
        f"COALESCE((SELECT r.hi > {tick} FROM {table} AS r WHERE {where}r.rep = {rep} AND r.lo <= {tick}"
        " ORDER BY r.lo DESC LIMIT 1), 0)"
    )


def reported(scope: str) -> tuple[str, str]:
    """SQL for the version (replica, tick) a tracking row ``t`` is reported
    with through a scope (docs/design.md, "The session"): its origin version
    when its last change arrived through that scope (``scope``: SQL for the
    scope's index, e.g. a placeholder), else (0, its local tick): 0 is this
    replica."""
    return (
        f"CASE WHEN t.scope = {scope} THEN t.urep ELSE 0 END",
        f"CASE WHEN t.scope = {scope} THEN t.utick ELSE t.lt END",
    )


def row_flags(deleted: str, marks: dict[int, int] | None) -> str:
    """SQL for a wire row's flags: ``deleted`` (0 or 1), plus ``2 * i`` when
    the tracking row ``t`` was applied from the i-th session not completed
    here that the batch names (``marks``: its partial id -> i)."""
    if not marks:
        return deleted
    cases = " ".join(f"WHEN {mw} THEN {2 * i}" for mw, i in marks.items())
    return f"{deleted} + CASE t.mw {cases} ELSE 0 END"


class Meta:
    """The metadata of one database, over its connection.

    Replica ids are stored once (``_peersync_replicas``) and referred to by
    a small index; index 0 in rows always means the scope's own replica.
    """

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn, self.d = conn, dialect
        self.rep_rid: dict[int, bytes] = {}
        self.rep_idx: dict[bytes, int] = {}

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run a shared statement (``?`` placeholders) in this dialect; the cursor."""
        return self.conn.execute(self.d.sql(statement), tuple(params))

    # -- scopes --------------------------------------------------------------------
    def has_meta(self) -> bool:
        """Whether this database holds peersync's metadata tables."""
        return self.execute(self.d.table_exists, (PREFIX + "scopes",)).fetchone() is not None

    def scope_names(self) -> list[str]:
        """The provisioned scopes, by name (none without metadata tables)."""
        if not self.has_meta():
            return []
        return [r[0] for r in self.execute(f"SELECT name FROM {PREFIX}scopes ORDER BY name").fetchall()]

    def tracked_ids(self) -> dict[str, int]:
        """Each tracked table's id in the change log, by table name."""
        return {r[0]: int(r[1]) for r in self.execute(f"SELECT tbl, id FROM {PREFIX}tracked").fetchall()}

    def names(self, scope: str) -> Names:
        """Scope ``scope``'s local names (none mapped in a database provisioned
        before names existed, or without a names file)."""
        if self.execute(self.d.table_exists, (NAMES,)).fetchone() is None:
            return Names()
        row = self.execute(f"SELECT names FROM {NAMES} WHERE scope = ?", (scope,)).fetchone()
        return Names.from_json(None if row is None else str(row[0]))

    def save_names(self, scope: str, names: Names) -> None:
        """Store ``names`` for ``scope`` (provisioning ran :data:`NAMES_DDL`)."""
        self.execute(f"DELETE FROM {NAMES} WHERE scope = ?", (scope,))
        if names:
            self.execute(f"INSERT INTO {NAMES} (scope, names) VALUES (?, ?)", (scope, names.to_json()))

    # -- replicas ------------------------------------------------------------
    def forget_cache(self) -> None:
        """After a rollback: cached indexes may name rows that are gone."""
        self.rep_rid.clear()
        self.rep_idx.clear()

    def load_replicas(self) -> None:
        rows = self.execute(f"SELECT idx, replica_id FROM {PREFIX}replicas").fetchall()
        self.rep_rid = {int(i): bytes(r) for i, r in rows}
        self.rep_idx = {r: i for i, r in self.rep_rid.items()}

    def rep_index(self, rid: bytes) -> int:
        """The index of replica ``rid``, stored on first use."""
        idx = self.rep_idx.get(rid)
        if idx is None:
            idx = self.d.insert_id(self.conn, f"INSERT INTO {PREFIX}replicas (replica_id) VALUES (?)", (rid,), "idx")
            self.rep_idx[rid] = idx
            self.rep_rid[idx] = rid
        return idx

    # -- knowledge -------------------------------------------------------------
    def stored_knowledge(self, scope: str, *, lock: bool = False) -> tuple[Knowledge, Knowledge]:
        """The scope's stored knowledge of other replicas, and its forgotten
        knowledge; with ``lock``, its row stays locked until the transaction ends."""
        k, f = self.execute(
            f"SELECT knowledge, forgotten FROM {PREFIX}scopes WHERE name = ?{self.d.for_update if lock else ''}",
            (scope,),
        ).fetchone()
        return Knowledge.from_bytes(bytes(k)), Knowledge.from_bytes(bytes(f))

    def pending(self, sc: ScopeRef) -> Knowledge:
        """The versions kept out of knowledge until their rows apply, with
        the source ticks they came at (``_peersync_pending``)."""
        versions: list[Version] = []
        for vrid, vtick, srid, stick in self.execute(
            f"SELECT v.replica_id, p.vtick, s.replica_id, p.stick FROM {PENDING} AS p"
            f" JOIN {PREFIX}replicas AS v ON v.idx = p.vrep JOIN {PREFIX}replicas AS s ON s.idx = p.srep"
            " WHERE p.scope = ?",
            (sc.idx,),
        ).fetchall():
            versions += ((bytes(vrid), int(vtick)), (bytes(srid), int(stick)))
        return Knowledge.from_versions(versions)

    def save_knowledge(self, sc: ScopeRef, k: Knowledge) -> Knowledge:
        """Store ``k`` as the scope's knowledge of other replicas, minus every
        pending change (so no merge, from any peer, claims one); returns what
        was stored."""
        k = k.exclude(self.pending(sc)).without(sc.rid)
        self.execute(f"UPDATE {PREFIX}scopes SET knowledge = ? WHERE name = ?", (k.to_bytes(), sc.name))
        return k

    def release_beaten(self, sc: ScopeRef, source: Knowledge) -> None:
        """Forget pending changes whose version a completed session's source
        knows. The source's row for that key holds or beats the version, and
        that row came in this session or was not sent because this replica
        holds or beats it too (a session that kept a row out merges nothing):
        so this replica's row beats the version as well. Without this, a
        change that lost everywhere stays pending for good, and this replica's
        next edit of the row conflicts with it falsely elsewhere."""
        if source.is_empty():
            return
        beaten = [
            (rep, tick)
            for rep, rid, tick in self.execute(
                f"SELECT DISTINCT p.vrep, r.replica_id, p.vtick FROM {PENDING} AS p"
                f" JOIN {PREFIX}replicas AS r ON r.idx = p.vrep WHERE p.scope = ?",
                (sc.idx,),
            ).fetchall()
            if source.contains(bytes(rid), int(tick))
        ]
        for rep, tick in beaten:
            self.execute(f"DELETE FROM {PENDING} WHERE scope = ? AND vrep = ? AND vtick = ?", (sc.idx, rep, tick))

    # -- applied blocks and partial knowledge ------------------------------------
    def record_applied(self, scope: str, lo: int, hi: int, made_with: Knowledge) -> None:
        """Remember that local ticks ``lo..hi`` hold only rows applied from a
        batch made with ``made_with``; extends the previous block of the same
        session. A source skips such a block for a destination that knows
        ``made_with``."""
        if hi < lo:
            return
        blob = made_with.to_bytes()
        prev = self.execute(
            f"SELECT lo, hi, made_with FROM {PREFIX}applied WHERE scope = ? ORDER BY lo DESC LIMIT 1", (scope,)
        ).fetchone()
        if prev is not None and prev[1] == lo - 1 and bytes(prev[2]) == blob:
            self.execute(f"UPDATE {PREFIX}applied SET hi = ? WHERE scope = ? AND lo = ?", (hi, scope, prev[0]))
            return
        self.execute(f"INSERT INTO {PREFIX}applied VALUES (?, ?, ?, ?)", (scope, lo, hi, blob))
        old = self.execute(
            f"SELECT lo FROM {PREFIX}applied WHERE scope = ? ORDER BY lo DESC LIMIT 1 OFFSET {APPLIED_KEPT - 1}",
            (scope,),
        ).fetchone()
        if old is not None:
            self.execute(f"DELETE FROM {PREFIX}applied WHERE scope = ? AND lo < ?", (scope, old[0]))

    def skippable(self, scope: str, known: Knowledge) -> list[tuple[int, int]]:
        """Applied blocks whose every row a destination that knows ``known`` holds."""
        return [
            (int(lo), int(hi))
            for lo, hi, blob in self.execute(
                f"SELECT lo, hi, made_with FROM {PREFIX}applied WHERE scope = ? ORDER BY lo", (scope,)
            ).fetchall()
            if known.contains_knowledge(Knowledge.from_bytes(bytes(blob)))
        ]

    def partials(self, scope: str | None = None) -> list[tuple[int, Knowledge]]:
        """The partial knowledge records (of one scope, or all), by id."""
        sql = f"SELECT id, knowledge FROM {PREFIX}partial"
        rows = (
            self.execute(sql + " WHERE scope = ? ORDER BY id", (scope,))
            if scope
            else self.execute(sql + " ORDER BY id")
        )
        return [(int(i), Knowledge.from_bytes(bytes(b))) for i, b in rows.fetchall()]

    def partial_id(self, scope: str, knowledge: Knowledge) -> int:
        """The record of a source's knowledge for rows applied from it (reused
        by content; ids are never reused, so stale references stay harmless)."""
        blob = knowledge.to_bytes()
        row = self.execute(
            f"SELECT id FROM {PREFIX}partial WHERE scope = ? AND knowledge = ?", (scope, blob)
        ).fetchone()
        if row is not None:
            return int(row[0])
        self.execute(f"UPDATE {PREFIX}clock SET partial_seq = partial_seq + 1 WHERE id = 0")
        (mw,) = self.execute(f"SELECT partial_seq FROM {PREFIX}clock WHERE id = 0").fetchone()
        self.execute(f"INSERT INTO {PREFIX}partial VALUES (?, ?, ?)", (mw, scope, blob))
        return int(mw)

    def drop_partials_held(self, scope: str, whole: Knowledge) -> None:
        """Partial records of sessions whose knowledge ``whole`` now holds need no record."""
        for mw, k in self.partials(scope):
            if whole.contains_knowledge(k):
                self.execute(f"DELETE FROM {PREFIX}partial WHERE id = ?", (mw,))

    # -- the conflict log ---------------------------------------------------------
    def insert_conflicts(self, conflicts: Iterable[Conflict]) -> None:
        at = now_ms()
        cols = (
            "policy, outcome, local_version, remote_version, local_row, remote_row, local_time, remote_time,"
            " detail, logged_at, scope, tbl, key, type"
        )
        for c in conflicts:
            values = (
                c.policy,
                c.outcome.value if c.outcome else "",
                _ver(c.local_version),
                _ver(c.remote_version),
                None if c.local_row is None else dumps(c.local_row),
                None if c.remote_row is None else dumps(c.remote_row),
                c.local_time,
                c.remote_time,
                c.detail,
                at,
                c.scope,
                c.table,
                dumps(list(c.key)),
                c.type.value,
            )
            # A row that keeps failing has one error entry, brought up to date
            # each time, not one more per session.
            if c.type is ConflictType.ERROR:
                sets = ", ".join(f"{n.strip()} = ?" for n in cols.split(",")[:10])
                cur = self.execute(
                    f"UPDATE {PREFIX}conflicts SET {sets} WHERE scope = ? AND tbl = ? AND key = ? AND type = ?", values
                )
                if cur.rowcount:
                    continue
            self.execute(f"INSERT INTO {PREFIX}conflicts ({cols}) VALUES ({', '.join('?' * 14)})", values)

    def conflicts(self, scope: str | None = None, limit: int | None = None) -> list[Conflict]:
        """Logged conflicts, oldest first, in the scopes' global names (the
        log keeps this database's own)."""
        sql = f"SELECT {CONFLICT_COLUMNS} FROM {PREFIX}conflicts"
        params: tuple[Any, ...] = ()
        if scope is not None:
            sql += " WHERE scope = ?"
            params = (scope,)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = [_conflict_from_row(r) for r in self.execute(sql, params).fetchall()]
        names: dict[str, Names] = {}
        for c in out:
            if c.scope not in names:
                names[c.scope] = self.names(c.scope)
        return [names[c.scope].conflict_out(c) for c in out]


# -- the conflict log's row codec: JSON for rows and keys, "hex@tick" versions ----
def _jsonable(v: Value) -> Any:
    """A column value for the conflict log's JSON: bytes and TEXT that is not
    UTF-8 become objects (``{"hex": ...}``, ``{"text_hex": ...}``)."""
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, RawText):
        return {"text_hex": v.data.hex()}
    return v


def _unjson(v: Any) -> Value:
    if isinstance(v, dict) and len(v) == 1:
        ((kind, text),) = v.items()
        if kind == "hex" and isinstance(text, str):
            return bytes.fromhex(text)
        if kind == "text_hex" and isinstance(text, str):
            return RawText(bytes.fromhex(text))
    return v


def dumps(v: dict[str, Value] | list[Value]) -> str:
    out = {k: _jsonable(x) for k, x in v.items()} if isinstance(v, dict) else [_jsonable(x) for x in v]
    return json.dumps(out, ensure_ascii=False)


def _row(text: str | None) -> dict[str, Value] | None:
    return None if text is None else {k: _unjson(x) for k, x in json.loads(text).items()}


def _ver(v: Version | None) -> str | None:
    return None if v is None else f"{v[0].hex()}@{v[1]}"


def _version(s: str | None) -> Version | None:
    if s is None:
        return None
    rid, tick = s.split("@")
    return bytes.fromhex(rid), int(tick)


def _conflict_from_row(r: Sequence[Any]) -> Conflict:
    (cid, scope, tbl, key, kind, policy, outcome, lv, rv, lrow, rrow, lt, rt, detail, at) = r
    remote = _version(rv)
    assert remote is not None
    return Conflict(
        scope,
        tbl,
        tuple(_unjson(x) for x in json.loads(key)),
        ConflictType(kind),
        _row(lrow),
        _row(rrow),
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
