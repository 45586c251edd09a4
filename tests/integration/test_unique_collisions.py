"""Rows of different keys that collide on a UNIQUE column (issue 6, item 8).

u1 on A and u2 on B share an email: neither can apply on the other side. Such a row is
one persistent error (one log entry per row, kept up to date, not one per session), it is
pending in ``status`` and comes again every session until it can apply.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import rows, write

USERS = "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE)"


def pair(make_db: Callable[..., Path]) -> tuple[Path, Path]:
    a, b = make_db("a", USERS), make_db("b", USERS)
    for p in (a, b):
        with peersync.connect(p) as db:
            db.provision("s", ["users"])
    write(a, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    write(b, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    return a, b


def sync(a: Path, b: Path, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def errors(p: Path) -> list[peersync.Conflict]:
    with peersync.connect(p) as db:
        return [c for c in db.conflicts("s") if c.type is peersync.ConflictType.ERROR]


def test_a_colliding_row_is_one_persistent_error_not_one_per_session(make_db: Callable[..., Path]) -> None:
    a, b = pair(make_db)
    for _ in range(4):
        result = sync(a, b)
        assert result.errors == 2
    for p, key in ((a, ("u2",)), (b, ("u1",))):
        logged = errors(p)
        assert [c.key for c in logged] == [key]
        assert "UNIQUE" in logged[0].detail
        with peersync.connect(p) as db:
            assert db.status("s")[0].pending == 1


def test_a_colliding_row_applies_once_the_collision_is_gone(make_db: Callable[..., Path]) -> None:
    a, b = pair(make_db)
    sync(a, b)
    write(b, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    sync(a, b)
    sync(a, b)
    assert rows(a, "users") == rows(b, "users") == [("u1", "x@example.org"), ("u2", "y@example.org")]
    for p in (a, b):
        with peersync.connect(p) as db:
            assert db.status("s")[0].pending == 0
    assert sync(a, b).sent_a_to_b == 0
