"""Changing a synced table's shape loses nothing: ``migrate`` (``peersync init
--migrate``) keeps every row's tracking, and a table rebuilt behind peersync's
back (create, copy, drop, rename) is refused until ``repair`` restores its
triggers and tracks what changed meanwhile."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import rows, write
from .test_cli import assert_error, invoke, ok

MakeDb = Callable[..., Path]


def tick() -> None:
    """Let the wall clock move, so the next edit has a later change time."""
    time.sleep(0.01)


def rebuild_item(path: Path, *, columns: str = "id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL",
                 copy: str = "id, name, qty, price") -> None:  # fmt: skip
    """SQLite's documented way to change a table's constraints: create the new
    table, copy the rows, drop the old one, rename the new one."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("BEGIN")
    conn.execute(f"CREATE TABLE item_new ({columns})")
    conn.execute(f"INSERT INTO item_new ({copy}) SELECT {copy} FROM item")
    conn.execute("DROP TABLE item")
    conn.execute("ALTER TABLE item_new RENAME TO item")
    conn.execute("COMMIT")
    conn.close()


def converge(*dbs: peersync.Database) -> None:
    for _ in range(2):
        for i, x in enumerate(dbs):
            for y in dbs[i + 1 :]:
                r = peersync.sync(x, y, "s")
                assert r.errors == 0
    for i, x in enumerate(dbs):
        for y in dbs[i + 1 :]:
            r = peersync.sync(x, y, "s")
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


# -- migrating: columns added on every peer ------------------------------------------------------
def test_migration_keeps_every_unsynced_edit_and_resolves_them_by_the_normal_rules(make_db: MakeDb) -> None:
    """Each peer has edits no other peer has seen when the column is added. With
    deprovision + provision the peer provisioned last (p3) would win every row
    that differs; with migrate each edit survives or loses by last-writer-wins."""
    paths = [make_db(f"p{i}") for i in (1, 2, 3)]
    p1, p2, p3 = (peersync.connect(p) for p in paths)
    try:
        for d in (p1, p2, p3):
            d.provision("s", ["item", "tag"])
        write(paths[0], *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, 1.0)" for i in range(1, 6)))
        converge(p1, p2, p3)

        write(paths[2], "UPDATE item SET name = 'p3, older' WHERE id = 1")
        write(paths[1], "UPDATE item SET qty = 40 WHERE id = 4")
        tick()
        write(paths[0], "UPDATE item SET name = 'p1, newer' WHERE id = 1", "DELETE FROM item WHERE id = 4")
        write(paths[1], "UPDATE item SET name = 'p2 only' WHERE id = 2", "INSERT INTO item VALUES (6, 'p2 new', 6, 6)")
        write(paths[2], "UPDATE item SET qty = 33 WHERE id = 3", "INSERT INTO tag VALUES (3, 'p3 tag')")

        for i, (path, d) in enumerate(zip(paths, (p1, p2, p3), strict=True)):
            write(path, "ALTER TABLE item ADD COLUMN color TEXT")
            with pytest.raises(peersync.SchemaMismatch, match="--migrate"):
                d.describe("s")
            report = d.migrate("s")
            assert report.migrated and report.retracked == ("item",) and report.untracked == ()
            assert d.migrate("s") == peersync.RepairReport("s", False, (), (), 0, 0, 0)  # idempotent
            if i == 0:
                # Peers of different shapes refuse each other, and nothing changes.
                before = [p.read_bytes() for p in paths]
                for direction in ("both", "push", "pull"):
                    with pytest.raises(peersync.SchemaMismatch):
                        peersync.sync(p1, p2, "s", direction=direction)
                assert [p.read_bytes() for p in paths] == before

        converge(p1, p2, p3)
        expected = [
            (1, "p1, newer", 1, 1.0, None),
            (2, "p2 only", 2, 1.0, None),
            (3, "item 3", 33, 1.0, None),
            (5, "item 5", 5, 1.0, None),
            (6, "p2 new", 6, 6.0, None),
        ]
        assert rows(paths[0], "item") == rows(paths[1], "item") == rows(paths[2], "item") == expected
        assert rows(paths[0], "tag") == rows(paths[1], "tag") == rows(paths[2], "tag") == [(3, "p3 tag")]

        # The new column is tracked like any other.
        write(paths[1], "UPDATE item SET color = 'red' WHERE id = 2")
        converge(p1, p2, p3)
        assert rows(paths[0], "item")[1] == rows(paths[2], "item")[1] == (2, "p2 only", 2, 1.0, "red")
    finally:
        for d in (p1, p2, p3):
            d.close()


