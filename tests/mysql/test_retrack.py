"""Schema changes, rebuilt tables and restored copies on MariaDB: ``migrate``,
``repair`` and ``reidentify`` keep every row's tracking, as on SQLite."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import RepairNeeded, SchemaMismatch, ScopeError, SyncError

from .conftest import SERVER, rows, sql, sqlite_file, sqlite_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))"
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    url = mysql_db()
    sql(url, TABLE, "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    path = sqlite_file(tmp_path, LITE)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", ["items"])
    _sync(url, path)
    return url, path


def _sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def _lite(path: str, *statements: str) -> None:
    c = sqlite3.connect(path)
    for st in statements:
        c.execute(st)
    c.commit()
    c.close()


def test_migrate_keeps_unsynced_edits_and_the_new_column_syncs(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "UPDATE items SET name = 'maria' WHERE id = 1", "DELETE FROM items WHERE id = 3")
    _lite(path, "UPDATE items SET name = 'lite' WHERE id = 2")
    sql(url, "ALTER TABLE items ADD COLUMN color VARCHAR(10)")
    _lite(path, "ALTER TABLE items ADD COLUMN color VARCHAR(10)")
    with pytest.raises(SchemaMismatch, match="--migrate"), peersync.connect(url) as db:
        db.describe("s")
    with peersync.connect(url) as db:
        report = db.migrate("s", ["items"])
        assert report.migrated and report.retracked == ("items",) and report.untracked == ()
        assert db.migrate("s").retracked == ()  # idempotent
    with pytest.raises(SchemaMismatch):
        _sync(url, path)  # the SQLite peer has not migrated yet
    with peersync.connect(path) as db:
        db.migrate("s")
    result = _sync(url, path)
    assert (result.sent_a_to_b, result.sent_b_to_a) == (2, 1)  # only the unsynced edits travel
    sql(url, "UPDATE items SET color = 'red' WHERE id = 2")  # a write to the new column alone is tracked
    _sync(url, path)
    assert rows(url, "items") == sqlite_rows(path, "items") == [(1, "maria", None), (2, "lite", "red")]


def test_migrate_refuses_a_changed_key_and_other_tables(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, _ = _pair(mysql_db, tmp_path)
    sql(url, "CREATE TABLE other (id INT PRIMARY KEY)")
    with peersync.connect(url) as db:
        with pytest.raises(ScopeError, match="keeps a scope's tables"):
            db.migrate("s", ["items", "other"])
        with pytest.raises(ScopeError, match="unknown scope"):
            db.migrate("nope")
    sql(url, "ALTER TABLE items MODIFY id VARCHAR(10)")
    with peersync.connect(url) as db, pytest.raises(ScopeError, match="primary key of table items changed"):
        db.migrate("s")


def test_rebuilt_table_is_refused_until_repaired_then_its_writes_sync(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    url, path = _pair(mysql_db, tmp_path)
    # the usual rebuild: new table, copy, drop (its triggers go with it), rename
    sql(
        url,
        "CREATE TABLE items_new (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        "INSERT INTO items_new SELECT * FROM items",
        "DROP TABLE items",
        "RENAME TABLE items_new TO items",
        "INSERT INTO items VALUES (4, 'new')",
        "DELETE FROM items WHERE id = 1",
        "UPDATE items SET name = 'edited' WHERE id = 2",
    )
    with pytest.raises(RepairNeeded, match="triggers lost"):
        _sync(url, path)
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert (report.retracked, report.untracked, report.inserted, report.deleted) == (("items",), ("items",), 1, 1)
        assert not report.migrated
    _sync(url, path)
    assert sqlite_rows(path, "items") == [(2, "b"), (3, "c"), (4, "new")]  # the update went unseen
    with peersync.connect(url) as db:
        assert db.repair("s", restamp=True).restamped == 3
    _sync(url, path)
    assert rows(url, "items") == sqlite_rows(path, "items") == [(2, "edited"), (3, "c"), (4, "new")]
    sql(url, "UPDATE items SET name = 'after' WHERE id = 3")  # tracked again
    assert _sync(url, path).sent_a_to_b == 1


def test_repair_refuses_a_changed_shape(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, _ = _pair(mysql_db, tmp_path)
    sql(url, "ALTER TABLE items ADD COLUMN x INT")
    with peersync.connect(url) as db, pytest.raises(SchemaMismatch, match="--migrate"):
        db.repair("s")


def test_restored_dump_is_refused_until_reidentified(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    if shutil.which("mysqldump") is None or shutil.which("mysql") is None:
        pytest.skip("the mysqldump and mysql clients are not installed (they copy the database)")
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "UPDATE items SET name = 'before copy' WHERE id = 1")
    copy = mysql_db()
    host = SERVER.split("@")[-1]
    dump = subprocess.run(
        ["mysqldump", "-h", host.split(":")[0], "-P", host.split(":")[1], "-u", "root", "--triggers",
         url.rsplit("/", 1)[1]], check=True, capture_output=True,
    ).stdout  # fmt: skip
    subprocess.run(
        ["mysql", "-h", host.split(":")[0], "-P", host.split(":")[1], "-u", "root", copy.rsplit("/", 1)[1]],
        input=dump, check=True,
    )  # fmt: skip
    with pytest.raises(SyncError, match="same replica"):
        _sync(url, copy)
    sql(copy, "UPDATE items SET name = 'on the copy' WHERE id = 2")
    sql(url, "UPDATE items SET name = 'on the original' WHERE id = 3")
    with peersync.connect(copy) as db:
        old = db.status("s")[0].replica_id
        assert db.reidentify("s", moved=True) == old
        new = db.reidentify("s")
        assert new != old
    _sync(url, path)
    _sync(copy, path)
    _sync(url, copy)
    _sync(url, path)
    want = [(1, "before copy"), (2, "on the copy"), (3, "on the original")]
    assert rows(url, "items") == rows(copy, "items") == sqlite_rows(path, "items") == want
    assert _sync(url, copy).sent_a_to_b == 0


def test_tables_named_like_short_aliases_migrate_and_repair(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY, t INT REFERENCES t (id)"
        " ON DELETE CASCADE)", "INSERT INTO t VALUES (1)", "INSERT INTO u VALUES (1, 1)")  # fmt: skip
    with peersync.connect(url) as db:
        db.provision("s", ["t", "u"])
        sql(url, "ALTER TABLE u ADD COLUMN x INT")
        assert db.migrate("s").migrated
        assert db.repair("s", restamp=True).restamped == 2
        sql(url, "DELETE FROM t")
        (st,) = db.status("s")
        assert st.tombstones == 2
