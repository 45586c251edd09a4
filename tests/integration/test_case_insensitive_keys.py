"""Primary keys declared ``COLLATE NOCASE``: 'urgent' and 'URGENT' are one row.

The tracking table compares keys with the same collation as the user's key, so a key
written in two letter cases on two peers is one row with an insert/insert conflict,
resolved the same way everywhere, and a change of letter case is a change like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import rows, write

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
