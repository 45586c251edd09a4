"""The SQLite peer: the Peer calls on one database file (its base, the scope
management and the apply live in ``core.py``, ``provision.py`` and
``apply.py``)."""

from __future__ import annotations

import sqlite3

from peersync._adapters.sql.batch_frame import frame
from peersync._adapters.sql.finals import Final, keep_final, kept_finals
from peersync._adapters.sql.reports import logged_conflicts, scope_status
from peersync._adapters.sql.scopes import described
from peersync._adapters.sql.session_end import end_session
from peersync._engine.errors import (
    StorageError,
)
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
)
from peersync._engine.peer import BatchPeer
from peersync._engine.wire import Envelope, open_batch

from . import schema as S
from .apply import SetApply
from .enumerate import known_table, read_rows, skip_blocks
from .provision import SQLiteProvisioning
from .staging import Redo
from .text import read_text
from .txn import TransactionLost, page_cache

# Page cache an apply needs per byte of its batch: the rows, their tracking
# rows and log entries, with the B-trees' slack (about twice the batch's size
# for an initial sync), and room to spare.
_CACHE_PER_BATCH_BYTE = 4

_SQLITE_CONSTRAINT_FOREIGNKEY = 787


class SQLitePeer(SQLiteProvisioning, BatchPeer):
    """A SQLite database file as a peersync peer.

    Opening never creates a file: a missing path raises
    :class:`~peersync.InvalidURL`, a file that is not a database
    :class:`~peersync.StorageError`. ``timeout`` is how long to wait for
    another writer's lock before :class:`~peersync.DatabaseLocked`.
    """

    # -- the Peer interface ----------------------------------------------------------
    def schemas(self, scope: str) -> dict[str, TableSchema]:
        with self._errors():
            return {s.name: s for s in self._scope(scope).global_schemas()}

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
        return described(scope, sc, tick, stored, forgotten)

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch, with its ``last`` tick and whether it is final."""
        with self._txn(write=False) as conn:
            sc = self._scope(scope)
            fr = frame(self.meta, sc, sc.fingerprint, self._clock(), sc.names.wire_tables)
            filter_known = known_table(self.conn, self.meta, sc, known, after)
            skip = self.meta.skippable(sc.name, known)
            start = skip_blocks(skip, after)
            # A batch stops before a block the destination can skip.
            horizon = min([upto] + [lo - 1 for lo, _ in skip if start < lo <= upto])
            room = max_bytes - len(fr.pack(after, horizon, []))
            tables, stop = read_text(
                conn, lambda: read_rows(self.conn, sc, filter_known, fr.marks, after, start, horizon, max_rows, room)
            )
            # Every tick up to ``last`` was considered: read, or filtered as known.
            last = horizon if stop is None else after + stop
            return fr.pack(after, last, tables), last, last >= fr.tick

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        with self._errors():
            sc = self._scope(scope)
        env = open_batch(sc.names.batch_in(data), scope, sc.schemas, sc.fingerprint, sc.rid)
        handler = sc.names.handler(handler)
        with self._errors(), page_cache(self.conn, _CACHE_PER_BATCH_BYTE * len(data) // 1024):
            return self._apply(sc, env, handler)

    def _apply(self, sc: S.Scope, env: Envelope, handler: ConflictHandler) -> ApplyReport:
        # A write that ends the whole transaction (a trigger's RAISE(ROLLBACK))
        # undoes the batch so far: apply it again, without that write. A
        # foreign key violation the apply's own check missed fails the COMMIT:
        # apply it again checking foreign keys statement by statement.
        redo = Redo()
        while True:
            learned = redo.size()
            try:
                with self._txn(write=True):
                    job = SetApply(self.conn, self.meta, sc, env, handler, lambda: self._has_foreign_keys(sc), redo)
                    report = sc.names.report_out(job.run())
                if job.fresh is not None:  # committed
                    self._fresh.setdefault(sc.name, []).append(job.fresh)
                return report
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
            stored = end_session(self.meta, sc, sc.names.end_in(end), self._clock, lambda: self._compact(sc))
            tick = self._clock()
        return stored.add_range(sc.rid, 1, tick)

    def keep_final(self, scope: str, final: Final, known: Knowledge) -> None:
        """Record a final batch applied here (``_adapters/sql/finals.py``)."""
        with self._txn(write=True):
            keep_final(self.meta, scope, final, known, self.path)

    def kept_finals(self, scope: str) -> list[Final]:
        with self._txn(write=False):
            return kept_finals(self.meta, scope, self.path)

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
                tracking = [self.meta.d.quote(t.tracking) for t in sc.tables]
                tables = [s.name for s in sc.global_schemas()]
                out.append(
                    scope_status(self.meta, sc, sc.fingerprint, tables, tracking, self._clock(), pending, sc.names)
                )
        return out

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[Conflict]:
        """Logged conflicts, oldest first."""
        with self._txn(write=False):
            return logged_conflicts(self.meta, scope, limit, self._scope)
