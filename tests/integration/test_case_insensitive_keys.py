"""Keys and columns declared ``COLLATE NOCASE``: 'urgent' and 'URGENT' are one key.

The tracking table compares keys with the same collation as the user's key, so a key
written in two letter cases on two peers is one row with an insert/insert conflict,
resolved the same way everywhere. A change of letter case alone, in a key or in any other
column, is a change like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import connect_all, rows, write

TAG = "CREATE TABLE tag (name TEXT PRIMARY KEY COLLATE NOCASE, color TEXT)"


def provisioned(make_db: Callable[..., Path], names: str, schema: str = TAG) -> list[Path]:
    paths = [make_db(n, schema) for n in names]
    for p in paths:
        with peersync.connect(p) as db:
            db.provision("s", ["tag"])
    return paths


def sync(a: Path, b: Path, direction: str = "both") -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", direction=direction)


def test_concurrent_inserts_in_two_letter_cases_are_one_insert_insert_conflict(make_db: Callable[..., Path]) -> None:
    a, b, c = provisioned(make_db, "abc")
    write(a, "INSERT INTO tag VALUES ('urgent', 'red')")
    time.sleep(0.02)
    write(b, "INSERT INTO tag VALUES ('URGENT', 'blue')")  # later: wins everywhere
    sync(a, c, "push")
    result = sync(c, b)
    assert result.conflicts == 1
    for _ in range(2):
        sync(a, b)
        sync(a, c)
    assert rows(a, "tag") == rows(b, "tag") == rows(c, "tag") == [("URGENT", "blue")]
    with peersync.connect(b) as db:
        logged = [(x.type, x.outcome) for x in db.conflicts("s")]
    assert logged == [(peersync.ConflictType.INSERT_INSERT, peersync.Outcome.DESTINATION)]
    assert sync(b, c).sent_a_to_b == 0


def test_case_only_edit_of_nocase_key_syncs(make_db: Callable[..., Path]) -> None:
    a, b = provisioned(make_db, "ab")
    write(a, "INSERT INTO tag VALUES ('urgent', 'red')")
    sync(a, b)
    write(b, "UPDATE tag SET name = 'Urgent' WHERE name = 'urgent'")
    assert sync(a, b).sent_b_to_a == 1
    assert rows(a, "tag") == rows(b, "tag") == [("Urgent", "red")]
    assert sync(a, b).sent_b_to_a == 0


def test_nocase_key_deleted_and_reinserted_in_other_case_syncs(make_db: Callable[..., Path]) -> None:
    a, b = provisioned(make_db, "ab")
    write(a, "INSERT INTO tag VALUES ('abc', 'red')")
    sync(a, b)
    write(a, "DELETE FROM tag WHERE name = 'abc'", "INSERT INTO tag VALUES ('ABC', 'blue')")
    sync(a, b)
    sync(a, b)
    assert rows(b, "tag") == rows(a, "tag") == [("ABC", "blue")]


def test_nocase_composite_key_keeps_one_tracking_row(make_db: Callable[..., Path]) -> None:
    schema = (
        "CREATE TABLE tag (owner TEXT COLLATE NOCASE, name TEXT COLLATE NOCASE, color TEXT,"
        " PRIMARY KEY (owner, name)) WITHOUT ROWID"
    )
    a, b = provisioned(make_db, "ab", schema)
    write(a, "INSERT INTO tag VALUES ('ann', 'urgent', 'red')")
    time.sleep(0.02)
    write(b, "INSERT INTO tag VALUES ('ANN', 'Urgent', 'blue')")
    sync(a, b)
    sync(a, b)
    assert rows(a, "tag") == rows(b, "tag") == [("ANN", "Urgent", "blue")]
    for p in (a, b):
        with peersync.connect(p) as db:
            assert db.status("s")[0].tracked_rows == 1


def test_case_only_edit_of_nocase_column_syncs(make_db: Callable[..., Path]) -> None:
    """A change of letter case alone in a ``COLLATE NOCASE`` column (not a key) is a change:
    the update trigger compares old and new values byte for byte, not with the column's
    collation (under which 'bob@x.org' IS 'Bob@X.org', so the edit was never tracked nor
    sent, and the peers diverged for good; an RTRIM column's trailing spaces likewise)."""
    schema = "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE);"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["u"])
        write(pa, "INSERT INTO u VALUES (1, 'bob@x.org')")
        peersync.sync(a, b, "s")
        write(pa, "UPDATE u SET email = 'Bob@X.org' WHERE id = 1")
        peersync.sync(a, b, "s")
        assert rows(pb, "u") == rows(pa, "u") == [(1, "Bob@X.org")]
    finally:
        a.close()
        b.close()
