"""The SQLite peer: provisioning, enumeration and apply on one database file.

Every write runs in one ``BEGIN IMMEDIATE`` transaction; a kill at any point
leaves the file as it was before that transaction or after it. ``sqlite3``
exceptions are translated to :mod:`peersync` ones at this boundary.
"""

from __future__ import annotations

import heapq
import json
import os
import shlex
import sqlite3
import urllib.parse
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import repeat
from typing import Any

from peersync._adapters.sql.batch_frame import frame
from peersync._adapters.sql.dialect import SQLITE
from peersync._adapters.sql.meta import Meta, range_rows
from peersync._adapters.sql.reports import logged_conflicts, scope_status
from peersync._adapters.sql.scopes import (
    check_provision_args,
    definition,
    delete_scope_rows,
    insert_scope,
    load_scope,
    next_id,
    provisioned_already,
    scope_row,
    tables_in_use,
    tracked_definition,
)
from peersync._adapters.sql.session_end import end_session
from peersync._engine.errors import (
    ConfigurationError,
    DatabaseLocked,
    InvalidURL,
    RepairNeeded,
    SchemaMismatch,
    ScopeError,
    StorageError,
    TableError,
)
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    RepairReport,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
)
from peersync._engine.peer import stream_of
from peersync._engine.schema import dependency_order, fingerprint
from peersync._engine.wire import PackedRows, open_batch, row_packer

from . import schema as S
from .apply import Redo, SetApply
from .schema import PREFIX, Scope, Tracked, q
from .text import Connection, read_text
from .txn import TransactionLost, atomic

# The oldest SQLite with everything peersync's SQL uses: pragma_table_list
# (3.37.0); also RETURNING (3.35.0) and UPDATE ... FROM (3.33.0).
MIN_SQLITE = (3, 37, 0)
_LOCK_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# SQLite counts the busy timeout in milliseconds, in a 32-bit int.
MAX_TIMEOUT = (2**31 - 1) // 1000
_SWEEP = 4  # log entries below the compaction mark checked per tick above it
_SQLITE_CONSTRAINT_FOREIGNKEY = 787


def _side_effects(conn: sqlite3.Connection) -> bool:
    """Whether this database has triggers of its own or foreign key actions."""
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name NOT LIKE ? ESCAPE '\\' LIMIT 1",
        (PREFIX.replace("_", "\\_") + "%",),
    ).fetchone():
        return True
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"
            " AND (f.on_delete NOT IN ('NO ACTION', 'RESTRICT') OR f.on_update NOT IN ('NO ACTION', 'RESTRICT'))"
            " LIMIT 1"
        ).fetchone()
        is not None
    )


def _wire_rows(
    conn: sqlite3.Connection, cur: sqlite3.Cursor, heads_sql: str, params: dict[str, int]
) -> Generator[Sequence[Any], None, None]:
    """The rows of ``cur`` (see ``Tracked.wire_sql``) in wire form: a short
    row as it is, any other (negative tick offset) completed with its header
    from ``heads_sql``, read in step from the first such row on (closing the
    generator closes that cursor)."""
    heads: sqlite3.Cursor | None = None
    try:
        for row in cur:
            if row[0] > 0:
                yield row
                continue
            dlt = -row[0]
            if heads is None:
                heads = conn.execute(heads_sql, {**params, "after": params["first0"] + dlt - 1})
            head = heads.fetchone()
            if head is None or head[0] != dlt:  # one snapshot: the two queries see the same rows
                raise StorageError(f"the header of the row at tick {params['first0'] + dlt} went missing")
            yield (*head, *row[1:])
    finally:
        if heads is not None:
            heads.close()


def _tagged(i: int, rows: Iterator[Any]) -> Iterator[tuple[int, int, Any]]:
    """Rows of table ``i`` keyed for a merge by their tick offset."""
    for row in rows:
        yield row[0], i, row


def _foreign_keys(conn: sqlite3.Connection, tables: list[Tracked]) -> bool:
    """Whether any foreign key starts or ends at one of ``tables``."""
    if any(t.fks for t in tables):
        return True
    names = [t.name for t in tables]
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"
            " AND m.name NOT LIKE ? ESCAPE '\\'"
            f' AND f."table" COLLATE NOCASE IN ({", ".join("?" * len(names))}) LIMIT 1',
            [PREFIX.replace("_", "\\_") + "%", *names],
        ).fetchone()
        is not None
    )


