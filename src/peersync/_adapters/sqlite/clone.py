"""A new replica from a snapshot of an existing one (snapshot initialization).

:func:`clone_replica` copies a SQLite replica with the online backup API into a
new file and turns the copy into a new replica of one scope, exactly: the new
replica starts knowing what its source knew at the snapshot, so the first
session between them sends nothing either way, and with any other peer it
exchanges only what its source would have.

How the copy becomes a replica (the model: docs/design.md, "The model"):

- The snapshot is one read transaction on the source, so it holds every tick
  up to its newest one (its clock) and nothing after. Every row it holds was
  changed at the source at or before that tick.
- Scopes other than the one cloned are deprovisioned in the copy (their
  tracking goes, their tables and rows stay as plain tables). A row of a table
  two scopes share reports a different version in each scope, and one tracking
  row can carry only one explicit version: only one scope can be made exact.
- ``reidentify`` with the whole snapshot as its mark: rows whose last change
  was local to the source are relabelled with the source's replica id and their
  tick there (the version the source reports for them); rows that arrived from
  other replicas keep their versions. The new replica id is random; the
  knowledge is the source's at the snapshot (its own ticks up to the clock
  included). The clone's own ticks continue above the snapshot's clock and are
  stamped with the new id only, so the source's id is never stamped again.
- Kept as they are, because they describe the rows, which are identical: the
  pending changes (failed or deferred rows still come again), the records of
  partly applied sessions and applied blocks, forgotten knowledge.
- Not kept: the conflict log. It records what happened at a replica, and the
  clone resolved nothing; the source keeps its log (reading both would count
  every conflict twice). The home record names the clone's own file.

The clone is built in a hidden temporary file beside ``dst`` and linked into
place only when complete, so a failure leaves no ``dst`` behind and never
replaces a file that appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator

from peersync._adapters.sql.snapshot import SnapshotSource
from peersync._engine.errors import ConfigurationError, DatabaseLocked, StorageError
from peersync._engine.model import Status

from .peer import SQLitePeer
from .schema import HOME, HOME_DDL, LOG, PREFIX
from .txn import atomic

_LOCK_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def clone_replica(src: str, dst: str, scope: str, *, timeout: float = 5.0) -> Status:
    """Make ``dst``, a new SQLite database, from a consistent snapshot of the
    replica of ``scope`` in the SQLite file ``src``; return the new replica's
    status (a new replica id, the source's knowledge at the snapshot).

    ``src`` may be written meanwhile (in rollback-journal mode its writers wait
    for the snapshot, up to their busy timeout; in WAL mode they do not). Other
    scopes of ``src`` are not replicas in ``dst``: their tracking is removed
    and their tables stay as plain data. ``dst``'s conflict log starts empty.

    Raises :class:`~peersync.ConfigurationError` if ``dst`` exists or its
    folder does not, :class:`~peersync.InvalidURL` for a missing ``src``,
    :class:`~peersync.StorageError` if ``src`` is not a database,
    :class:`~peersync.ScopeError` for an unknown scope,
    :class:`~peersync.RepairNeeded` if ``src`` itself must be reidentified or
    repaired first, :class:`~peersync.DatabaseLocked` if a writer holds ``src``
    past ``timeout``. On any error no ``dst`` file is left and ``src`` is
    unchanged.

    >>> clone_replica("server1.db", "server2.db", "shop")  # doctest: +SKIP
    """
    with SQLitePeer(src, timeout=timeout) as source:
        # Refuses an unknown scope, a copy not yet reidentified, lost triggers.
        source.describe(scope)
        mode = stat.S_IMODE(os.stat(source.path).st_mode)
        return build_clone(dst, scope, lambda tmp: _snapshot(source, tmp), mode=mode, timeout=timeout)


def clone_from_server(source: SnapshotSource, dst: str, scope: str, *, timeout: float = 5.0) -> Status:
    """Make ``dst``, a new SQLite database, a new replica of ``scope`` from a
    consistent snapshot of a PostgreSQL or MariaDB replica (``source``, an
    open peer; see :mod:`peersync._adapters.sql.snapshot` for what the
    snapshot holds): the scope's tables (in its global names) and rows, with
    the source's knowledge at its snapshot bound. Raises as
    :func:`clone_replica` does, and :class:`~peersync.SchemaMismatch` for a
    table SQLite cannot rebuild with the same shape; on any error no ``dst``
    is left and ``source`` is unchanged."""

    def fill(tmp: str) -> None:
        from .from_server import write_snapshot

        with source.snapshot_of(scope) as snap:
            write_snapshot(tmp, snap)

    return build_clone(dst, scope, fill, timeout=timeout)


def build_clone(
    dst: str, scope: str, fill: Callable[[str], None], *, mode: int | None = None, timeout: float = 5.0
) -> Status:
    """Make ``dst`` a new replica of ``scope`` from the snapshot that ``fill``
    writes into an empty temporary file beside it (a local backup, or a stream
    from a server); the rest is :func:`clone_replica`'s. On any error, in
    ``fill`` or after, no ``dst`` and no temporary file are left."""
    target = os.path.abspath(dst)
    if os.path.lexists(target):
        raise _exists(dst)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ConfigurationError(f"cannot create {dst}: no such folder {folder}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".peersync-clone", dir=folder)
    except OSError as exc:
        raise StorageError(f"cannot create {dst}: {exc}") from exc
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        fill(tmp)
        _make_replica(tmp, target, scope)
        _publish(tmp, target, dst)
    except BaseException:
        _remove(tmp)
        raise
    with SQLitePeer(target, timeout=timeout) as clone:
        return clone.status(scope)[0]


def scope_snapshot(src: str, tmp: str, scope: str, *, timeout: float = 5.0) -> None:
    """Fill the empty file ``tmp`` with a consistent snapshot of ``src`` that
    holds ``scope`` alone, for a remote clone (docs/protocol.md, "Snapshot"):
    other scopes deprovisioned, every table that is neither in the scope nor
    referenced by one of its tables' foreign keys dropped, then vacuumed so no
    page keeps what was dropped. The replica id stays the source's: the
    receiver makes the copy a new replica, as :func:`clone_replica` does.
    Raises as :func:`clone_replica` does; ``src`` is unchanged."""
    with SQLitePeer(src, timeout=timeout) as source:
        source.describe(scope)
        _snapshot(source, tmp)
    with _alone(tmp, scope, "snapshot") as copy:
        conn = copy.conn
        keep = _referenced(conn, set(copy.schemas(scope)))
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        with atomic(conn):
            for (name,) in tables:
                if name not in keep and not name.startswith(("sqlite_", PREFIX)):
                    conn.execute(f'DROP TABLE "{name.replace(chr(34), chr(34) * 2)}"')
        conn.execute("VACUUM")


@contextlib.contextmanager
def _alone(path: str, scope: str, what: str) -> Iterator[SQLitePeer]:
    """The copy at ``path`` with every scope but ``scope`` deprovisioned; a
    SQLite error in the block is raised as :class:`~peersync.StorageError`
    ("cannot prepare the ``what`` of scope ...")."""
    with SQLitePeer(path) as copy:
        for other in copy.scopes():
            if other != scope:
                copy.deprovision(other)
        try:
            yield copy
        except sqlite3.Error as exc:
            raise StorageError(f"cannot prepare the {what} of scope {scope!r}: {exc}") from exc


def _referenced(conn: sqlite3.Connection, tables: set[str]) -> set[str]:
    """``tables`` and every table their foreign keys reach, transitively."""
    out, todo = set(tables), list(tables)
    while todo:
        name = todo.pop()
        for row in conn.execute('SELECT "table" FROM pragma_foreign_key_list(?)', (name,)):
            if row[0] not in out:
                out.add(row[0])
                todo.append(row[0])
    return out


def _snapshot(source: SQLitePeer, tmp: str) -> None:
    """Copy ``source`` into the empty file ``tmp`` as of one read transaction.

    The transaction is opened (and its busy timeout honoured) before the backup
    starts; the backup then reads through the same connection, so every page
    comes from that one snapshot whatever other connections write meanwhile.
    """
    conn = source.conn
    try:
        target = sqlite3.connect(tmp, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot create {tmp}: {exc}") from exc
    try:
        conn.execute("BEGIN")
        try:
            conn.execute(f"SELECT count(*) FROM {PREFIX}scopes").fetchone()
            conn.backup(target)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _LOCK_CODES:
            raise DatabaseLocked(f"{source.path}: database is locked by another connection") from exc
        raise StorageError(f"cannot snapshot {source.path}: {exc}") from exc
    finally:
        target.close()


def _make_replica(tmp: str, target: str, scope: str) -> None:
    """Turn the snapshot in ``tmp`` into a new replica of ``scope`` that will
    live at ``target`` (the same file, linked there: the same inode)."""
    with _alone(tmp, scope, "clone") as copy:
        conn = copy.conn
        with atomic(conn):
            (clock,) = conn.execute(f"SELECT COALESCE(max(lt), 0) FROM {LOG}").fetchone()
            conn.execute(HOME_DDL)
            # Every tick up to the clock is in the snapshot: reidentify
            # keeps the source's version of each of them.
            conn.execute(f"INSERT OR REPLACE INTO {HOME} VALUES (?, '', ?, ?)", (scope, target, clock))
            conn.execute(f"DELETE FROM {PREFIX}conflicts WHERE scope = ?", (scope,))
        copy.reidentify(scope)
        # reidentify recorded the temporary name; the file's inode is the clone's.
        conn.execute(f"UPDATE {HOME} SET path = ? WHERE scope = ?", (target, scope))


def _publish(tmp: str, target: str, shown: str) -> None:
    """Give the finished file its name, never replacing one that appeared
    since the check (a hard link fails if the name exists)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _exists(shown) from None
    except OSError:
        # A filesystem without hard links: the check and the rename are not
        # one step, but the window is this call.
        if os.path.lexists(target):
            raise _exists(shown) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


def _exists(dst: str) -> ConfigurationError:
    return ConfigurationError(f"{dst} already exists; clone makes a new database and never replaces one")


def _remove(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
