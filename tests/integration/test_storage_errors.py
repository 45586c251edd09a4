"""How SQLite's failures reach users: a lock is DatabaseLocked by its error
code (never by the words in a message), and a SQLite too old for peersync's
SQL is refused at connect with the version it needs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync._adapters.sqlite.core import MIN_SQLITE

from ..helpers import write

MakeDb = Callable[..., Path]


def test_a_lock_held_by_another_connection_is_database_locked(make_db: MakeDb) -> None:
    path = make_db("a")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with peersync.connect(path, timeout=0.05) as db, pytest.raises(peersync.DatabaseLocked) as info:
            db.provision("s", ["item"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    cause = info.value.__cause__
    assert isinstance(cause, sqlite3.OperationalError)
    assert cause.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def test_an_error_that_mentions_locked_is_not_a_lock(make_db: MakeDb) -> None:
    """A destination trigger naming a missing table ``locked_rows`` fails with
    'no such table: main.locked_rows': a storage error, not a lock to retry."""
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        for d in (da, db_):
            d.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        write(b, "CREATE TRIGGER busy_audit AFTER INSERT ON item BEGIN INSERT INTO locked_rows VALUES (NEW.id); END")
        with pytest.raises(peersync.StorageError, match="locked_rows") as info:
            peersync.sync(da, db_, "s", direction="push")
    assert not isinstance(info.value, peersync.DatabaseLocked)


@pytest.mark.parametrize(
    ("code", "locked"),
    [
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_LOCKED, True),
        (517, True),  # SQLITE_BUSY_SNAPSHOT: an extended code of SQLITE_BUSY
        (262, True),  # SQLITE_LOCKED_SHAREDCACHE
        (sqlite3.SQLITE_ERROR, False),
        (sqlite3.SQLITE_CORRUPT, False),
    ],
)
def test_locks_are_told_by_their_error_code(make_db: MakeDb, code: int, locked: bool) -> None:
    exc = sqlite3.OperationalError("database is busy or locked, says the message" if not locked else "anything")
    exc.sqlite_errorcode = code
    with peersync.connect(make_db("a")) as db, pytest.raises(peersync.StorageError) as info, db._errors():
        raise exc
    assert isinstance(info.value, peersync.DatabaseLocked) is locked


def test_an_old_sqlite_is_refused_with_the_version_needed(make_db: MakeDb, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_db("a")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 36, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.36.0")
    with pytest.raises(peersync.StorageError, match=r"needs SQLite 3\.37\.0 or newer.*uses SQLite 3\.36\.0"):
        peersync.connect(path)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", MIN_SQLITE)
    peersync.connect(path).close()
