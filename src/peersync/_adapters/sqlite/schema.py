"""SQLite objects peersync creates: metadata tables, tracking tables, triggers.

Per database (shared by every scope in it):

- ``_peersync_log``: the change log: one row per change, its rowid the change's
  local tick (so a tick costs an append, not a counter update), naming the
  tracked table (``tbl``) and key; superseded entries are compacted away;
- ``_peersync_clock``: one row: the apply ``floor``;
- ``_peersync_replicas``: small integer ids for foreign replica ids;
- ``_peersync_scopes``: one row per scope: replica id, knowledge, fingerprint,
  and how far compaction got (``compacted``: every entry up to it was checked
  once; ``swept``: where the sweep over older entries stops, see ``_compact``);
- ``_peersync_tracked``: which user tables are tracked;
- ``_peersync_partial``: knowledge of sources whose sessions have not completed
  here; tracking rows applied from them point at it (``mw``), because their
  versions supersede more than this replica's own knowledge says;
- ``_peersync_applied``: blocks of ticks that applied batches took, with the
  source's made-with knowledge: a peer that knows all of it can skip the block;
- ``_peersync_conflicts``: the conflict log;
- ``_peersync_pending``: changes kept out of knowledge (a row that failed to
  apply, a deferred conflict), one entry per delivery: the row's table and key,
  its version and the source's local tick for it. Knowledge never claims
  either while the entry exists, whatever is merged from other peers, so the
  change comes again; the entry goes once the row holds or beats the version;
- ``_peersync_home``: per scope, the file it lives in (inode number and path)
  and ``mark``, the newest tick at the last peersync write in that file: a
  copy or a restored backup is told apart from its original by the first, and
  ``reidentify`` keeps the copy's versions from before the copy by the second.

Per tracked table ``T`` (shared by every scope that holds it): ``_peersync_t_T``
with the key (``k0, k1, ...``), the local tick ``lt`` of the last change here
(its entry in the log), the origin version ``urep/utick`` and ``scope`` when the last change
arrived through a scope (all NULL for a local change), the creation version
``crep/ctick`` (NULL when equal to the update version), the change time and
the tombstone flag; and three triggers that stamp every insert, update and
delete made by any program.

While peersync applies a batch it stamps the rows it is about to write with
ticks above ``_peersync_clock.floor``; the triggers skip exactly those rows, so
their tracking is written once, while side effects (cascades, users' triggers)
are tracked like any local change. Where nothing can have side effects (no
trigger of the database's own, no foreign key action), the apply sets the
floor to :data:`SKIP_ALL` instead and the triggers skip every row without
probing the tracking table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from peersync._adapters.sql import meta as _meta
from peersync._adapters.sql.dialect import SQLITE
from peersync._adapters.sql.meta import reported, row_flags
from peersync._adapters.sql.tracked import ScopeBase, TrackedNames, user_table
from peersync._engine.errors import TableError
from peersync._engine.model import TableSchema
from peersync._engine.schema import digest, fingerprint
from peersync._engine.types import SQLITE_AFFINITY_TYPES, SQLITE_TYPES, Column, column, parse_declared

PREFIX = _meta.PREFIX
PENDING = _meta.PENDING
in_ranges = _meta.in_ranges

# The apply's floor where nothing can have side effects: the triggers skip every row.
SKIP_ALL = -1
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
# A change to a live row keeps its incarnation's creation version; a change on
# top of a tombstone starts a new incarnation.
KEEP_CREATION = (
    "crep = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL THEN urep ELSE crep END,"
    " ctick = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END"
)
TRACKING_COLUMNS = ("lt", "urep", "utick", "crep", "ctick", "ctime", "del", "scope", "mw")

HOME_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PREFIX}home (scope TEXT PRIMARY KEY, file TEXT NOT NULL, path TEXT NOT NULL,"
    " mark INTEGER NOT NULL)"
)
# Sessions whose end was recorded, so a retried ``finish`` changes nothing.
SESSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PREFIX}sessions (scope TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (scope, id)) WITHOUT ROWID"
)
META_DDL = (
    f"CREATE TABLE IF NOT EXISTS {PREFIX}clock (id INTEGER PRIMARY KEY CHECK (id = 0), floor INTEGER,"
    " partial_seq INTEGER NOT NULL DEFAULT 0)",
    f"INSERT OR IGNORE INTO {PREFIX}clock (id) VALUES (0)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}log (lt INTEGER PRIMARY KEY, tbl INTEGER NOT NULL, k0)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}evict (tbl INTEGER NOT NULL, ix INTEGER NOT NULL, k0)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}partial (id INTEGER PRIMARY KEY, scope TEXT NOT NULL,"
    " knowledge BLOB NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}replicas (idx INTEGER PRIMARY KEY, replica_id BLOB NOT NULL UNIQUE)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}scopes (name TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE,"
    " replica_id BLOB NOT NULL UNIQUE, tables TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " knowledge BLOB NOT NULL, forgotten BLOB NOT NULL, created_at INTEGER NOT NULL,"
    " compacted INTEGER NOT NULL DEFAULT 0, swept INTEGER NOT NULL DEFAULT 0)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}tracked (tbl TEXT PRIMARY KEY, definition TEXT NOT NULL,"
    " id INTEGER NOT NULL UNIQUE)",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}applied (scope TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,"
    " made_with BLOB NOT NULL, PRIMARY KEY (scope, lo)) WITHOUT ROWID",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}pending (scope INTEGER NOT NULL, tbl INTEGER NOT NULL,"
    " vrep INTEGER NOT NULL, vtick INTEGER NOT NULL, srep INTEGER NOT NULL, stick INTEGER NOT NULL, k0,"
    " UNIQUE (scope, srep, stick))",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}conflicts (id INTEGER PRIMARY KEY, scope TEXT NOT NULL,"
    " tbl TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, policy TEXT NOT NULL, outcome TEXT NOT NULL,"
    " local_version TEXT, remote_version TEXT NOT NULL, local_row TEXT, remote_row TEXT,"
    " local_time INTEGER, remote_time INTEGER NOT NULL, detail TEXT NOT NULL, logged_at INTEGER NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {PREFIX}conflicts_row ON {PREFIX}conflicts (scope, tbl, key)",
    HOME_DDL,
    SESSIONS_DDL,
)
META_TABLES = (
    "clock", "log", "evict", "partial", "replicas", "scopes", "tracked", "applied", "conflicts", "pending", "home",
    "sessions", "names", "finals",
)  # fmt: skip
EVICT = PREFIX + "evict"
LOG = PREFIX + "log"
HOME = PREFIX + "home"


q = SQLITE.quote


def type_class(declared: str) -> str:
    """SQLite's affinity rules (section 3.1 of the datatype docs)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if "BLOB" in t or not t:
        return "blob"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "real"
    return "numeric"