def test_provisioning_a_changed_scope_again_points_to_migrate(make_db: MakeDb) -> None:
    a = make_db("a")
    with peersync.connect(a) as da:
        da.provision("s", ["item", "tag"])
    write(a, "ALTER TABLE item ADD COLUMN color TEXT")
    before = a.read_bytes()
    with peersync.connect(a) as da, pytest.raises(peersync.ScopeError, match="--migrate"):
        da.provision("s", ["item", "tag"])
    line = assert_error(invoke("init", a, "-s", "s", "-t", "item", "-t", "tag"), "--migrate")
    assert "--table item --table tag --migrate" in line
    assert a.read_bytes() == before
    r = ok(invoke("init", a, "-s", "s", "-t", "item", "-t", "tag", "--migrate"))
    assert "migrated scope s" in r.stdout and r.stderr == ""
    r = ok(invoke("init", a, "-s", "s", "-t", "tag", "-t", "item", "--migrate"))
    assert "nothing to migrate" in r.stdout
    # --migrate of a scope that does not exist is an error (a mistyped name would otherwise
    # provision a second scope over tables another scope already syncs).
    assert_error(invoke("init", a, "-s", "other", "-t", "item", "--migrate"), "unknown scope 'other'")


def test_migrate_refuses_a_primary_key_change_and_other_tables(make_db: MakeDb) -> None:
    schema = "CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT); CREATE TABLE other (id TEXT PRIMARY KEY);"
    a = make_db("a", schema)
    with peersync.connect(a) as da:
        da.provision("s", ["note"])
    write(a, "INSERT INTO note VALUES ('n1', 'x')")
    write(
        a,
        "CREATE TABLE note_new (id TEXT, body TEXT, PRIMARY KEY (id, body))",
        "INSERT INTO note_new SELECT * FROM note",
        "DROP TABLE note",
        "ALTER TABLE note_new RENAME TO note",
    )
    before = a.read_bytes()
    with peersync.connect(a) as da:
        with pytest.raises(peersync.ScopeError, match="primary key of table note changed"):
            da.migrate("s")
        with pytest.raises(peersync.ScopeError, match="keeps a scope's tables"):
            da.migrate("s", ["note", "other"])
    assert_error(invoke("init", a, "-s", "s", "-t", "note", "--migrate"), "primary key of table note changed")
    assert a.read_bytes() == before


def test_migrate_refuses_a_new_collation_of_the_primary_key(make_db: MakeDb) -> None:
    """Under NOCASE, 'A1' and 'a1' become one key: the rows' tracking cannot follow."""
    a = make_db("a", "CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT)")
    with peersync.connect(a) as da:
        da.provision("s", ["note"])
    write(
        a,
        "CREATE TABLE note_new (id TEXT COLLATE NOCASE PRIMARY KEY, body TEXT)",
        "INSERT INTO note_new SELECT * FROM note",
        "DROP TABLE note",
        "ALTER TABLE note_new RENAME TO note",
    )
    before = a.read_bytes()
    with peersync.connect(a) as da:
        for call in (da.migrate, da.repair):
            with pytest.raises(peersync.ScopeError, match=r"id text -> id text COLLATE NOCASE"):
                call("s")
    assert a.read_bytes() == before


def test_dropping_a_column_by_rebuilding_then_migrating_keeps_unsynced_edits(make_db: MakeDb) -> None:
    """SQLite refuses ``DROP COLUMN`` on a column peersync's triggers read, so a
    column is dropped by rebuilding the table; migrate then restores the
    triggers and tracks the rows inserted or deleted in between."""
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, 1.0)" for i in range(1, 5)))
        peersync.sync(da, dbb, "s")
        write(a, "UPDATE item SET name = 'a edit' WHERE id = 1")
        write(b, "UPDATE item SET name = 'b edit' WHERE id = 2")
        narrow = {"columns": "id INTEGER PRIMARY KEY, name TEXT, qty INTEGER", "copy": "id, name, qty"}
        rebuild_item(a, **narrow)
        rebuild_item(b, **narrow)
        write(a, "INSERT INTO item VALUES (7, 'while untracked', 7)")
        write(b, "DELETE FROM item WHERE id = 3")
        ra, rb = da.migrate("s"), dbb.migrate("s")
        assert ra.untracked == rb.untracked == ("item",)
        assert (ra.inserted, ra.deleted, rb.inserted, rb.deleted) == (1, 0, 0, 1)
        r = peersync.sync(da, dbb, "s")
        assert r.errors == r.conflicts == 0
        assert (
            rows(a, "item")
            == rows(b, "item")
            == [(1, "a edit", 1), (2, "b edit", 2), (4, "item 4", 4), (7, "while untracked", 7)]
        )