def _skip(blocks: list[tuple[int, int]], after: int) -> int:
    """Advance ``after`` over skippable blocks that start right after it."""
    for lo, hi in blocks:
        if lo <= after + 1 <= hi:
            after = hi
    return after


def _key_shape(definition: str) -> list[tuple[str, str]]:
    """The key columns of a stored table definition, with their types."""
    cols, key, types = json.loads(definition)
    return [(k, types[cols.index(k)]) for k in key]


class SQLitePeer:
    """A SQLite database file as a peersync peer.

    Opening never creates a file: a missing path raises
    :class:`~peersync.InvalidURL`, a file that is not a database
    :class:`~peersync.StorageError`. ``timeout`` is how long to wait for
    another writer's lock before :class:`~peersync.DatabaseLocked`.
    """

    def __init__(self, path: str, *, timeout: float = 5.0, foreign_keys: bool = True) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            need = ".".join(map(str, MIN_SQLITE))
            raise StorageError(
                f"peersync needs SQLite {need} or newer;"
                f" this Python's sqlite3 module uses SQLite {sqlite3.sqlite_version}"
            )
        if type(timeout) not in (int, float) or not 0 <= timeout <= MAX_TIMEOUT:
            raise ConfigurationError(f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT}, not {timeout!r}")
        self.path = os.path.abspath(path)
        self.url = "sqlite:///" + self.path
        if not os.path.isfile(self.path):
            raise InvalidURL(f"no such database file: {path}")
        # The file's identity: a copy or a restored backup gets another inode
        # (0 where the filesystem has none: then copies go undetected).
        ino = os.stat(self.path).st_ino
        self._inode = str(ino) if ino else ""
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=rw"
        try:
            self.conn = sqlite3.connect(
                uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False, factory=Connection
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        try:
            with self._errors():
                self.conn.execute("PRAGMA schema_version").fetchone()
                self.conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
                self.conn.execute("PRAGMA temp_store = MEMORY")
        except DatabaseLocked:
            self.conn.close()
            raise
        except StorageError as exc:
            self.conn.close()
            raise StorageError(f"{path} is not a usable SQLite database: {exc.__cause__ or exc}") from exc
        self._scopes: dict[str, Scope] = {}
        self.meta = Meta(self.conn, SQLITE)

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
        except sqlite3.Error as exc:
            # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) carry the primary one in their low byte.
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _LOCK_CODES:
                raise DatabaseLocked(f"{self.path}: database is locked by another connection") from exc
            raise StorageError(f"{self.path}: {exc}") from exc
        except TransactionLost as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _txn(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._errors():
            try:
                with atomic(self.conn, begin="IMMEDIATE" if write else "DEFERRED"):
                    changes = self.conn.total_changes
                    yield self.conn
                    if write and self.conn.total_changes != changes:
                        self._stamp_home()
            except BaseException:
                # Cached replica indexes may name rows the rollback removed.
                self.meta.forget_cache()
                raise

    def _scope(self, name: str, *, reload: bool = False) -> Scope:
        sc = self._scopes.get(name)
        if sc is not None and not reload:
            return sc
        idx, rid, _, tables = load_scope(
            self.meta,
            name,
            self.path,
            lambda t, tid: replace(S.introspect(self.conn, t), tid=tid),
            S.fingerprint_holds,
            lambda names: self._changed_msg(name, names),
        )
        sc = Scope(name, idx, rid, fingerprint([t.schema for t in tables]), tables, _side_effects(self.conn))
        self._scopes[name] = sc
        return sc

    def _has_foreign_keys(self, sc: Scope) -> bool:
        if sc.foreign_keys is None:
            sc.foreign_keys = _foreign_keys(self.conn, sc.tables)
        return sc.foreign_keys

    def _clock(self) -> int:
        return S.clock(self.conn)

    def provision(self, scope: str, tables: Sequence[str]) -> bool:
        """Create ``scope`` over ``tables``; True if created, False if it
        already exists with the same definition (idempotent). Raises
        :class:`~peersync.ScopeError` if it exists with another definition and
        :class:`~peersync.TableError` for a missing or keyless table."""
        check_provision_args(scope, tables)
        with self._txn(write=True) as conn:
            for ddl in S.META_DDL:
                conn.execute(ddl)
            wanted = dependency_order(list({t.name: t for t in (S.introspect(conn, n) for n in tables)}.values()))
            names = [t.name for t in wanted]
            fp = fingerprint([t.schema for t in wanted])
            if provisioned_already(
                self.meta,
                scope,
                self.path,
                names,
                lambda stored: S.fingerprint_holds(stored, [t.schema for t in wanted]),
                lambda tids: S.trigger_faults(conn, [replace(t, tid=tids[t.name]) for t in wanted]),
                lambda faults: self._fault_msg(scope, faults),
                self._changed_msg(scope, names, provisioning=True),
            ):
                return False
            for t in wanted:
                self._track(conn, t)
            insert_scope(self.meta, scope, names, fp, compacted=self._clock())
            self._record_home(scope)
        self._scopes.pop(scope, None)
        return True

    def _track(self, conn: sqlite3.Connection, t: Tracked) -> None:
        if tracked_definition(self.meta, t.schema, "; migrate that scope first ('peersync init ... --migrate')"):
            return
        null_key = " OR ".join(f"{q(k)} IS NULL" for k in t.schema.key)
        if conn.execute(f"SELECT 1 FROM {q(t.name)} WHERE {null_key} LIMIT 1").fetchone():
            raise TableError(f"table {t.name} has rows with NULL in its primary key; peersync cannot identify them")
        tid = next_id(self.meta, "tracked", "id")
        t = replace(t, tid=tid)
        for side in (S.LOG, S.EVICT, S.PENDING):  # these hold as many key columns as the widest key
            have = {r[0] for r in conn.execute(f"SELECT name FROM pragma_table_info('{side}')")}
            for k in t.kcols:
                if k not in have:
                    conn.execute(f"ALTER TABLE {side} ADD COLUMN {k}")
        for ddl in t.create_sql():
            conn.execute(ddl)
        base = self._clock()
        fill, track = t.backfill_sql()
        conn.execute(fill)
        conn.execute(track, (base,))
        conn.execute(f"INSERT INTO {PREFIX}tracked VALUES (?, ?, ?)", (t.name, definition(t.schema), tid))

    def deprovision(self, scope: str) -> None:
        """Remove every peersync object of ``scope``; user data is untouched.
        Raises :class:`~peersync.ScopeError` for an unknown scope."""
        with self._txn(write=True) as conn:
            idx, tables = scope_row(self.meta, scope, self.path)
            delete_scope_rows(self.meta, scope, idx, sessions=False)
            if self._has_home():
                conn.execute(f"DELETE FROM {S.HOME} WHERE scope = ?", (scope,))
            still = tables_in_use(self.meta)
            tids = self.meta.tracked_ids()
            for name in tables:
                t = S.Tracked(TableSchema(name, (), (), ()), False, (), (), tids[name])
                if name in still:
                    conn.execute(f"UPDATE {q(t.tracking)} SET scope = NULL WHERE scope = ?", (idx,))
                    continue
                for ddl in t.drop_sql():
                    conn.execute(ddl)
                conn.execute(f"DELETE FROM {PREFIX}tracked WHERE tbl = ?", (name,))
            if not still:
                for m in S.META_TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{m}")
        self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        with self._txn(write=False):
            return self.meta.scope_names()

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """Give ``scope`` a new replica id, for a copied database file or a
        restored backup; returns it. With ``moved``, keep the id and only
        record that this file is the scope's home now (a database moved to
        another filesystem, whose old file is no longer used).

        Rows changed here up to the last peersync write before the copy keep
        their versions under the old id (which the knowledge keeps), so peers
        that already hold them see nothing new. Local changes after it (made
        on the copy, or on the original just before it was copied) become
        changes of the new id: peers that hold the same row from the original
        resolve it like any concurrent change, and nothing is skipped.
        Raises :class:`~peersync.ScopeError` for an unknown scope.
        """
        with self._txn(write=True) as conn:
            sc = self._scope(scope, reload=True)
            conn.execute(S.HOME_DDL)  # in files provisioned before it existed
            if moved:
                self._record_home(scope)
                return sc.rid
            stored, _ = self.meta.stored_knowledge(scope)
            self.meta.load_replicas()
            old = self.meta.rep_index(sc.rid)
            # Ticks up to ``mark`` were made in the original file before the
            # copy; without a record, trust none of them (safe: they are sent
            # again under the new id and meet their originals as identical).
            row = conn.execute(f"SELECT mark FROM {S.HOME} WHERE scope = ?", (scope,)).fetchone()
            mark = int(row[0]) if row else 0
            for t in sc.tables:
                # Only local changes carry this scope's id implicitly; rows that
                # arrived through a scope keep their origin versions.
                conn.execute(
                    f"UPDATE {q(t.tracking)} SET urep = ?, utick = lt, scope = ? WHERE scope IS NULL AND lt <= ?",
                    (old, sc.idx, mark),
                )
                conn.execute(
                    f"UPDATE {q(t.tracking)} SET crep = ? WHERE crep IS NULL AND ctick IS NOT NULL AND ctick <= ?",
                    (old, mark),
                )
            new = os.urandom(16)
            k = stored.add_range(sc.rid, 1, mark) if mark >= 1 else stored
            conn.execute(f"UPDATE {PREFIX}scopes SET replica_id = ? WHERE name = ?", (new, scope))
            self.meta.save_knowledge(replace(sc, rid=new), k)
            self._record_home(scope)
        self._scopes.pop(scope, None)
        return new

    # -- schema changes and repairs --------------------------------------------------
    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> RepairReport:
        """Keep ``scope``'s tracking across a change of its tables' columns.

        After ``ALTER TABLE ... ADD COLUMN`` (or a rebuild that adds, drops or
        retypes columns), update the scope's stored shape and recreate the
        triggers; every row keeps its versions, times and tombstones and the
        scope its knowledge, so edits not yet synced still sync and resolve by
        the normal rules. Run it on every peer: until both have migrated, a
        session between them raises :class:`~peersync.SchemaMismatch`. A
        table that lost its triggers (a rebuild) is reconciled as by
        :meth:`repair`. Idempotent. ``tables``, if given, must be the scope's
        tables. Raises :class:`~peersync.ScopeError` for an unknown scope, other
        tables, or a changed primary key (rows are identified by it: that needs
        a new scope), :class:`~peersync.SchemaMismatch` for a missing table.
        """
        return self._retrack(scope, migrate=True, restamp=False, tables=tables)

    def repair(self, scope: str, *, restamp: bool = False) -> RepairReport:
        """Recreate the triggers of ``scope``'s tables where they are missing or
        out of date (a table rebuilt behind peersync's back: create, copy, drop,
        rename) and track what changed meanwhile: rows inserted or deleted
        become local changes. Rows *updated* meanwhile cannot be detected (the
        report lists such tables in ``untracked``); ``restamp`` makes every
        live row of the scope a new local change, keeping its change time, so
        it reaches every peer and a real edit made elsewhere still wins by the
        normal rules. Idempotent. Raises :class:`~peersync.SchemaMismatch` if
        the tables' shape changed too (that is :meth:`migrate`)."""
        return self._retrack(scope, migrate=False, restamp=restamp, tables=None)

    def _retrack(self, scope: str, *, migrate: bool, restamp: bool, tables: Sequence[str] | None) -> RepairReport:
        with self._txn(write=True) as conn:
            row = None
            if self.meta.has_meta():
                row = conn.execute(
                    f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)
                ).fetchone()
            if row is None:
                raise ScopeError(f"unknown scope {scope!r} in {self.path}")
            names, stored_fp = json.loads(row[0]), row[1]
            tracked = {r[0]: (r[1], r[2]) for r in conn.execute(f"SELECT tbl, definition, id FROM {PREFIX}tracked")}
            try:
                current = dependency_order([replace(S.introspect(conn, n), tid=tracked[n][1]) for n in names])
                asked = None if tables is None else {S.introspect(conn, n).name for n in tables}
            except TableError as exc:
                raise SchemaMismatch(f"scope {scope!r} in {self.path}: {exc}") from exc
            if asked is not None and asked != set(names):
                raise ScopeError(
                    f"migrating keeps a scope's tables: scope {scope!r} in {self.path} has {', '.join(names)};"
                    " to add or remove tables, provision another scope"
                )
            fp = fingerprint([t.schema for t in current])
            reshaped = not S.fingerprint_holds(stored_fp, [t.schema for t in current])
            if reshaped and not migrate:
                raise SchemaMismatch(self._changed_msg(scope, names))
            for t in current:
                # The tracking table's key compares as the user's key did: a
                # new collation makes other rows the same key, or one key two.
                old = _key_shape(tracked[t.name][0])
                before = [(*kt, c) for kt, c in zip(old, S.tracking_kcolls(conn, t.tracking, len(old)), strict=True)]
                colls = t.kcolls or ("BINARY",) * len(t.schema.key)  # a rowid key: none recorded
                after = [(*kt, c.upper()) for kt, c in zip(_key_shape(definition(t.schema)), colls, strict=True)]
                if before != after:
                    raise ScopeError(
                        f"the primary key of table {t.name} changed ({_show(before)} -> {_show(after)}): peersync"
                        " identifies rows by their key, so this cannot be migrated; sync every peer until they agree,"
                        f" then deprovision scope {scope!r} and provision it again on each"
                    )
            faults = S.trigger_faults(conn, current)
            base = self._clock()
            retracked, untracked, inserted, deleted, restamped = [], [], 0, 0, 0
            for t in current:
                if t.name not in faults and tracked[t.name][0] == definition(t.schema):
                    continue
                if t.name in faults:
                    since = self._clock()
                    for st in t.reconcile_sql():
                        conn.execute(st, {"base": since})
                    n, d = conn.execute(t.count_since_sql(), {"base": since}).fetchone()
                    inserted, deleted = inserted + n - d, deleted + d
                    if faults[t.name] == "lost":
                        untracked.append(t.name)
                for name in t.trigger_names():
                    conn.execute(f"DROP TRIGGER IF EXISTS {q(name)}")
                for ddl in t.trigger_sql():
                    conn.execute(ddl)
                conn.execute(f"UPDATE {PREFIX}tracked SET definition = ? WHERE tbl = ?", (definition(t.schema), t.name))
                retracked.append(t.name)
            for t in current if restamp else []:
                top = self._clock()
                for st in t.restamp_all_sql():
                    conn.execute(st, {"base": base, "top": top})
                restamped += conn.execute(t.count_since_sql(), {"base": top}).fetchone()[0]
            if self._clock() > base:
                for t in current:  # drop the log entries the new ones superseded
                    conn.execute(t.compact_sql(), {"from": 0, "below": base + 1})
            order = json.dumps([t.name for t in current])
            if fp != stored_fp or order != row[0]:
                conn.execute(
                    f"UPDATE {PREFIX}scopes SET fingerprint = ?, tables = ? WHERE name = ?", (fp, order, scope)
                )
        self._scopes.clear()  # scopes sharing a table see its new triggers and shape
        return RepairReport(
            scope, reshaped, tuple(retracked), tuple(untracked), inserted, deleted, restamped
        )  # fmt: skip

    # -- the file a scope lives in ------------------------------------------------------
    def _has_home(self) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (S.HOME,)).fetchone()
            is not None
        )

    def _record_home(self, scope: str) -> None:
        """Record this file as ``scope``'s home, with the newest tick here."""
        self.conn.execute(
            f"INSERT OR REPLACE INTO {S.HOME} VALUES (?, ?, ?, ?)", (scope, self._inode, self.path, self._clock())
        )

    def _stamp_home(self) -> None:
        """In every write transaction: for the scopes whose home is this very
        file, the newest tick (a copy made later holds it, and ``reidentify``
        keeps the versions up to it) and the path (a file moved on its
        filesystem keeps its inode, and is recorded at its new place). Rows of a
        copy's scopes do not match this file's inode and stay as copied."""
        if self._inode and self._has_home():
            self.conn.execute(
                f"UPDATE {S.HOME} SET path = :path, mark = :mark WHERE file = :file"
                " AND (path IS NOT :path OR mark IS NOT :mark)",
                {"path": self.path, "mark": self._clock(), "file": self._inode},
            )

    def _verify(self, sc: Scope) -> None:
        """Refuse, with :class:`~peersync.RepairNeeded`, to sync a scope whose
        tracking cannot be trusted: a copied or restored file (another inode than
        the one recorded), a table whose triggers were lost or are out of date."""
        if self._inode and self._has_home():
            row = self.conn.execute(f"SELECT file, path FROM {S.HOME} WHERE scope = ?", (sc.name,)).fetchone()
            if row is not None and row[0] and row[0] != self._inode:
                fix = f"run 'peersync reidentify {shlex.quote(self.path)} --scope {shlex.quote(sc.name)}'"
                if row[1] == self.path:
                    raise RepairNeeded(
                        f"{self.path} was replaced since scope {sc.name!r} was last used in it (a restored backup or"
                        f" a copy, holding the same replica as the file it came from); {fix}"
                    )
                raise RepairNeeded(
                    f"{self.path} is a copy of {row[1]} (the same replica of scope {sc.name!r}); {fix},"
                    " or add --moved if it is that database moved and the old file is no longer used"
                )
        faults = S.trigger_faults(self.conn, sc.tables)
        if faults:
            raise RepairNeeded(self._fault_msg(sc.name, faults))

    def _fault_msg(self, scope: str, faults: dict[str, str]) -> str:
        lost = [t for t, f in faults.items() if f == "lost"]
        what = (
            f"table {', '.join(lost)} of scope {scope!r} in {self.path} lost its peersync triggers (rebuilt?),"
            " so writes to it are not tracked"
            if lost
            else f"the peersync triggers of table {', '.join(faults)} of scope {scope!r} in {self.path} are out of"
            " date (a UNIQUE index added or dropped?)"
        )
        return f"{what}; run 'peersync repair {shlex.quote(self.path)} --scope {shlex.quote(scope)}'"

    def _changed_msg(self, scope: str, tables: Sequence[str], *, provisioning: bool = False) -> str:
        flags = " ".join(f"--table {shlex.quote(t)}" for t in tables)
        cmd = f"peersync init {shlex.quote(self.path)} --scope {shlex.quote(scope)} {flags} --migrate"
        if provisioning:
            return f"the tables of scope {scope!r} in {self.path} changed shape; to keep its tracking, run '{cmd}'"
        return (
            f"the tables of scope {scope!r} in {self.path} changed since provisioning; run '{cmd}'"
            " here and on every peer whose tables changed the same way"
        )

    # -- the Peer interface ----------------------------------------------------------
    def schemas(self, scope: str) -> dict[str, TableSchema]:
        with self._errors():
            return dict(self._scope(scope).schemas)

    def _compact(self, sc: Scope) -> None:
        """Drop log entries of this scope's tables that later changes superseded,
        so the log holds about one entry per tracked row, whatever the history.

        Every entry since the last compaction is checked. An entry that was
        its row's current one then and was superseded since lies below that
        mark, anywhere: a sweep checks ``_SWEEP`` entries below the mark per
        tick since it, going on from where the last sweep stopped and round
        again from the log's start. Work follows changes, writes pay nothing,
        and entries superseded since their last sweep stay below one in
        ``_SWEEP - 1`` of the log (none when the sweep covers it all, as it
        does whenever the changes since the last compaction are a quarter of
        the log)."""
        conn = self.conn
        mark, swept = conn.execute(f"SELECT compacted, swept FROM {PREFIX}scopes WHERE name = ?", (sc.name,)).fetchone()
        top = self._clock()
        if top <= mark:
            return
        spans = [(mark, top)]  # half-open (from, below): the log's last entry, the clock, always stays
        budget = _SWEEP * (top - mark)
        start = swept if swept < mark else 0
        for lo, hi in ((start, mark), (0, start)):
            if budget <= 0 or lo >= hi:
                continue
            row = conn.execute(
                f"SELECT lt FROM {S.LOG} WHERE lt > ? AND lt <= ? ORDER BY lt LIMIT 1 OFFSET ?", (lo, hi, budget - 1)
            ).fetchone()
            if row is None:  # the rest of this stretch fits in the budget
                end = hi
                budget -= conn.execute(f"SELECT count(*) FROM {S.LOG} WHERE lt > ? AND lt <= ?", (lo, hi)).fetchone()[0]
            else:
                end, budget = int(row[0]), 0
            spans.append((lo, end + 1))
            swept = end
        for lo, below in spans:
            for t in sc.tables:
                conn.execute(t.compact_sql(), {"from": lo, "below": below})
            conn.execute(f"DELETE FROM {S.LOG} WHERE tbl = 0 AND lt > ? AND lt < ?", (lo, min(below, top)))
        conn.execute(f"UPDATE {PREFIX}scopes SET compacted = ?, swept = ? WHERE name = ?", (top, swept, sc.name))

    def compact(self, scope: str | None = None) -> None:
        """Maintenance: drop superseded change-log entries of ``scope`` (every
        scope when None). :meth:`finish` does it at the end of each session
        this database receives; a database that only ever sends can call this
        (``peersync compact``) now and then. Safe to run at any time."""
        names = [scope] if scope is not None else self.scopes()
        for name in names:
            with self._txn(write=True):
                self._compact(self._scope(name))

    def describe(self, scope: str) -> ReplicaInfo:
        with self._txn(write=False):
            sc = self._scope(scope, reload=True)
            self._verify(sc)
            stored, forgotten = self.meta.stored_knowledge(scope)
            tick = self._clock()
        k = stored.add_range(sc.rid, 1, tick)
        return ReplicaInfo(scope, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(t.schema for t in sc.tables))

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self._batch(scope, known, after, upto, max_rows, max_bytes)[0]

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        return stream_of(self, scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch, with its ``last`` tick and whether it is final."""
        with self._txn(write=False) as conn:
            sc = self._scope(scope)
            fr = frame(self.meta, sc, sc.fingerprint, self._clock())
            filter_known = self._known_table(sc, known, after)
            skip = self.meta.skippable(sc.name, known)
            start = _skip(skip, after)
            # A batch stops before a block the destination can skip.
            horizon = min([upto] + [lo - 1 for lo, _ in skip if start < lo <= upto])
            room = max_bytes - len(fr.pack(after, horizon, []))
            tables, stop = read_text(
                conn, lambda: self._read(sc, filter_known, fr.marks, after, start, horizon, max_rows, room)
            )
            # Every tick up to ``last`` was considered: read, or filtered as known.
            last = horizon if stop is None else after + stop
            return fr.pack(after, last, tables), last, last >= fr.tick

    def _read(
        self,
        sc: Scope,
        filter_known: bool,
        marks: dict[int, int],
        first0: int,
        start: int,
        horizon: int,
        max_rows: int,
        room: int,
    ) -> tuple[list[list[Any]], int | None]:
        """Rows of ticks ``(start, horizon]`` in tick order, across tables, up to
        ``max_rows`` rows and ``room`` bytes (the first row goes whatever its
        size). Rows are read and encoded one at a time, so memory holds one
        batch, whatever the rows' size. Returns the tables' packed rows and the
        tick offset of the last row taken, or None if every row was taken."""
        readers: list[tuple[Tracked, int, Generator[Sequence[Any], None, None]]] = []
        cursors: list[sqlite3.Cursor] = []
        try:
            for t in sc.tables:
                base = self.conn.execute(t.first_time_sql(), (start,)).fetchone()
                params = {"after": start, "horizon": horizon, "first0": first0, "scope": sc.idx}
                params["base"] = base[0] if base else 0
                rows_sql, heads_sql = t.wire_sql(filter_known, marks)
                cursors.append(self.conn.execute(rows_sql, params))
                readers.append((t, params["base"], _wire_rows(self.conn, cursors[-1], heads_sql, params)))
            pack = row_packer()
            parts: list[list[bytes]] = [[] for _ in readers]
            # What a table's first row adds to the batch: its entry's name and framing.
            entry = [len(t.name) + 16 for t, _, _ in readers]
            size = 0
            last: int | None = None
            stream: Iterator[tuple[int, Any]]
            if len(readers) == 1:
                stream = zip(repeat(0), readers[0][2])
            else:
                stream = (
                    (i, row) for _, i, row in heapq.merge(*(_tagged(i, rows) for i, (_, _, rows) in enumerate(readers)))
                )
            for n, (i, row) in enumerate(stream):  # n: rows taken so far
                data = pack(row)
                grown = len(data) if parts[i] else len(data) + entry[i]
                if n and (n >= max_rows or size + grown > room):
                    break
                parts[i].append(data)
                size += grown
                last = row[0]
            else:
                last = None
        finally:
            for _, _, rows in readers:
                rows.close()
            for cur in cursors:
                cur.close()
        tables = [[t.name, base, PackedRows(len(p), p)] for (t, base, _), p in zip(readers, parts, strict=True) if p]
        return tables, last

    def _known_table(self, sc: Scope, known: Knowledge, after: int) -> bool:
        """Load what the destination knows, in local replica indexes, into
        ``temp._peersync_known``; False when it cannot exclude any candidate row."""
        rows = range_rows(known, self.meta.rep_idx, sc.rid, after)
        if not rows:
            return False
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _peersync_known"
            " (rep INTEGER, lo INTEGER, hi INTEGER, PRIMARY KEY (rep, lo))"
        )
        self.conn.execute("DELETE FROM temp._peersync_known")
        self.conn.executemany("INSERT OR IGNORE INTO temp._peersync_known VALUES (?, ?, ?)", rows)
        return True

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        with self._errors():
            sc = self._scope(scope)
        env = open_batch(data, scope, sc.schemas, sc.fingerprint, sc.rid)
        # A write that ends the whole transaction (a trigger's RAISE(ROLLBACK))
        # undoes the batch so far: apply it again, without that write. A
        # foreign key violation the apply's own check missed fails the COMMIT:
        # apply it again checking foreign keys statement by statement.
        redo = Redo()
        while True:
            learned = redo.size()
            try:
                with self._txn(write=True):
                    return SetApply(
                        self.conn, self.meta, sc, env, handler, lambda: self._has_foreign_keys(sc), redo
                    ).run()
            except StorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, TransactionLost) and redo.size() > learned:
                    continue
                if (
                    isinstance(cause, sqlite3.IntegrityError)
                    and cause.sqlite_errorcode == _SQLITE_CONSTRAINT_FOREIGNKEY
                    and not redo.immediate
                ):
                    redo.immediate = True
                    continue
                raise

    def finish(self, scope: str, end: SessionEnd) -> Knowledge:
        with self._txn(write=True):
            sc = self._scope(scope)
            self.conn.execute(S.SESSIONS_DDL)  # absent from databases provisioned before it existed
            stored = end_session(self.meta, sc, end, self._clock, lambda: self._compact(sc))
            tick = self._clock()
        return stored.add_range(sc.rid, 1, tick)

    def status(self, scope: str | None = None) -> list[Status]:
        """Status of one scope, or of every scope when ``scope`` is None."""
        names = [scope] if scope is not None else self.scopes()
        out = []
        with self._txn(write=False) as conn:
            for name in names:
                sc = self._scope(name, reload=True)
                pending = 0
                for t in sc.tables:
                    kc = ", ".join(t.kcols)
                    (n,) = conn.execute(
                        f"SELECT count(*) FROM (SELECT DISTINCT {kc} FROM {S.PENDING} WHERE scope = ? AND tbl = ?)",
                        (sc.idx, t.tid),
                    ).fetchone()
                    pending += n
                tracking = [t.tracking for t in sc.tables]
                out.append(scope_status(self.meta, sc, sc.fingerprint, sc.schemas, tracking, self._clock(), pending))
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        """Logged conflicts, oldest first."""
        with self._txn(write=False):
            return logged_conflicts(self.meta, scope, limit, self._scope)


def _show(key: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{c} {t}" + ("" if coll == "BINARY" else f" COLLATE {coll}") for c, t, coll in key)