def column_type(name: str, declared: str, *, nullable: bool) -> Column:
    """A column of a SQLite table in the engine's vocabulary: by its declared
    type's name when that says what it means (:data:`SQLITE_TYPES`: BOOLEAN,
    DATE, DATETIME, UUID, JSON, DECIMAL(p,s), ...), otherwise by its
    affinity (VARCHAR(n) is text, BIGINT integer, no type at all bytes).
    Sizes are kept as declared; SQLite itself enforces none of them."""
    tname, params = parse_declared(declared)
    vtype = SQLITE_TYPES.get(tname) or SQLITE_AFFINITY_TYPES[type_class(declared)]
    return column(name, vtype, params, nullable=nullable, declared=declared)


def affinity_fingerprint(tables: Sequence[TableSchema]) -> str:
    """The fingerprint as peersync computed it before the type vocabulary:
    over SQLite affinities (``types``) instead of canonical types."""
    return digest([t.name, [list(c) for c in zip(t.columns, t.types, strict=True)], list(t.key)] for t in tables)


def fingerprint_holds(stored: str, tables: Sequence[TableSchema]) -> bool:
    """Does a scope's stored fingerprint describe ``tables`` as they are?

    Scopes provisioned before the type vocabulary stored the affinity
    fingerprint; it is accepted as long as it matches, and the current one
    (:func:`~peersync._engine.schema.fingerprint`) is what the scope reports
    to peers. ``migrate`` and ``repair`` store the current one.
    """
    return stored == fingerprint(tables) or stored == affinity_fingerprint(tables)


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key of a tracked table, as ``pragma_foreign_key_list`` reports it."""

    parent: str
    columns: tuple[str, ...]  # in the child
    to: tuple[str | None, ...]  # in the parent; None for its primary key
    on_delete: str  # NO ACTION, RESTRICT, CASCADE, SET NULL or SET DEFAULT


@dataclass(frozen=True)
class Tracked(TrackedNames):
    """A user table with its tracking table and the SQL peersync runs on it."""

    schema: TableSchema
    rowid_key: bool  # the key is the table's rowid: the tracking table uses it too
    depends_on: tuple[str, ...]  # tables this one references through foreign keys
    fks: tuple[ForeignKey, ...] = ()
    tid: int = 0  # this table's id in the change log (``_peersync_tracked.id``)
    # UNIQUE indexes other than the key: (column, collation) pairs each
    uniques: tuple[tuple[tuple[str, str], ...], ...] = ()
    # The collation of each key column (``BINARY`` unless declared otherwise):
    # the tracking table's key compares the same way, so 'urgent' and 'URGENT'
    # under NOCASE are one row here too, and a case change rewrites the key.
    kcolls: tuple[str, ...] = ()

    def kcoll(self, i: int) -> str:
        """`` COLLATE X`` for key column ``i`` when it is not BINARY, else ''."""
        coll = self.kcolls[i] if i < len(self.kcolls) else "BINARY"
        return "" if coll.upper() == "BINARY" else f" COLLATE {coll}"

    def key_case_sets(self, source: str = "excluded") -> list[str]:
        """``k = source.k`` for key columns with a collation, whose letter case may change."""
        return [f"{k} = {source}.{k}" for i, k in enumerate(self.kcols) if self.kcoll(i)]

    def user_key_case_sets(self) -> list[str]:
        return [f"{q(c)} = excluded.{q(c)}" for i, c in enumerate(self.schema.key) if self.kcoll(i)]

    def _log_match(self, alias: str, log: str) -> str:
        return " AND ".join(f"{alias}.{k} = {log}.{k}" for k in self.kcols)

    def first_time_sql(self) -> str:
        """Change time of the first change after ``?`` (a batch's base time)."""
        return (
            f"SELECT t.ctime FROM {LOG} AS l JOIN {q(self.tracking)} AS t ON {self._log_match('t', 'l')}"
            f" AND t.lt = l.lt WHERE l.lt > ? AND l.tbl = {self.tid} ORDER BY l.lt LIMIT 1"
        )

    def compact_sql(self) -> str:
        """Drop log entries in ``(:from, :below)`` that a later change superseded
        (their row's tracking names a later tick)."""
        return (
            f"DELETE FROM {LOG} WHERE lt > :from AND lt < :below AND tbl = {self.tid} AND NOT EXISTS"
            f" (SELECT 1 FROM {q(self.tracking)} AS t WHERE {self._log_match('t', LOG)} AND t.lt = {LOG}.lt)"
        )

    def _key_match(self, alias: str, row: str) -> str:
        return " AND ".join(f"{alias}.{k} = {row}.{q(c)}" for k, c in zip(self.kcols, self.schema.key, strict=True))

    def wire_sql(self, filter_known: bool, marks: dict[int, int] | None = None) -> tuple[str, str]:
        """Two queries over the rows with local tick in ``(:after, :horizon]``,
        skipping those whose reported version is in ``temp._peersync_known``
        when ``filter_known``; parameters ``:after``, ``:horizon``, ``:first0``
        (first tick - 1), ``:base`` (base time) and ``:scope``.

        The first reads every row, in tick order, as ``[tick_offset,
        time_offset, *values]``: a row in ``_wire``'s short form as it is;
        any other with its tick offset negated. The second reads the header
        ``[tick_offset, flags, version_replica, version_tick, creation_replica,
        creation_tick]`` of only those other rows, in the same order: the
        reader completes them from it, in step. Short rows so cost no header
        columns to read, which is most of an initial sync."""
        s = self.schema
        kmap = dict(zip(s.key, self.kcols, strict=True))
        vals = ", ".join(f"t.{kmap[c]}" if c in kmap else f"u.{q(c)}" for c in s.columns)
        rep, tick = reported(":scope")
        # Rows applied from a session that has not completed here carry the
        # part of that source's knowledge this replica lacks (``extras``).
        flags = row_flags("t.del", marks)
        short = "t.del = 0 AND t.scope IS NOT :scope AND t.ctick IS NULL"
        if marks:
            short += f" AND (t.mw IS NULL OR t.mw NOT IN ({', '.join(str(mw) for mw in marks)}))"

        def has(rep: str, tick: str) -> str:
            return in_ranges("temp._peersync_known", rep, tick)

        # A row is skipped when its reported version is known, or when its
        # local tick here is: knowing (this replica, lt) means holding this
        # row as of lt or newer (a retry pass then sends only failed rows).
        known = (
            f" AND NOT {has(rep, tick)} AND (t.scope IS NOT :scope OR NOT {has('0', 't.lt')})" if filter_known else ""
        )
        rows = (
            f" FROM {LOG} AS l JOIN {q(self.tracking)} AS t ON {self._log_match('t', 'l')} AND t.lt = l.lt"
            f" LEFT JOIN {q(self.name)} AS u ON {self._key_match('t', 'u')}"
            f" WHERE l.lt > :after AND l.lt <= :horizon AND l.tbl = {self.tid}"
            f" AND (t.del = 1 OR u.{q(s.key[0])} IS NOT NULL){known}"
        )
        return (
            f"SELECT CASE WHEN {short} THEN t.lt - :first0 ELSE :first0 - t.lt END, t.ctime - :base, {vals}"
            f"{rows} ORDER BY l.lt",
            f"SELECT t.lt - :first0, {flags}, {rep}, CASE WHEN t.scope = :scope THEN t.utick END,"
            " CASE WHEN t.ctick IS NULL THEN NULL ELSE COALESCE(t.crep, 0) END, t.ctick"
            f"{rows} AND NOT ({short}) ORDER BY l.lt",
        )

    def lookup_sql(self, n: int) -> str:
        cols = (
            "k0, lt, urep, utick, crep, ctick, ctime, del, scope"
            if len(self.kcols) == 1
            else (", ".join(self.kcols) + ", lt, urep, utick, crep, ctick, ctime, del, scope")
        )
        if len(self.kcols) == 1:
            cond = "k0 IN (" + ",".join("?" * n) + ")"
        else:
            tup = "(" + ",".join("?" * len(self.kcols)) + ")"
            cond = "(" + ",".join(self.kcols) + ") IN (VALUES " + ",".join([tup] * n) + ")"
        return f"SELECT {cols} FROM {q(self.tracking)} WHERE {cond}"

    @cached_property
    def upsert_sql(self) -> str:
        s = self.schema
        cols = ", ".join(q(c) for c in s.columns)
        others = [f"{q(c)} = excluded.{q(c)}" for c in s.columns if c not in s.key] + self.user_key_case_sets()
        action = "DO UPDATE SET " + ", ".join(others) if others else "DO NOTHING"
        return (
            f"INSERT INTO {q(s.name)} ({cols}) VALUES ({', '.join('?' * len(s.columns))})"
            f" ON CONFLICT ({', '.join(q(k) for k in s.key)}) {action}"
        )

    def write_row(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Write one row: insert it, or set only the columns whose value (or
        storage type) changes; an identical row is not written."""
        s = self.schema
        key = [row[k] for k in s.key]
        old = conn.execute(self.select_row_sql, key).fetchone()
        if old is None:
            conn.execute(self.upsert_sql, [row[c] for c in s.columns])
            return
        cased = {k for i, k in enumerate(s.key) if self.kcoll(i)}
        changed = [
            c
            for c, was in zip(s.columns, old, strict=True)
            if (c not in s.key or c in cased) and not (type(was) is type(row[c]) and was == row[c])
        ]
        if changed:
            cond = " AND ".join(f"{q(k)} = ?" for k in s.key)
            conn.execute(
                f"UPDATE {q(s.name)} SET {', '.join(f'{q(c)} = ?' for c in changed)} WHERE {cond}",
                [*(row[c] for c in changed), *key],
            )

    @cached_property
    def delete_sql(self) -> str:
        cond = " AND ".join(f"{q(k)} = ?" for k in self.schema.key)
        return f"DELETE FROM {q(self.name)} WHERE {cond}"

    @cached_property
    def select_row_sql(self) -> str:
        cond = " AND ".join(f"{q(k)} = ?" for k in self.schema.key)
        return f"SELECT {', '.join(q(c) for c in self.schema.columns)} FROM {q(self.name)} WHERE {cond}"

    # -- DDL -------------------------------------------------------------------
    def create_sql(self) -> list[str]:
        s, trk = self.schema, q(self.tracking)
        meta = (
            "lt INTEGER NOT NULL, urep INTEGER, utick INTEGER, crep INTEGER, ctick INTEGER,"
            " ctime INTEGER NOT NULL, del INTEGER NOT NULL DEFAULT 0, scope INTEGER, mw INTEGER"
        )
        if self.rowid_key:
            table = f"CREATE TABLE {trk} (k0 INTEGER PRIMARY KEY, {meta})"
        else:
            decl = ", ".join(f"k{i}{self.kcoll(i)}" for i in range(len(s.key)))
            keys = ", ".join(self.kcols)
            table = f"CREATE TABLE {trk} ({decl}, {meta}, PRIMARY KEY ({keys})) WITHOUT ROWID"
        return [table, *self.trigger_sql()]

    def backfill_sql(self) -> list[str]:
        """Track rows that exist at provisioning: log entries after tick ``?`` in
        key order, then tracking rows for them."""
        keys = ", ".join(q(k) for k in self.schema.key)
        kc = ", ".join(self.kcols)
        return [
            f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {keys} FROM {q(self.name)} ORDER BY {keys}",
            f"INSERT INTO {q(self.tracking)} ({kc}, lt, ctime, del)"
            f" SELECT {kc}, lt, {NOW_MS}, 0 FROM {LOG} WHERE lt > ? AND tbl = {self.tid}",
        ]

    def trigger_names(self) -> list[str]:
        return [f"{PREFIX}{op}_{self.name}" for op in ("ins", "upd", "del", "bi", "bu")]

    def triggers(self) -> dict[str, str]:
        """The triggers this table needs: name -> the exact ``CREATE TRIGGER``
        text (SQLite keeps it verbatim in ``sqlite_master``)."""
        return self._named(self.trigger_sql())

    def legacy_triggers(self) -> dict[str, str]:
        """:meth:`triggers` as databases provisioned by earlier versions hold them: still current."""
        return self._named(self.trigger_sql(legacy=True))

    def _named(self, ddl: list[str]) -> dict[str, str]:
        names = self.trigger_names()
        return dict(zip(names[3:] + names[:3] if self.uniques else names[:3], ddl, strict=True))

    def reconcile_sql(self) -> list[str]:
        """Track what changed while the triggers were missing or stale: a row
        with no live tracking row was inserted, a live tracking row with no row
        was deleted. Each becomes a local change: a log entry after tick
        ``:base`` (in key order), then its tracking row, as the triggers would
        have written it (a row inserted on a tombstone starts a new incarnation)."""
        s, trk, kc = self.schema, q(self.tracking), ", ".join(self.kcols)
        keys = ", ".join(f"u.{q(k)}" for k in s.key)
        live = f"EXISTS (SELECT 1 FROM {trk} AS t WHERE {self._key_match('t', 'u')} AND t.del = 0)"
        row = f"EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {self._key_match('t', 'u')})"
        logged = f"EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {self._key_match('l', 'u')})"
        recase = "".join(f"{x}, " for x in self.key_case_sets())  # a NOCASE key re-inserted in another case
        return [
            f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {keys} FROM {q(s.name)} AS u WHERE NOT {live}"
            f" ORDER BY {keys}",
            f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {kc} FROM {trk} AS t WHERE t.del = 0 AND NOT {row}"
            f" ORDER BY {kc}",
            f"INSERT INTO {trk} ({kc}, lt, ctime, del)"
            f" SELECT {', '.join(f'l.{k}' for k in self.kcols)}, l.lt, {NOW_MS}, NOT {logged}"
            f" FROM {LOG} AS l WHERE l.lt > :base AND l.tbl = {self.tid}"
            f" ON CONFLICT ({kc}) DO UPDATE SET {recase}lt = excluded.lt, urep = NULL, utick = NULL,"
            f" {KEEP_CREATION}, ctime = MAX(excluded.ctime, ctime + 1), del = excluded.del, scope = NULL",
        ]

    def restamp_all_sql(self) -> list[str]:
        """Make every live row whose local tick is at most ``:base`` a new
        local change (a log entry after ``:top``, the clock before), keeping
        its creation and its change time: a row that did not really change
        then never beats a real edit made elsewhere."""
        trk, kc = q(self.tracking), ", ".join(self.kcols)
        return [
            f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {kc} FROM {trk} WHERE del = 0 AND lt <= :base"
            f" ORDER BY {kc}",
            f"INSERT INTO {trk} ({kc}, lt, ctime, del)"
            f" SELECT {', '.join(f'l.{k}' for k in self.kcols)}, l.lt, 0, 0"
            f" FROM {LOG} AS l WHERE l.lt > :top AND l.tbl = {self.tid}"
            f" ON CONFLICT ({kc}) DO UPDATE SET lt = excluded.lt, urep = NULL, utick = NULL, scope = NULL,"
            " crep = CASE WHEN ctick IS NULL THEN urep ELSE crep END,"
            " ctick = CASE WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END",
        ]

    def count_since_sql(self) -> str:
        """Changes logged after ``:base``: (count, how many are tombstones)."""
        return (
            f"SELECT count(*), COALESCE(sum(t.del), 0) FROM {LOG} AS l JOIN {q(self.tracking)} AS t"
            f" ON {self._log_match('t', 'l')} AND t.lt = l.lt WHERE l.lt > :base AND l.tbl = {self.tid}"
        )

    def trigger_sql(self, legacy: bool = False) -> list[str]:
        """The triggers' DDL; ``legacy``: as earlier versions wrote them, whose
        guard probes the tracking table whatever the floor (still correct
        with :data:`SKIP_ALL`, only slower), so databases holding them stay valid."""
        s, trk, t, clock = self.schema, q(self.tracking), self.name, f"{PREFIX}clock"
        ins, upd, dele = (q(n) for n in self.trigger_names()[:3])
        kc = ", ".join(self.kcols)
        # The log entry just inserted is the change's tick.
        tick = "last_insert_rowid()"
        floor = f"(SELECT floor FROM {clock} WHERE id = 0)"

        def guard(row: str) -> str:
            probe = f"NOT EXISTS (SELECT 1 FROM {trk} AS t WHERE {self._key_match('t', row)} AND t.lt > {floor})"
            return f"{floor} IS NULL OR {probe}" if legacy else f"{floor} IS NULL OR ({floor} >= 0 AND {probe})"

        def vals(row: str) -> str:
            return ", ".join(f"{row}.{q(c)}" for c in s.key)

        # A change to a live row keeps its incarnation's creation version; a
        # change on top of a tombstone starts a new incarnation. Change times
        # only grow along a row's history (max(now, previous + 1)), so a change
        # made on top of another always compares later, whatever the clocks.
        keep_creation = KEEP_CREATION

        def log(row: str, cond: str = "") -> str:
            if cond:
                return f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {vals(row)} WHERE {cond}"
            return f"INSERT INTO {LOG} (tbl, {kc}) VALUES ({self.tid}, {vals(row)})"

        # BINARY: a NOCASE column edited only in letter case is still a change.
        key_same = " AND ".join(f"OLD.{q(k)} IS NEW.{q(k)} COLLATE BINARY" for k in s.key)
        # typeof: in a column without type affinity (or NUMERIC), 1 -> 1.0 is a
        # change of storage class that IS calls equal.
        changed = " AND ".join(
            f"OLD.{q(c)} IS NEW.{q(c)} COLLATE BINARY"
            + (f" AND typeof(OLD.{q(c)}) = typeof(NEW.{q(c)})" if kind in ("blob", "numeric") else "")
            for c, kind in zip(s.columns, s.types, strict=True)
        )

        recase = "".join(f"{x}, " for x in self.key_case_sets())

        def upsert(row: str, deleted: int, creation: str) -> str:
            return (
                f"INSERT INTO {trk} ({kc}, lt, ctime, del) VALUES ({vals(row)}, {tick}, {NOW_MS}, {deleted})"
                f" ON CONFLICT ({kc}) DO UPDATE SET {recase}lt = excluded.lt, urep = NULL, utick = NULL, {creation},"
                f" ctime = MAX(excluded.ctime, ctime + 1), del = {deleted}, scope = NULL"
            )

        new_incarnation = "crep = NULL, ctick = NULL"
        old_key = " AND ".join(f"{k} = OLD.{q(c)}" for k, c in zip(self.kcols, s.key, strict=True))
        evict, before = self._eviction(keep_creation)
        bi, bu = (q(n) for n in self.trigger_names()[3:])
        extra = (
            [
                f"CREATE TRIGGER {bi} BEFORE INSERT ON {q(t)} BEGIN {before('NEW')} END",
                f"CREATE TRIGGER {bu} BEFORE UPDATE ON {q(t)} BEGIN {before('OLD')} END",
            ]
            if self.uniques
            else []
        )
        return [
            *extra,
            f"CREATE TRIGGER {ins} AFTER INSERT ON {q(t)} WHEN {guard('NEW')} BEGIN"
            f" {evict}{log('NEW')}; {upsert('NEW', 0, new_incarnation)}; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {q(t)} WHEN NOT ({changed}) AND ({guard('NEW')}) BEGIN"
            f" {evict}{log('OLD', f'NOT ({key_same})')};"
            f" UPDATE {trk} SET lt = {tick}, urep = NULL, utick = NULL, {keep_creation},"
            f" ctime = MAX({NOW_MS}, ctime + 1), del = 1, scope = NULL WHERE {old_key}"
            f" AND NOT ({key_same});"
            f" {log('NEW')}; {upsert('NEW', 0, keep_creation)}; END",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {q(t)} WHEN {guard('OLD')} BEGIN"
            f" {log('OLD')}; {upsert('OLD', 1, keep_creation)}; END",
        ]

    def _eviction(self, keep_creation: str) -> tuple[str, Callable[[str], str]]:
        """``INSERT OR REPLACE`` (and ``UPDATE OR REPLACE``) deletes rows that
        collide on a UNIQUE index without firing delete triggers. A BEFORE
        trigger notes such rows; the AFTER trigger turns each noted row that is
        really gone into a tombstone (under OR IGNORE or ABORT it is not gone,
        and nothing happens), then forgets the notes."""
        if not self.uniques:
            return "", lambda row: ""
        s, kc = self.schema, ", ".join(self.kcols)
        keys = ", ".join(q(k) for k in s.key)
        after = "".join(f"{st}; " for st in self.evictions_sql(keep_creation))

        def before(own: str) -> str:
            out = ""
            for i, cols in enumerate(self.uniques):
                same = " AND ".join(f"{q(c)} = NEW.{q(c)} COLLATE {coll}" for c, coll in cols)
                itself = " AND ".join(f"{q(k)} IS {own}.{q(k)}" for k in s.key)
                out += (
                    f"INSERT INTO {EVICT} (tbl, ix, {kc}) SELECT {self.tid}, {i}, {keys} FROM {q(s.name)}"
                    f" WHERE {same} AND NOT ({itself}); "
                )
            return out

        return after, before

    def evictions_sql(self, keep_creation: str = KEEP_CREATION) -> list[str]:
        """Turn rows noted as colliding on a UNIQUE index that are really gone
        into tombstones, then forget the notes. Run by the AFTER triggers, and
        by the apply (whose writes the triggers skip) after a batch."""
        if not self.uniques:
            return []
        s, trk, kc = self.schema, q(self.tracking), ", ".join(self.kcols)
        ecols = ", ".join(f"e.{k}" for k in self.kcols)

        def gone(alias: str) -> str:
            match = " AND ".join(f"u.{q(c)} = {alias}.{k}" for k, c in zip(self.kcols, s.key, strict=True))
            return f"NOT EXISTS (SELECT 1 FROM {q(s.name)} AS u WHERE {match})"

        out = []
        for i, _ in enumerate(self.uniques):
            noted = f"FROM {EVICT} AS e WHERE e.tbl = {self.tid} AND e.ix = {i}"
            out += [
                f"INSERT INTO {LOG} (tbl, {kc}) SELECT {self.tid}, {ecols} {noted} AND {gone('e')}",
                f"UPDATE {trk} SET lt = last_insert_rowid(), urep = NULL, utick = NULL, {keep_creation},"
                f" ctime = MAX({NOW_MS}, ctime + 1), del = 1, scope = NULL"
                f" WHERE del = 0 AND ({kc}) IN (SELECT {ecols} {noted}) AND {gone(trk)}",
            ]
        out.append(f"DELETE FROM {EVICT} WHERE tbl = {self.tid}")
        return out

    def restamp_sql(self, drift: bool = False) -> tuple[str, str]:
        """Make the row's current state a new local change (a new tick, made
        here knowing everything here), keeping its creation; its change time
        too, unless ``drift`` (something changed the row after peersync wrote
        it: that is a new change, deleted when the row is gone, parameter 2)."""
        kc = ", ".join(self.kcols)
        where = " AND ".join(f"{k} = ?" for k in self.kcols)
        also = f", del = ?, ctime = MAX({NOW_MS}, ctime + 1)" if drift else ""
        return (
            f"INSERT INTO {LOG} (tbl, {kc}) VALUES ({self.tid}, {', '.join('?' * len(self.kcols))})",
            f"UPDATE {q(self.tracking)} SET lt = last_insert_rowid(), urep = NULL, utick = NULL, scope = NULL,"
            " crep = CASE WHEN ctick IS NULL THEN urep ELSE crep END,"
            f" ctick = CASE WHEN ctick IS NULL THEN COALESCE(utick, lt) ELSE ctick END{also} WHERE {where}",
        )

    def set_mw_sql(self) -> str:
        where = " AND ".join(f"{k} = ?" for k in self.kcols)
        return f"UPDATE {q(self.tracking)} SET mw = ? WHERE {where}"

    def set_time_sql(self, at_least: bool) -> str:
        where = " AND ".join(f"{k} = ?" for k in self.kcols)
        value = "MAX(ctime, ?)" if at_least else "?"
        return f"UPDATE {q(self.tracking)} SET ctime = {value} WHERE {where}"

    def drop_sql(self) -> list[str]:
        """Remove the tracking of this table; the log's newest entry stays (as
        table 0) so ticks never go back."""
        top = f"(SELECT max(lt) FROM {LOG})"
        return [
            *(f"DROP TRIGGER IF EXISTS {q(n)}" for n in self.trigger_names()),
            f"DROP TABLE IF EXISTS {q(self.tracking)}",
            f"DELETE FROM {LOG} WHERE tbl = {self.tid} AND lt < {top}",
            f"UPDATE {LOG} SET tbl = 0 WHERE tbl = {self.tid}",
        ]


def introspect(conn: sqlite3.Connection, table: str) -> Tracked:
    """Read a user table's shape; raise :class:`TableError` if it cannot be tracked."""
    row = conn.execute(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    # SQLite names ignore letter case: so does the reservation.
    name, _, without_rowid = user_table(row, table, ("table",), (PREFIX, "sqlite_"))
    info = conn.execute(
        'SELECT name, type, pk, "notnull" FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid', (name,)
    ).fetchall()
    columns = tuple(r[0] for r in info)
    key = tuple(r[0] for r in sorted((r for r in info if r[2] > 0), key=lambda r: r[2]))
    if not key:
        raise TableError(f"table {name} has no primary key; peersync needs one to identify rows")
    types = tuple(type_class(r[1]) for r in info)
    # Key columns count as NOT NULL: peersync refuses rows with a NULL key.
    specs = tuple(column_type(r[0], r[1], nullable=not (r[3] or r[2])) for r in info)
    # A rowid alias is a single INTEGER key with no separate key index
    # (``INTEGER PRIMARY KEY DESC`` is not one: SQLite gives it an index).
    pk_index = conn.execute("SELECT 1 FROM pragma_index_list(?) WHERE origin = 'pk'", (name,)).fetchone()
    rowid_key = (
        len(key) == 1
        and not without_rowid
        and pk_index is None
        and next(r[1] for r in info if r[0] == key[0]).upper() == "INTEGER"
    )
    fk: dict[int, tuple[str, list[str], list[str | None], str]] = {}
    for fid, parent, frm, to, on_delete in conn.execute(
        'SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq', (name,)
    ):
        entry = fk.setdefault(fid, (parent, [], [], on_delete.upper()))
        entry[1].append(frm)
        entry[2].append(to)
    fks = tuple(ForeignKey(p, tuple(f), tuple(t), d) for p, f, t, d in fk.values())
    deps = tuple(sorted({f.parent for f in fks}))
    kcolls: tuple[str, ...] = ()
    if pk_index is not None:
        (pk_name,) = conn.execute("SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", (name,)).fetchone()
        colls = {c: coll for c, coll in conn.execute(
            "SELECT name, coll FROM pragma_index_xinfo(?) WHERE key = 1", (pk_name,)
        )}  # fmt: skip
        kcolls = tuple(colls.get(k) or "BINARY" for k in key)
    uniques = []
    for (index,) in conn.execute(
        "SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1 AND origin != 'pk' ORDER BY name", (name,)
    ):
        cols = conn.execute(
            "SELECT cid, name, coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno", (index,)
        ).fetchall()
        if cols and all(cid >= 0 for cid, _, _ in cols):  # expression indexes cannot be probed here
            uniques.append(tuple((c, coll or "BINARY") for _, c, coll in cols))
    return Tracked(TableSchema(name, columns, key, types, specs), rowid_key, deps, fks, 0, tuple(uniques), kcolls)


def tracking_kcolls(conn: sqlite3.Connection, tracking: str, n: int) -> tuple[str, ...]:
    """The collation each of the ``n`` key columns of a tracking table was made with."""
    pk = conn.execute("SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", (tracking,)).fetchone()
    if pk is None:  # a rowid key: INTEGER, compared as such
        return ("BINARY",) * n
    colls = conn.execute("SELECT coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno", (pk[0],))
    return tuple((c or "BINARY").upper() for (c,) in colls)


def trigger_faults(conn: sqlite3.Connection, tables: list[Tracked]) -> dict[str, str]:
    """Tables whose peersync triggers are not exactly what they need, each
    with ``"lost"`` (an insert, update or delete trigger is missing from the
    table: it was rebuilt, or its triggers dropped; writes since went
    untracked) or ``"stale"`` (present, but not as made for the table as it is
    now, e.g. after a UNIQUE index was added or dropped). One read of
    ``sqlite_master``."""
    wanted = {t.name: t.triggers() for t in tables}
    legacy = {t.name: t.legacy_triggers() for t in tables}
    names = [n for t in tables for n in t.trigger_names()]
    have: dict[str, tuple[str, str]] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        have.update(
            (n, (tbl, sql))
            for n, tbl, sql in conn.execute(
                f"SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
                f" AND name IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        )
    out = {}
    for t in tables:
        want = wanted[t.name]
        if any(have.get(n, ("", ""))[0] != t.name for n in t.trigger_names()[:3]):
            out[t.name] = "lost"
        elif any(have.get(n) not in ((t.name, sql), (t.name, legacy[t.name][n])) for n, sql in want.items()) or any(
            n in have for n in t.trigger_names() if n not in want
        ):
            out[t.name] = "stale"
    return out


@dataclass
class Scope(ScopeBase[Tracked]):
    """A provisioned scope as this connection last read it."""

    # Can writing a row change other rows here (a user's trigger, a foreign key
    # action)? Only then does an apply look for rows changed behind its back.
    side_effects: bool = True
    # The ``PRAGMA schema_version`` at which an apply last checked
    # ``side_effects`` (another program may have created a trigger since).
    effects_checked: int | None = None
    # Does a foreign key start or end at one of the tables? Only then does an
    # apply check foreign keys after its writes instead of statement by
    # statement. Found when an apply first asks (a source never needs it).
    foreign_keys: bool | None = None


def clock(conn: sqlite3.Connection) -> int:
    """The newest local tick: the change log's last entry."""
    tick: int = conn.execute(f"SELECT COALESCE(max(lt), 0) FROM {LOG}").fetchone()[0]
    return tick
