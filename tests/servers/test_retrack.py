"""Schema changes, rebuilt tables, disabled triggers and copied databases on a
server database: ``migrate``, ``repair`` and ``reidentify`` keep every row's
tracking, as on SQLite (each test runs on PostgreSQL and on MariaDB, but for
what only one of them can do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import RepairNeeded, SchemaMismatch, ScopeError, SyncError

from .conftest import by_kind, provisioned, rows, run, sync

LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"
ROWS = "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')"


def _pair(server: Any, tmp_path: Path) -> tuple[str, str]:
    """A server database and a SQLite file, scope ``s`` over ``items``, synced."""
    url, path = provisioned(
        server,
        tmp_path,
        "items",
        [LITE],
        pg=["CREATE TABLE items (id int PRIMARY KEY, name varchar(40))", ROWS],
        mysql=["CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))", ROWS],
    )
    sync(url, path)
    return url, path


def test_migrate_keeps_unsynced_edits_and_the_new_column_syncs(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    run(url, "UPDATE items SET name = 'server' WHERE id = 1", "DELETE FROM items WHERE id = 3")
    run(path, "UPDATE items SET name = 'lite' WHERE id = 2")
    run(url, "ALTER TABLE items ADD COLUMN color VARCHAR(10)")
    run(path, "ALTER TABLE items ADD COLUMN color VARCHAR(10)")
    with pytest.raises(SchemaMismatch, match="--migrate"), peersync.connect(url) as db:
        db.describe("s")
    with peersync.connect(url) as db:
        report = db.migrate("s", ["items"])
        assert report.migrated and report.retracked == ("items",) and report.untracked == ()
        again = db.migrate("s")  # idempotent
        assert not again.migrated and again.retracked == ()
    with pytest.raises(SchemaMismatch):
        sync(url, path)  # the SQLite peer has not migrated yet
    with peersync.connect(path) as db:
        db.migrate("s")
    result = sync(url, path)
    assert (result.sent_a_to_b, result.sent_b_to_a) == (2, 1)  # only the unsynced edits travel
    run(url, "UPDATE items SET color = 'red' WHERE id = 2")  # a write to the new column alone is tracked
    sync(url, path)
    assert rows(url, "items") == rows(path, "items") == [(1, "server", None), (2, "lite", "red")]


def test_migrate_refuses_a_changed_key_and_other_tables(server: Any, tmp_path: Path) -> None:
    url, _ = _pair(server, tmp_path)
    run(url, "CREATE TABLE other (id INT PRIMARY KEY)")
    with peersync.connect(url) as db:
        with pytest.raises(ScopeError, match="keeps a scope's tables"):
            db.migrate("s", ["items", "other"])
        with pytest.raises(ScopeError, match="unknown scope"):
            db.migrate("nope")
    run(url, by_kind(server, "ALTER TABLE items ALTER COLUMN id TYPE text", "ALTER TABLE items MODIFY id VARCHAR(10)"))
    with peersync.connect(url) as db, pytest.raises(ScopeError, match="primary key of table items changed"):
        db.migrate("s")


def test_rebuilt_table_is_refused_until_repaired_then_its_writes_sync(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    # the usual rebuild: new table, copy, drop (its triggers go with it), rename
    run(
        url,
        "CREATE TABLE items_new (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        "INSERT INTO items_new SELECT * FROM items",
        "DROP TABLE items",
        by_kind(server, "ALTER TABLE items_new RENAME TO items", "RENAME TABLE items_new TO items"),
        "INSERT INTO items VALUES (4, 'new')",
        "DELETE FROM items WHERE id = 1",
        "UPDATE items SET name = 'edited' WHERE id = 2",
    )
    with pytest.raises(RepairNeeded, match=by_kind(server, "peersync repair", "triggers lost")):
        sync(url, path)
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert (report.retracked, report.untracked, report.inserted, report.deleted) == (("items",), ("items",), 1, 1)
        assert not report.migrated
    sync(url, path)
    assert rows(path, "items") == [(2, "b"), (3, "c"), (4, "new")]  # the update went unseen
    with peersync.connect(url) as db:
        assert db.repair("s", restamp=True).restamped == 3
    sync(url, path)
    assert rows(url, "items") == rows(path, "items") == [(2, "edited"), (3, "c"), (4, "new")]
    run(url, "UPDATE items SET name = 'after' WHERE id = 3")  # tracked again
    assert sync(url, path).sent_a_to_b == 1


def test_repair_refuses_a_changed_shape(server: Any, tmp_path: Path) -> None:
    url, _ = _pair(server, tmp_path)
    run(url, "ALTER TABLE items ADD COLUMN x INT")
    with peersync.connect(url) as db, pytest.raises(SchemaMismatch, match="--migrate"):
        db.repair("s")


def test_a_copied_database_is_refused_until_reidentified(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    run(url, "UPDATE items SET name = 'before copy' WHERE id = 1")
    copy = server.copy(url)
    with pytest.raises(SyncError, match="same replica"):
        sync(url, copy)
    run(copy, "UPDATE items SET name = 'on the copy' WHERE id = 2")
    run(url, "UPDATE items SET name = 'on the original' WHERE id = 3")
    with peersync.connect(copy) as db:
        old = db.status("s")[0].replica_id
        assert db.reidentify("s", moved=True) == old
        assert db.reidentify("s") != old
    sync(url, path)
    sync(copy, path)
    sync(url, copy)
    sync(url, path)
    want = [(1, "before copy"), (2, "on the copy"), (3, "on the original")]
    assert rows(url, "items") == rows(copy, "items") == rows(path, "items") == want
    assert sync(url, copy).sent_a_to_b == 0


@pytest.mark.parametrize("server", ["pg"], indirect=True)  # MariaDB cannot disable a trigger
def test_a_disabled_trigger_is_repaired_like_a_lost_one(server: Any, tmp_path: Path) -> None:
    url, path = _pair(server, tmp_path)
    run(url, "ALTER TABLE items DISABLE TRIGGER _peersync_ins", "INSERT INTO items VALUES (9, 'unseen')")
    with peersync.connect(url) as db:
        assert db.repair("s").inserted == 1
    sync(url, path)
    assert (9, "unseen") in rows(path, "items")
