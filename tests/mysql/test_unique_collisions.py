"""Rows of different keys that collide on a UNIQUE column at a MariaDB
destination go to the conflict callback, as on SQLite
(tests/integration/test_unique_collisions.py): ``SOURCE`` evicts the local
row, ``MERGE`` writes another value; built-in policies leave a pending error."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import peersync

from .conftest import rows, sql, sqlite_file, sqlite_rows

USERS = "CREATE TABLE users (id VARCHAR(10) PRIMARY KEY, email VARCHAR(40) UNIQUE)"
LITE = "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE)"


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    url = mysql_db()
    sql(url, USERS, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    path = sqlite_file(tmp_path, LITE, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", ["users"])
    return url, path


def _sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def _converge(url: str, path: str) -> None:
    for _ in range(3):
        _sync(url, path)
    assert rows(url, "users") == sqlite_rows(path, "users")
    for u in (url, path):
        with peersync.connect(u) as db:
            assert db.status("s")[0].pending == 0
    again = _sync(url, path)
    assert again.sent_a_to_b == again.sent_b_to_a == 0


def test_a_callback_renames_a_row_colliding_at_mariadb(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    seen: list[peersync.Conflict] = []

    def rename(c: peersync.Conflict) -> peersync.Resolution | peersync.Outcome:
        seen.append(c)
        if c.type is peersync.ConflictType.ERROR and c.remote_row is not None:
            return peersync.Resolution(peersync.Outcome.MERGE, row={"email": f"{c.remote_row['id']}+x@example.org"})
        return peersync.Outcome.DEFER

    result = _sync(path, url, direction="push", policy=rename)
    assert result.errors == 0 and result.conflicts == 1
    assert seen[0].local_row == {"id": "u1", "email": "x@example.org"}
    assert seen[0].remote_row == {"id": "u2", "email": "x@example.org"}
    assert rows(url, "users") == [("u1", "x@example.org"), ("u2", "u2+x@example.org")]
    with peersync.connect(url) as db:
        assert db.status("s")[0].pending == 0
        (logged,) = db.conflicts("s")
        assert logged.outcome is peersync.Outcome.MERGE and logged.key == ("u2",)
    _converge(url, path)
    assert sqlite_rows(path, "users") == [("u1", "x@example.org"), ("u2", "u2+x@example.org")]


def test_a_callback_keeps_the_incoming_row_and_evicts_the_local_one(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    url, path = _pair(mysql_db, tmp_path)
    result = _sync(path, url, direction="push", policy=lambda c: peersync.Outcome.SOURCE)
    assert result.errors == 0
    assert rows(url, "users") == [("u2", "x@example.org")]
    _converge(url, path)
    assert sqlite_rows(path, "users") == [("u2", "x@example.org")]


def test_built_in_policies_and_deferring_callbacks_leave_the_collision_pending(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    url, path = _pair(mysql_db, tmp_path)
    for policy in [*peersync.Policy, lambda c: peersync.Outcome.DEFER]:
        assert _sync(path, url, direction="push", policy=policy).errors == 1  # type: ignore[arg-type]
    assert rows(url, "users") == [("u1", "x@example.org")]
    with peersync.connect(url) as db:
        assert db.status("s")[0].pending == 1
        errors = [c for c in db.conflicts("s") if c.type is peersync.ConflictType.ERROR]
        assert len(errors) == 1 and "Duplicate entry" in errors[0].detail
    c = sqlite3.connect(path)
    c.execute("UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    c.commit()
    c.close()
    _converge(url, path)
    assert rows(url, "users") == [("u1", "x@example.org"), ("u2", "y@example.org")]
