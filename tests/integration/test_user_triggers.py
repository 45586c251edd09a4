"""Applying a row touches only the columns whose values change (issue 6, item 7).

A user's trigger ``AFTER UPDATE OF body ... SET updated_at = now`` fires on every peer
that applies a change of ``body``; the ``updated_at`` it writes is a local change that
travels back. If applying that change set ``body`` again (unchanged), the trigger would
fire again there, and two peers would send the row back and forth for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import rows, write

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
