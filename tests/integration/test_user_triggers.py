"""Users' own triggers at a peer: what they change is tracked, and applying a row does not
set them off for nothing.

Applying a row touches only the columns whose values change (issue 6, item 7). A user's
trigger ``AFTER UPDATE OF body ... SET updated_at = now`` fires on every peer that applies a
change of ``body``; the ``updated_at`` it writes is a local change that travels back. If
applying that change set ``body`` again (unchanged), the trigger would fire again there,
and two peers would send the row back and forth for ever. And a trigger's side effect on
another row of the batch being applied is a local change like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import connect_all, rows, write

NOTE = """
CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT, updated_at INTEGER);
CREATE TRIGGER note_touch AFTER UPDATE OF body ON note BEGIN
  UPDATE note SET updated_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) WHERE id = NEW.id;
END;
CREATE TABLE audit (n INTEGER, at INTEGER);
CREATE TRIGGER note_audit AFTER UPDATE ON note BEGIN INSERT INTO audit VALUES (NEW.id, NULL); END;
"""


def pair(make_db: Callable[..., Path]) -> tuple[Path, Path]:
    a, b = make_db("a", NOTE), make_db("b", NOTE)
    for p in (a, b):
        with peersync.connect(p) as db:
            db.provision("s", ["note"])
    return a, b


def sync(a: Path, b: Path) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s")


def audit(p: Path) -> int:
    return len(rows(p, "audit"))


def test_column_specific_trigger_does_not_make_peers_ping_pong(make_db: Callable[..., Path]) -> None:
    a, b = pair(make_db)
    write(a, "INSERT INTO note VALUES (1, 'draft', 0)")
    sync(a, b)
    write(a, "UPDATE note SET body = 'final' WHERE id = 1")
    moved = [sync(a, b) for _ in range(4)]
    sent = [r.sent_a_to_b + r.sent_b_to_a for r in moved]
    assert sent[-2:] == [0, 0], f"rows still moving after {len(sent)} rounds: {sent}"
    assert rows(a, "note") == rows(b, "note")
    assert rows(a, "note")[0][1] == "final"


def test_an_identical_row_is_not_written(make_db: Callable[..., Path]) -> None:
    """Both peers write the same row: applying the other's version changes nothing, so no
    user trigger fires."""
    a, b = pair(make_db)
    write(a, "INSERT INTO note VALUES (1, 'same', 5)")
    sync(a, b)
    before = audit(a), audit(b)
    write(a, "UPDATE note SET updated_at = 7 WHERE id = 1")
    write(b, "UPDATE note SET updated_at = 7 WHERE id = 1")
    after_writes = audit(a), audit(b)
    assert after_writes == (before[0] + 1, before[1] + 1)
    sync(a, b)
    sync(a, b)
    assert (audit(a), audit(b)) == after_writes
    assert rows(a, "note") == rows(b, "note") == [(1, "same", 7)]


def test_an_update_sets_only_the_changed_columns(make_db: Callable[..., Path]) -> None:
    schema = """
    CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT, tag TEXT);
    CREATE TABLE seen (col TEXT, n INTEGER);
    CREATE TRIGGER t_body AFTER UPDATE OF body ON note BEGIN INSERT INTO seen VALUES ('body', 0); END;
    CREATE TRIGGER t_tag AFTER UPDATE OF tag ON note BEGIN INSERT INTO seen VALUES ('tag', 0); END;
    """
    a, b = make_db("a", schema), make_db("b", schema)
    for p in (a, b):
        with peersync.connect(p) as db:
            db.provision("s", ["note"])
    write(a, "INSERT INTO note VALUES (1, 'x', 'red')")
    sync(a, b)
    write(a, "UPDATE note SET tag = 'blue' WHERE id = 1")
    sync(a, b)
    assert rows(b, "seen") == [("tag", 0)]
    assert rows(b, "note") == [(1, "x", "blue")]


@pytest.mark.parametrize(
    "batch_size",
    [
        pytest.param(1, id="row-per-batch"),
        pytest.param(100, id="one-batch"),
    ],
)
def test_destination_trigger_changing_a_row_of_the_same_batch_is_tracked(
    make_db: Callable[..., Path], batch_size: int
) -> None:
    """A trigger that only B has, fired by applying row 2, updates row 1 of the same batch.
    While a batch applies, the triggers skip the rows it stamps, so the apply compares
    afterwards what it wrote with what is there: the trigger's change is a local change at
    B, sent on like any other, and the three peers converge, with one row per batch or both
    rows in one. Untracked, B's row 1 kept A's version with other content: one version, two
    contents, for good."""
    plain = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
    trig = plain + (
        "CREATE TRIGGER touch AFTER INSERT ON item WHEN NEW.id = 2 BEGIN"
        " UPDATE item SET name = 'touched' WHERE id = 1; END;"
    )
    pa, pb, pc = make_db("a", plain), make_db("b", trig), make_db("c", plain)
    dbs = connect_all(pa, pb, pc)
    a, b, c = dbs
    try:
        for d in dbs:
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'one'), (2, 'two')")
        peersync.sync(a, b, "s", batch_size=batch_size)
        for _ in range(2):
            peersync.sync(b, c, "s")
            peersync.sync(c, a, "s")
            peersync.sync(a, b, "s")
        assert rows(pa, "item") == rows(pb, "item") == rows(pc, "item")
    finally:
        for d in dbs:
            d.close()
