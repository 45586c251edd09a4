"""SQLite objects peersync creates: metadata tables, tracking tables, triggers
(their DDL is in ``triggers.py``; reading a user table's shape in ``catalog.py``).

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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from peersync._adapters.sql import meta as _meta
from peersync._adapters.sql.dialect import SQLITE
from peersync._adapters.sql.meta import reported, row_flags
from peersync._adapters.sql.tracked import ScopeBase, TrackedNames
from peersync._engine.model import TableSchema
from peersync._engine.types import ValueType

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


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key of a tracked table, as ``pragma_foreign_key_list`` reports it."""

    parent: str
    columns: tuple[str, ...]  # in the child
    to: tuple[str | None, ...]  # in the parent; None for its primary key
    on_delete: str  # NO ACTION, RESTRICT, CASCADE, SET NULL or SET DEFAULT


def json_text(x: str) -> str:
    """SQL for the text a JSON document held in the expression ``x`` travels
    as. A document that is a bare number is stored as a number (a column
    declared JSON has NUMERIC affinity): its text again, exactly (SQLite's
    own REAL-to-text keeps 15 significant digits; when that does not read
    back as the same double, 17). The SQLite apply refuses a document whose
    number would not travel as the text it arrived as (``fit.py``)."""
    return (
        f"CASE typeof({x}) WHEN 'integer' THEN CAST({x} AS TEXT)"
        f" WHEN 'real' THEN CASE WHEN CAST(CAST({x} AS TEXT) AS REAL) = {x} THEN CAST({x} AS TEXT)"
        f" ELSE printf('%!.17g', {x}) END ELSE {x} END"
    )


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

    def key_match(self, alias: str, row: str) -> str:
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
        specs = s.specs or ()
        json = {sp.name for sp in specs if sp.type is ValueType.JSON}

        def value(c: str) -> str:
            if c in kmap:
                return f"t.{kmap[c]}"
            if c in json:
                return json_text(f"u.{q(c)}")
            return f"u.{q(c)}"

        vals = ", ".join(map(value, s.columns))
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
            f" LEFT JOIN {q(self.name)} AS u ON {self.key_match('t', 'u')}"
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

    def trigger_names(self) -> list[str]:
        return [f"{PREFIX}{op}_{self.name}" for op in ("ins", "upd", "del", "bi", "bu")]

    def count_since_sql(self) -> str:
        """Changes logged after ``:base``: (count, how many are tombstones)."""
        return (
            f"SELECT count(*), COALESCE(sum(t.del), 0) FROM {LOG} AS l JOIN {q(self.tracking)} AS t"
            f" ON {self._log_match('t', 'l')} AND t.lt = l.lt WHERE l.lt > :base AND l.tbl = {self.tid}"
        )

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
