"""Knowledge claims only what the rows hold or beat (docs/design.md, "Knowledge").

Each test is a short history among three peers that diverged for good, with every later
sync sending nothing, before the rule it is named for held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import rows, write

TASK = "CREATE TABLE task (id INTEGER PRIMARY KEY, status TEXT)"
USERS = "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE)"


def three(make_db: Callable[..., Path], schema: str, table: str) -> list[Path]:
    paths = [make_db(n, schema) for n in "abc"]
    for p in paths:
        with peersync.connect(p) as db:
            db.provision("s", [table])
    return paths


def push(src: Path, dst: Path, **kw: object) -> peersync.SyncResult:
    with peersync.connect(src) as a, peersync.connect(dst) as b:
        return peersync.sync(a, b, "s", direction="push", **kw)  # type: ignore[arg-type]


def full_rounds(paths: list[Path], n: int = 3) -> int:
    sent = 0
    for _ in range(n):
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                with peersync.connect(paths[i]) as a, peersync.connect(paths[j]) as b:
                    r = peersync.sync(a, b, "s")
                    sent += r.sent_a_to_b + r.sent_b_to_a
    return sent


def later() -> None:
    time.sleep(0.02)  # change times are wall-clock milliseconds


def test_identical_content_keeps_the_winning_version(make_db: Callable[..., Path]) -> None:
    """C and B write the same value concurrently, A a different one in between: B's write is
    the latest and must win everywhere, also on C, which held the same content as B."""
    a, b, c = three(make_db, TASK, "task")
    write(a, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    write(c, "UPDATE task SET status = 'done' WHERE id = 1")
    later()
    write(a, "UPDATE task SET status = 'blocked' WHERE id = 1")
    later()
    write(b, "UPDATE task SET status = 'done' WHERE id = 1")
    push(b, c)  # same content: C must take B's (later) version, not only learn it
    push(a, c)  # A's version lies between C's and B's in time: it must lose on C too
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "done")]
    assert full_rounds([a, b, c], 1) == 0


def test_delete_delete_keeps_the_winning_tombstone(make_db: Callable[..., Path]) -> None:
    """C and B delete concurrently, A updates in between: B's delete is the latest, so the
    row stays deleted everywhere; it must not come back on C."""
    a, b, c = three(make_db, TASK, "task")
    write(a, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    write(c, "DELETE FROM task WHERE id = 1")
    later()
    write(a, "UPDATE task SET status = 'blocked' WHERE id = 1")
    later()
    write(b, "DELETE FROM task WHERE id = 1")
    push(b, c)
    push(a, c)
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == []


def test_failed_row_comes_again_whatever_knowledge_arrives(make_db: Callable[..., Path]) -> None:
    """u1 fails on B (its email collides with B's u2). Knowledge of u1 reaches B through A
    and C meanwhile; once B frees the email, u1 must still arrive."""
    a, b, c = three(make_db, USERS, "users")
    write(a, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    write(b, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    push(a, c)
    assert push(c, b).errors == 1
    push(c, a)
    push(a, b)
    push(c, b)
    write(b, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    full_rounds([a, b, c])
    want = [("u1", "x@example.org"), ("u2", "y@example.org")]
    assert rows(a, "users") == rows(b, "users") == rows(c, "users") == want
    assert full_rounds([a, b, c], 1) == 0


def test_deferred_conflict_comes_again_whatever_knowledge_arrives(make_db: Callable[..., Path]) -> None:
    """B defers A's newer edit twice; knowledge of it then reaches B through C. The edit must
    still come to B and win there, not B's older edit everywhere."""
    a, b, c = three(make_db, TASK, "task")
    write(a, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    write(b, "UPDATE task SET status = 'older' WHERE id = 1")
    later()
    write(a, "UPDATE task SET status = 'newer' WHERE id = 1")

    def defer(conflict: peersync.Conflict) -> peersync.Outcome:
        return peersync.Outcome.DEFER

    push(a, c)
    assert push(c, b, policy=defer).conflicts == 1
    push(c, a)
    push(a, b, policy=defer)
    push(c, b)
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "newer")]
    with peersync.connect(b) as db:
        outcomes = [(x.type, x.outcome) for x in db.conflicts("s")]
    assert (peersync.ConflictType.UPDATE_UPDATE, peersync.Outcome.SOURCE) in outcomes