# -- a table rebuilt behind peersync's back ------------------------------------------------------
def test_rebuilt_table_is_refused_until_repaired_then_its_writes_sync(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, 1.0)" for i in range(1, 5)))
        peersync.sync(da, dbb, "s")

        rebuild_item(a)  # same columns, a new NOT NULL: the fingerprint still matches
        write(a, "INSERT INTO item VALUES (10, 'after the rebuild', 1, 1.0)", "DELETE FROM item WHERE id = 2")
        write(a, "UPDATE item SET name = 'updated while untracked' WHERE id = 1")
        before = a.read_bytes(), b.read_bytes()
        for x, y in ((da, dbb), (dbb, da)):
            with pytest.raises(peersync.RepairNeeded, match=r"table item of scope 's' .* lost its peersync triggers"):
                peersync.sync(x, y, "s")
        line = assert_error(invoke("sync", b, a, "-s", "s"), "lost its peersync triggers")
        assert line.endswith(f"run 'peersync repair {a} --scope s'")
        with pytest.raises(peersync.RepairNeeded, match="peersync repair"):
            da.provision("s", ["item", "tag"])
        assert (a.read_bytes(), b.read_bytes()) == before

        report = da.repair("s")
        assert report == peersync.RepairReport("s", False, ("item",), ("item",), 1, 1, 0)
        assert da.repair("s") == peersync.RepairReport("s", False, (), (), 0, 0, 0)
        write(a, "UPDATE item SET qty = 44 WHERE id = 4")  # a write after the rebuild, tracked again
        r = peersync.sync(da, dbb, "s")
        assert r.errors == r.conflicts == 0
        assert [x[0] for x in rows(b, "item")] == [1, 3, 4, 10]
        assert rows(b, "item")[2] == (4, "item 4", 44, 1.0)
        # The update made while untracked cannot be detected by itself ...
        assert rows(b, "item")[0] == (1, "item 1", 1, 1.0)
        # ... restamp sends every live row again, keeping its change time: a row
        # really edited elsewhere meanwhile still wins.
        tick()
        write(b, "UPDATE item SET name = 'b, after the rebuild' WHERE id = 3")
        report = da.repair("s", restamp=True)
        assert report.restamped == 4 and report.retracked == ()
        r = peersync.sync(da, dbb, "s")
        assert r.errors == 0
        assert rows(a, "item") == rows(b, "item")
        assert rows(b, "item") == [
            (1, "updated while untracked", 1, 1.0),
            (3, "b, after the rebuild", 3, 1.0),
            (4, "item 4", 44, 1.0),
            (10, "after the rebuild", 1, 1.0),
        ]
        r = peersync.sync(da, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


def test_repair_from_the_command_line_says_what_it_cannot_detect(make_db: MakeDb) -> None:
    a = make_db("a")
    ok(invoke("init", a, "-s", "s", "-t", "item", "-t", "tag"))
    write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
    r = ok(invoke("repair", a, "-s", "s"))
    assert "nothing to repair" in r.stdout and r.stderr == ""
    rebuild_item(a)
    write(a, "INSERT INTO item VALUES (2, 'y', 1, 1.0)")
    r = ok(invoke("repair", a, "-s", "s"))
    assert "triggers recreated on item" in r.stdout
    assert "1 rows inserted and 0 deleted" in r.stdout
    assert r.stderr.startswith("peersync: warning:") and f"peersync repair {a} --scope s --restamp" in r.stderr
    r = ok(invoke("repair", a, "-s", "s", "--restamp"))
    assert "2 rows re-stamped" in r.stdout and r.stderr == ""
    assert_error(invoke("repair", a, "-s", "nope"), "unknown scope")
    write(a, "ALTER TABLE item ADD COLUMN color TEXT")
    assert_error(invoke("repair", a, "-s", "s"), "--migrate")


def test_unique_index_added_after_provisioning_is_refused_until_repaired(make_db: MakeDb) -> None:
    """The triggers that track ``INSERT OR REPLACE`` evictions depend on the
    table's UNIQUE indexes: added later, evictions would go untracked."""
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(da, dbb, "s")
        for p in (a, b):
            write(p, "CREATE UNIQUE INDEX item_name ON item (name)")
        with pytest.raises(peersync.RepairNeeded, match="out of date"):
            peersync.sync(da, dbb, "s")
        for d in (da, dbb):
            assert d.repair("s").retracked == ("item",)
        write(a, "INSERT OR REPLACE INTO item VALUES (2, 'x', 2, 2.0)")  # evicts row 1
        r = peersync.sync(da, dbb, "s")
        assert r.errors == 0
        assert rows(a, "item") == rows(b, "item") == [(2, "x", 2, 2.0)]
