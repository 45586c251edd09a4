"""Rows of different keys that collide on a UNIQUE column at a server
destination go to the conflict callback, as on SQLite
(tests/integration/test_unique_collisions.py): ``SOURCE`` evicts the local
row, ``MERGE`` writes another value; built-in policies leave a pending error.
Each test runs on PostgreSQL and on MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peersync

from .conftest import by_kind, provisioned, rows, run, sync


def _pair(server: Any, tmp_path: Path) -> tuple[str, str]:
    """User u1 on the server and u2 in a SQLite file, with the same email."""
    u1 = "INSERT INTO users VALUES ('u1', 'x@example.org')"
    return provisioned(
        server,
        tmp_path,
        "users",
        [
            "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE)",
            "INSERT INTO users VALUES ('u2', 'x@example.org')",
        ],
        pg=["CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE)", u1],
        mysql=["CREATE TABLE users (id VARCHAR(10) PRIMARY KEY, email VARCHAR(40) UNIQUE)", u1],
    )


def _converge(server: Any, url: str, path: str) -> None:
    for _ in range(3):
        sync(url, path)
    assert rows(url, "users") == rows(path, "users")
    for u in (url, path):
        with peersync.connect(u) as db:
            assert db.status("s")[0].pending == 0
    again = sync(url, path)
    assert again.sent_a_to_b == again.sent_b_to_a == 0


def test_a_callback_renames_a_row_colliding_at_the_server(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    seen: list[peersync.Conflict] = []

    def rename(c: peersync.Conflict) -> peersync.Resolution | peersync.Outcome:
        seen.append(c)
        if c.type is peersync.ConflictType.ERROR and c.remote_row is not None:
            return peersync.Resolution(peersync.Outcome.MERGE, row={"email": f"{c.remote_row['id']}+x@example.org"})
        return peersync.Outcome.DEFER

    result = sync(path, url, direction="push", policy=rename)
    assert result.errors == 0 and result.conflicts == 1
    assert seen[0].local_row == {"id": "u1", "email": "x@example.org"}
    assert seen[0].remote_row == {"id": "u2", "email": "x@example.org"}
    assert rows(url, "users") == [("u1", "x@example.org"), ("u2", "u2+x@example.org")]
    with peersync.connect(url) as db:
        assert db.status("s")[0].pending == 0
        (logged,) = db.conflicts("s")
        assert logged.outcome is peersync.Outcome.MERGE and logged.key == ("u2",)
    _converge(server, url, path)
    assert rows(path, "users") == [("u1", "x@example.org"), ("u2", "u2+x@example.org")]


def test_a_callback_keeps_the_incoming_row_and_evicts_the_local_one(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    result = sync(path, url, direction="push", policy=lambda c: peersync.Outcome.SOURCE)
    assert result.errors == 0
    assert rows(url, "users") == [("u2", "x@example.org")]
    _converge(server, url, path)
    assert rows(path, "users") == [("u2", "x@example.org")]


def test_built_in_policies_and_deferring_callbacks_leave_the_collision_pending(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    for policy in [*peersync.Policy, lambda c: peersync.Outcome.DEFER]:
        assert sync(path, url, direction="push", policy=policy).errors == 1  # type: ignore[arg-type]
    assert rows(url, "users") == [("u1", "x@example.org")]
    with peersync.connect(url) as db:
        assert db.status("s")[0].pending == 1
        errors = [c for c in db.conflicts("s") if c.type is peersync.ConflictType.ERROR]
        assert len(errors) == 1
        assert by_kind(server, "duplicate key value violates unique constraint", "Duplicate entry") in errors[0].detail
    run(path, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    _converge(server, url, path)
    assert rows(url, "users") == [("u1", "x@example.org"), ("u2", "y@example.org")]
