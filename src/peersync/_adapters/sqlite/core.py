"""The SQLite peer's base: opening a database file, translating ``sqlite3``
errors, transactions, the scope cache, the file's home record (copies and
restored backups are refused) and compaction of the change log.

Every write runs in one ``BEGIN IMMEDIATE`` transaction; a kill at any point
leaves the file as it was before that transaction or after it. ``sqlite3``
exceptions are translated to :mod:`peersync` ones at this boundary.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from peersync._adapters.sql.dialect import SQLITE
from peersync._adapters.sql.meta import Meta
from peersync._adapters.sql.scopes import cached, load_scope
from peersync._engine.errors import (
    ConfigurationError,
    DatabaseLocked,
    InvalidURL,
    RepairNeeded,
    StorageError,
    SyncError,
)
from peersync._engine.schema import fingerprint

from . import catalog, triggers
from . import schema as S
from .schema import PREFIX, Scope, Tracked
from .text import Connection
from .txn import TransactionLost, atomic

# The oldest SQLite with everything peersync's SQL uses: pragma_table_list
# (3.37.0); also RETURNING (3.35.0) and UPDATE ... FROM (3.33.0).
MIN_SQLITE = (3, 37, 0)
_LOCK_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# SQLite counts the busy timeout in milliseconds, in a 32-bit int.
MAX_TIMEOUT = (2**31 - 1) // 1000
_SWEEP = 4  # log entries below the compaction mark checked per tick above it


def side_effects(conn: sqlite3.Connection) -> bool:
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


def _gaps(fresh: list[tuple[int, int]], lo: int, below: int) -> list[tuple[int, int]]:
    """The open intervals of ``(lo, below)`` that no range of ``fresh``
    (inclusive tick ranges) covers, empty ones included."""
    gaps, at = [], lo
    for a, b in sorted(fresh):
        if b <= at or a >= below:
            continue
        gaps.append((at, a))
        at = b
    return [*gaps, (at, below)]


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


class SQLiteCore:
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
        if os.path.isdir(self.path):
            raise InvalidURL(f"{path} is a directory, not a database file")
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
        # Per scope, tick ranges of log entries that applies on this connection
        # wrote for rows never seen before, current when they committed.
        self._fresh: dict[str, list[tuple[int, int]]] = {}
        self.meta = Meta(self.conn, SQLITE)

    # -- plumbing -------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

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
        def load() -> Scope:
            idx, rid, _, tables, names = load_scope(
                self.meta, name, self.path, lambda t, tid: replace(catalog.introspect(self.conn, t), tid=tid),
                catalog.fingerprint_holds, lambda names: self._changed_msg(name, names),
            )  # fmt: skip
            (version,) = self.conn.execute("PRAGMA schema_version").fetchone()
            effects = side_effects(self.conn)
            shapes = [names.schema_out(t.schema) for t in tables]
            sc = Scope(name, idx, rid, fingerprint(shapes), tables, effects, version)
            sc.names = names
            return sc

        return cached(self._scopes, name, reload, load)

    def _has_foreign_keys(self, sc: Scope) -> bool:
        if sc.foreign_keys is None:
            sc.foreign_keys = _foreign_keys(self.conn, sc.tables)
        return sc.foreign_keys

    def _clock(self) -> int:
        return S.clock(self.conn)

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
        faults = triggers.trigger_faults(self.conn, sc.tables)
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
        rekeyed = self._rekeyed(tables)
        if rekeyed:
            where = f"{shlex.quote(self.path)} --scope {shlex.quote(scope)}"
            return (
                f"the primary key of table {rekeyed} of scope {scope!r} in {self.path} changed since provisioning:"
                " peersync knows rows by their key, so --migrate cannot follow; give the table the same key on"
                " every peer (sync each first), then deprovision the scope and provision it again on each (here:"
                f" 'peersync deprovision {where}', then 'peersync init {where} {flags}')"
            )
        if provisioning:
            return f"the tables of scope {scope!r} in {self.path} changed shape; to keep its tracking, run '{cmd}'"
        return (
            f"the tables of scope {scope!r} in {self.path} changed since provisioning; run '{cmd}'"
            " here and on every peer whose tables changed the same way"
        )

    def _rekeyed(self, tables: Sequence[str]) -> str | None:
        """The first of ``tables`` whose key is not the one stored when it was
        provisioned (None: none, or it cannot be told)."""
        try:
            stored = dict(self.conn.execute(f"SELECT tbl, definition FROM {PREFIX}tracked").fetchall())
            for name in tables:
                if name in stored and json.loads(stored[name])[1] != list(
                    catalog.introspect(self.conn, name).schema.key
                ):
                    return name
        except (sqlite3.Error, SyncError, ValueError):
            return None  # the message without this detail is still right
        return None

    def _logged(self, gap: tuple[int, int]) -> bool:
        """Whether a table's log entry lies in the open interval ``gap``."""
        row = self.conn.execute(f"SELECT 1 FROM {S.LOG} WHERE lt > ? AND lt < ? AND tbl != 0 LIMIT 1", gap)
        return row.fetchone() is not None

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
        the log).

        Entries since the mark that applies on this connection wrote for rows
        never seen before (``_fresh``) were each their row's current entry
        when they committed; a later change to such a row logs an entry
        outside them. So when no table's entry lies outside them, nothing
        since the mark is superseded and the probe is skipped. (A batch that
        names a key twice can leave its first entry: a sweep drops it later.)"""
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
        fresh = self._fresh.pop(sc.name, [])
        for lo, below in spans:
            gaps = _gaps(fresh, lo, below) if lo == mark else [(lo, below)]
            # Only entries of never-seen rows since the mark: nothing superseded them.
            if len(gaps) == 1 or any(self._logged(g) for g in gaps):
                for t in sc.tables:
                    conn.execute(t.compact_sql(), {"from": lo, "below": below})
            conn.execute(f"DELETE FROM {S.LOG} WHERE tbl = 0 AND lt > ? AND lt < ?", (lo, min(below, top)))
        conn.execute(f"UPDATE {PREFIX}scopes SET compacted = ?, swept = ? WHERE name = ?", (top, swept, sc.name))
