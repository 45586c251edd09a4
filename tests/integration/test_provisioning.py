"""Provisioning on real SQLite files: keys of every shape, foreign writers,
pre-existing rows, idempotence, refusals, deprovision, several scopes,
re-identification of a copied file and schema changes."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import peersync

from ..conftest import ITEMS_SCHEMA
from ..helpers import rows, write

MakeDb = Callable[..., Path]


# -- helpers -------------------------------------------------------------------------------------
def master(path: Path) -> list[tuple[object, ...]]:
    """Every schema object of a file, sorted."""
    conn = sqlite3.connect(path)
    out = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    conn.close()
    return out


def peersync_objects(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    out = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE '\\_peersync\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]
    conn.close()
    return out


def tracking_state(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Contents of every peersync table (tracking and metadata)."""
    conn = sqlite3.connect(path)
    out = {}
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_peersync\\_%' ESCAPE '\\'"
    ).fetchall():
        out[name] = conn.execute(f'SELECT * FROM "{name}" ORDER BY 1, 2').fetchall()
    conn.close()
    return out


def user_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_peersync\\_%' ESCAPE '\\'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]
    conn.close()
    return {n: rows(path, n) for n in names}


def status(db: peersync.Database, scope: str = "s") -> peersync.Status:
    return db.status(scope)[0]


# -- foreign writers -----------------------------------------------------------------------------
def test_foreign_writer_changes_are_tracked(make_db: MakeDb) -> None:
    path = make_db("a")
    with peersync.connect(path) as db:
        db.provision("s", ["item", "tag"])
        st0 = status(db)
        assert (st0.tracked_rows, st0.tombstones) == (0, 0)

        write(
            path,
            "INSERT INTO item VALUES (1, 'apple', 3, 1.5), (2, 'pear', 1, 0.5), (3, 'fig', 7, 2.0)",
            "INSERT INTO tag VALUES (1, 'red'), (1, 'fruit'), (2, 'green')",
        )
        st1 = status(db)
        assert (st1.tracked_rows, st1.tombstones) == (6, 0)
        assert st1.tick > st0.tick

        write(path, "UPDATE item SET qty = qty + 1 WHERE id = 1")
        st2 = status(db)
        assert (st2.tracked_rows, st2.tombstones) == (6, 0)
        assert st2.tick > st1.tick

        # An UPDATE that changes nothing is not a change.
        write(path, "UPDATE item SET qty = qty WHERE id = 1")
        assert status(db).tick == st2.tick

        # A delete cascades to the tags: three tombstones, all tracked.
        write(path, "DELETE FROM item WHERE id = 1")
        st3 = status(db)
        assert (st3.tracked_rows, st3.tombstones) == (6, 3)

        # Changing a key is a delete of the old key and an insert of the new one.
        write(path, "UPDATE item SET id = 30 WHERE id = 3")
        st4 = status(db)
        assert (st4.tracked_rows, st4.tombstones) == (7, 4)

        # Re-inserting a deleted key revives its tracking row.
        write(path, "INSERT INTO item VALUES (1, 'apple again', 1, 1.0)")
        st5 = status(db)
        assert (st5.tracked_rows, st5.tombstones) == (7, 3)


def test_foreign_writer_changes_reach_a_peer(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0), (2, 'y', 2, 2.0)", "INSERT INTO tag VALUES (1, 't')")
        write(b, "INSERT INTO item VALUES (3, 'z', 3, 3.0)")
        peersync.sync(da, dbb, "s")
        write(a, "UPDATE item SET id = 10 WHERE id = 2", "DELETE FROM item WHERE id = 1")
        write(b, "UPDATE item SET name = 'zz' WHERE id = 3", "INSERT INTO tag VALUES (3, 'u')")
        r = peersync.sync(da, dbb, "s")
        assert r.errors == 0 and r.conflicts == 0
        assert rows(a, "item") == rows(b, "item") == [(3, "zz", 3, 3.0), (10, "y", 2, 2.0)]
        assert rows(a, "tag") == rows(b, "tag") == [(3, "u")]


def test_insert_or_replace_through_unique_constraint_is_tracked_as_delete(make_db: MakeDb) -> None:
    """``INSERT OR REPLACE`` that removes another row through a UNIQUE column
    deletes it without firing delete triggers (recursive_triggers is off by
    default). That delete must still reach the peers."""
    schema = "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
    a, b = make_db("a", schema), make_db("b", schema)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["u"])
        dbb.provision("s", ["u"])
        write(a, "INSERT INTO u VALUES (1, 'ann@example.org', 'Ann')")
        peersync.sync(da, dbb, "s")
        write(a, "INSERT OR REPLACE INTO u VALUES (2, 'ann@example.org', 'Ann B.')")
        assert rows(a, "u") == [(2, "ann@example.org", "Ann B.")]
        assert status(da).tombstones == 1, "row 1 vanished from A without a tombstone"
        r = peersync.sync(da, dbb, "s")
        assert r.errors == 0
        assert rows(b, "u") == rows(a, "u")


def test_insert_or_replace_on_the_key_is_an_update(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(da, dbb, "s")
        write(a, "INSERT OR REPLACE INTO item VALUES (1, 'y', 2, 2.0)")
        r = peersync.sync(da, dbb, "s")
        assert (r.sent_a_to_b, r.conflicts, r.errors) == (1, 0, 0)
        assert rows(b, "item") == [(1, "y", 2, 2.0)]


# -- keys of every shape -------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyCase:
    id: str
    schema: str
    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    row: Callable[[int], tuple[object, ...]]  # row number -> all columns
    changed: Callable[[tuple[object, ...]], tuple[object, ...]]  # a row -> the same key, other values


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _same_key(r: tuple[object, ...]) -> tuple[object, ...]:
    return r


KEY_CASES = [
    KeyCase(
        "composite",
        "CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL, v TEXT, PRIMARY KEY (a, b))",
        "t",
        ("a", "b", "v"),
        ("a", "b"),
        lambda i: (i % 3, f"b{i}", f"value {i}"),
        lambda r: (r[0], r[1], f"{r[2]} changed"),
    ),
    KeyCase(
        "text",
        "CREATE TABLE t (k TEXT PRIMARY KEY NOT NULL, v TEXT, n REAL)",
        "t",
        ("k", "v", "n"),
        ("k",),
        lambda i: (f"clé-{i}-ü✓", f"vaŀue {i}", i / 4),
        lambda r: (r[0], "✎ " + str(r[1]), r[2]),
    ),
    KeyCase(
        "blob",
        "CREATE TABLE t (k BLOB PRIMARY KEY NOT NULL, v BLOB)",
        "t",
        ("k", "v"),
        ("k",),
        lambda i: (bytes([i, 0, 255 - i, 7]), bytes(range(i % 40))),
        lambda r: (r[0], b"\x00changed\xff"),
    ),
    KeyCase(
        "without-rowid",
        "CREATE TABLE t (k TEXT NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n)) WITHOUT ROWID",
        "t",
        ("k", "n", "v"),
        ("k", "n"),
        lambda i: (f"k{i % 4}", i, f"v{i}"),
        lambda r: (r[0], r[1], "changed"),
    ),
    KeyCase(
        "integer-without-rowid",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID",
        "t",
        ("id", "v"),
        ("id",),
        lambda i: (i * 1000, f"v{i}"),
        lambda r: (r[0], "changed"),
    ),
    KeyCase(
        "key-only",
        "CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b))",
        "t",
        ("a", "b"),
        ("a", "b"),
        lambda i: (i, f"b{i % 5}"),
        _same_key,
    ),
    KeyCase(
        "table-constraint",
        "CREATE TABLE t (id INTEGER, v TEXT, CONSTRAINT pk_t PRIMARY KEY (id))",
        "t",
        ("id", "v"),
        ("id",),
        lambda i: (i + 100, f"v{i}"),
        lambda r: (r[0], "changed"),
    ),
    KeyCase(
        "table-constraint-reordered",
        "CREATE TABLE t (v TEXT, b TEXT NOT NULL, a INTEGER NOT NULL, CONSTRAINT pk PRIMARY KEY (a, b))",
        "t",
        ("v", "b", "a"),
        ("a", "b"),
        lambda i: (f"v{i}", f"b{i % 2}", i),
        lambda r: ("changed", r[1], r[2]),
    ),
    KeyCase(
        "int-not-rowid-alias",
        "CREATE TABLE t (id INT PRIMARY KEY NOT NULL, v TEXT)",
        "t",
        ("id", "v"),
        ("id",),
        lambda i: (-i, f"v{i}"),
        lambda r: (r[0], "changed"),
    ),
    KeyCase(
        "odd-names",
        'CREATE TABLE "odd ""name"" t" ("key col" TEXT PRIMARY KEY NOT NULL, "v-al" TEXT, "select" INTEGER)',
        'odd "name" t',
        ("key col", "v-al", "select"),
        ("key col",),
        lambda i: (f"k {i}'\"", f"v{i}", i),
        lambda r: (r[0], "changed", r[2]),
    ),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c.id for c in KEY_CASES])
def test_keys_of_every_shape_sync(make_db: MakeDb, case: KeyCase) -> None:
    a, b, c = make_db("a", case.schema), make_db("b", case.schema), make_db("c", case.schema)
    t = _q(case.table)
    cols = ", ".join(_q(x) for x in case.columns)
    marks = ", ".join("?" * len(case.columns))
    where = " AND ".join(f"{_q(k)} = ?" for k in case.key)
    kpos = [case.columns.index(k) for k in case.key]

    def key(r: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(r[i] for i in kpos)

    def insert(i: int) -> tuple[str, tuple[object, ...]]:
        return (f"INSERT INTO {t} ({cols}) VALUES ({marks})", case.row(i))

    def delete(r: tuple[object, ...]) -> tuple[str, tuple[object, ...]]:
        return (f"DELETE FROM {t} WHERE {where}", key(r))

    def update(r: tuple[object, ...]) -> tuple[str, tuple[object, ...]]:
        new = case.changed(r)
        sets = ", ".join(f"{_q(x)} = ?" for x in case.columns)
        return (f"UPDATE {t} SET {sets} WHERE {where}", (*new, *key(r)))

    def dump(path: Path) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(path)
        out = sorted(conn.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr)
        conn.close()
        return out

    dbs = [peersync.connect(p) for p in (a, b, c)]
    try:
        for d in dbs:
            assert d.provision("s", [case.table]) is True
        # Rows already there count too: insert some on A before syncing.
        write(a, *(insert(i) for i in range(1, 11)))
        write(b, *(insert(i) for i in range(11, 16)))
        r = peersync.sync(dbs[0], dbs[1], "s", batch_size=3)
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (10, 5, 0, 0)
        peersync.sync(dbs[1], dbs[2], "s")
        assert dump(a) == dump(b) == dump(c)
        assert len(dump(a)) == 15

        # Concurrent, non-overlapping edits on all three; a key change on C.
        if case.changed is not _same_key:
            write(a, update(case.row(1)), update(case.row(12)))
        write(b, delete(case.row(2)), delete(case.row(13)), insert(20))
        key_change = case.row(3)
        new_key_row = case.row(30)
        sets = ", ".join(f"{_q(k)} = ?" for k in case.key)
        write(c, (f"UPDATE {t} SET {sets} WHERE {where}", (*key(new_key_row), *key(key_change))), insert(21))
        for _ in range(2):
            for x, y in ((0, 1), (1, 2), (2, 0)):
                r = peersync.sync(dbs[x], dbs[y], "s", batch_size=2)
                assert r.errors == 0 and r.conflicts == 0
        final = dump(a)
        assert final == dump(b) == dump(c)
        keys = {key(r) for r in final}
        assert key(case.row(2)) not in keys and key(case.row(13)) not in keys
        assert key(case.row(3)) not in keys and key(new_key_row) in keys
        assert key(case.row(20)) in keys and key(case.row(21)) in keys
        if case.changed is not _same_key:
            assert case.changed(case.row(1)) in final and case.changed(case.row(12)) in final
        # Nothing left to send.
        for x, y in ((0, 1), (1, 2), (2, 0)):
            r = peersync.sync(dbs[x], dbs[y], "s")
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)
    finally:
        for d in dbs:
            d.close()


# -- rows that exist at provisioning -------------------------------------------------------------
def test_rows_present_at_provisioning_sync_to_an_empty_peer(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    write(
        a,
        ("INSERT INTO item VALUES (?, ?, ?, ?)", (1, "ünïcødé ✓", 1, 1.25)),
        "WITH RECURSIVE s(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM s WHERE x < 200)"
        " INSERT INTO item SELECT x, 'n' || x, x, x / 3.0 FROM s",
        "INSERT INTO tag SELECT id, 'l' || (id % 3) FROM item WHERE id % 2 = 0",
    )
    before = user_tables(a)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        assert da.provision("s", ["item", "tag"]) is True
        dbb.provision("s", ["item", "tag"])
        assert user_tables(a) == before
        st = status(da)
        assert (st.tracked_rows, st.tombstones) == (300, 0)
        r = peersync.sync(dbb, da, "s", batch_size=64)
        assert (r.sent_a_to_b, r.sent_b_to_a, r.errors, r.conflicts) == (0, 300, 0, 0)
        assert user_tables(b) == user_tables(a) == before
        r = peersync.sync(da, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


# -- re-provisioning -----------------------------------------------------------------------------
def test_provision_twice_changes_nothing(make_db: MakeDb) -> None:
    path = make_db("a")
    write(path, "INSERT INTO item VALUES (1, 'x', 1, 1.0)", "INSERT INTO tag VALUES (1, 'y')")
    with peersync.connect(path) as db:
        assert db.provision("s", ["item", "tag"]) is True
        write(path, "UPDATE item SET qty = 2")
    schema, state, data = master(path), tracking_state(path), path.read_bytes()
    with peersync.connect(path) as db:
        assert db.provision("s", ["item", "tag"]) is False
        assert db.provision("s", ["tag", "item"]) is False  # order does not matter
        assert db.provision("s", ["TAG", "Item", "item"]) is False  # nor case, nor repeats
    assert master(path) == schema
    assert tracking_state(path) == state
    assert path.read_bytes() == data


def test_provision_with_another_definition_raises_scope_error(make_db: MakeDb) -> None:
    path = make_db("a")
    with peersync.connect(path) as db:
        db.provision("s", ["item"])
    schema, state = master(path), tracking_state(path)
    with peersync.connect(path) as db:
        with pytest.raises(peersync.ScopeError, match="'s'"):
            db.provision("s", ["item", "tag"])
        with pytest.raises(peersync.ScopeError):
            db.provision("s", ["tag"])
    assert master(path) == schema
    assert tracking_state(path) == state


@pytest.mark.parametrize(
    ("tables", "match"),
    [
        (["nope"], "nope"),
        (["item", "nope"], "nope"),
        (["nokey"], "primary key"),
        (["item", "nokey"], "primary key"),
        (["v_item"], "view"),
        (["sqlite_master"], None),
    ],
)
def test_untrackable_tables_raise_table_error_and_change_nothing(
    make_db: MakeDb, tables: list[str], match: str | None
) -> None:
    path = make_db("a")
    write(
        path,
        "CREATE TABLE nokey (a INTEGER, b TEXT)",
        "CREATE VIEW v_item AS SELECT id, name FROM item",
        "INSERT INTO item VALUES (1, 'x', 1, 1.0)",
    )
    data = path.read_bytes()
    with peersync.connect(path) as db:
        with pytest.raises(peersync.TableError, match=match):
            db.provision("s", tables)
        assert db.scopes() == []
    assert peersync_objects(path) == []
    assert path.read_bytes() == data


def test_untrackable_table_in_a_second_scope_leaves_the_first_intact(make_db: MakeDb) -> None:
    path = make_db("a")
    write(path, "CREATE TABLE nokey (a INTEGER, b TEXT)")
    with peersync.connect(path) as db:
        db.provision("first", ["item"])
    schema, state = master(path), tracking_state(path)
    with peersync.connect(path) as db:
        with pytest.raises(peersync.TableError):
            db.provision("second", ["tag", "nokey"])
        assert db.scopes() == ["first"]
    assert master(path) == schema and tracking_state(path) == state


# -- deprovision -----------------------------------------------------------------------------------
def test_deprovision_removes_every_peersync_object_and_keeps_data(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    write(a, "CREATE INDEX item_name ON item (name)", "CREATE TRIGGER mine AFTER INSERT ON item BEGIN SELECT 1; END")
    user_schema = master(a)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0), (2, 'ÿ', NULL, NULL)", "INSERT INTO tag VALUES (1, 'a')")
        write(b, ("INSERT INTO item VALUES (3, ?, 3, 3.5)", (b"\x00\x01",)))
        peersync.sync(da, dbb, "s")
        write(a, "DELETE FROM item WHERE id = 2")
        assert peersync_objects(a)
        data = user_tables(a)
        da.deprovision("s")
        assert da.scopes() == []
        with pytest.raises(peersync.ScopeError):
            da.deprovision("s")
    assert peersync_objects(a) == []
    assert master(a) == user_schema
    assert user_tables(a) == data
    # Triggers are gone: plain writes work, and leave no trace.
    write(a, "INSERT INTO item VALUES (9, 'after', 1, 1.0)", "UPDATE item SET qty = 5", "DELETE FROM tag")
    assert peersync_objects(a) == []
    conn = sqlite3.connect(a)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    # And the scope can be provisioned afresh.
    with peersync.connect(a) as da:
        assert da.provision("s", ["item", "tag"]) is True
        assert status(da).tracked_rows == len(rows(a, "item")) + len(rows(a, "tag"))


# -- several scopes --------------------------------------------------------------------------------
def test_several_scopes_in_one_database_sync_independently(make_db: MakeDb) -> None:
    extra = "CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT);"
    hub = make_db("hub", ITEMS_SCHEMA + extra)
    pa = make_db("pa", ITEMS_SCHEMA + extra)  # scope "a": item
    pb = make_db("pb", ITEMS_SCHEMA + extra)  # scope "b": item, tag
    pn = make_db("pn", ITEMS_SCHEMA + extra)  # scope "n": note
    h, da, dbb, dn = (peersync.connect(p) for p in (hub, pa, pb, pn))
    try:
        h.provision("a", ["item"])
        h.provision("b", ["item", "tag"])
        h.provision("n", ["note"])
        da.provision("a", ["item"])
        dbb.provision("b", ["item", "tag"])
        dn.provision("n", ["note"])
        assert h.scopes() == ["a", "b", "n"]
        scopes = {s.scope: s for s in h.status()}
        assert len({s.replica_id for s in scopes.values()}) == 3

        write(pa, "INSERT INTO item VALUES (1, 'from pa', 1, 1.0)")
        write(pb, "INSERT INTO item VALUES (2, 'from pb', 2, 2.0)", "INSERT INTO tag VALUES (2, 'b')")
        write(pn, "INSERT INTO note VALUES ('n1', 'from pn')")
        write(hub, "INSERT INTO item VALUES (3, 'from hub', 3, 3.0)", "INSERT INTO note VALUES ('n2', 'hub')")

        def round_() -> None:
            for _ in range(2):
                for peer, scope in ((da, "a"), (dbb, "b"), (dn, "n")):
                    r = peersync.sync(h, peer, scope)
                    assert r.errors == 0 and r.conflicts == 0

        round_()
        assert rows(pa, "item") == rows(pb, "item") == rows(hub, "item")
        assert [r[0] for r in rows(hub, "item")] == [1, 2, 3]
        assert rows(pb, "tag") == rows(hub, "tag") == [(2, "b")]
        assert rows(pa, "tag") == []  # scope "a" does not hold tag
        assert rows(pn, "note") == rows(hub, "note")
        assert rows(pa, "note") == rows(pb, "note") == []
        assert rows(pn, "item") == []
        for peer, scope in ((da, "a"), (dbb, "b"), (dn, "n")):
            r = peersync.sync(h, peer, scope)
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)

        # Deprovision "a" on the hub: "b" and "n" keep working, item still tracked for "b".
        h.deprovision("a")
        assert h.scopes() == ["b", "n"]
        assert "_peersync_t_item" in peersync_objects(hub)
        write(hub, "UPDATE item SET name = 'hub edit' WHERE id = 1", "INSERT INTO note VALUES ('n3', 'x')")
        write(pb, "DELETE FROM tag", "DELETE FROM item WHERE id = 2")
        r = peersync.sync(h, dbb, "b")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.errors, r.conflicts) == (1, 2, 0, 0)
        assert rows(pb, "item") == rows(hub, "item")
        assert [r[1] for r in rows(hub, "item")] == ["hub edit", "from hub"]
        assert rows(hub, "tag") == []
        peersync.sync(h, dn, "n")
        assert rows(pn, "note") == rows(hub, "note")
        with pytest.raises(peersync.ScopeError):
            peersync.sync(h, da, "a")

        # Deprovision the rest: nothing of peersync is left.
        h.deprovision("b")
        assert "_peersync_t_item" not in peersync_objects(hub)
        write(hub, "INSERT INTO item VALUES (50, 'untracked', 0, 0.0)")
        peersync.sync(h, dn, "n")
        h.deprovision("n")
        assert peersync_objects(hub) == []
    finally:
        for d in (h, da, dbb, dn):
            d.close()


def test_two_scopes_sharing_a_table_relay_changes_between_their_peers(make_db: MakeDb) -> None:
    hub, pa, pb = make_db("hub"), make_db("pa"), make_db("pb")
    h, da, dbb = (peersync.connect(p) for p in (hub, pa, pb))
    try:
        h.provision("a", ["item"])
        h.provision("b", ["item"])
        da.provision("a", ["item"])
        dbb.provision("b", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'a', 1, 1.0)")
        write(pb, "INSERT INTO item VALUES (2, 'b', 2, 2.0)")
        for _ in range(2):
            peersync.sync(h, da, "a")
            peersync.sync(h, dbb, "b")
        assert rows(pa, "item") == rows(pb, "item") == rows(hub, "item")
        assert len(rows(hub, "item")) == 2
        for peer, scope in ((da, "a"), (dbb, "b")):
            r = peersync.sync(h, peer, scope)
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)

        # A third scope over the same, already tracked table: every row present is syncable in it.
        pc = make_db("pc")
        with peersync.connect(pc) as dc:
            assert h.provision("c", ["item"]) is True
            dc.provision("c", ["item"])
            r = peersync.sync(h, dc, "c")
            assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (2, 0, 0)
            assert rows(pc, "item") == rows(hub, "item")
        for peer, scope in ((da, "a"), (dbb, "b")):
            r = peersync.sync(h, peer, scope)
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)
    finally:
        for d in (h, da, dbb):
            d.close()


def test_table_names_that_look_like_internal_names(make_db: MakeDb) -> None:
    """Tables ``x`` and ``x_lt`` (or ``clock``, ``t_x``) are ordinary names: the
    tracking objects of one must not collide with those of another."""
    schema = (
        "CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT);"
        "CREATE TABLE x_lt (id INTEGER PRIMARY KEY, v TEXT);"
        "CREATE TABLE t_x (id INTEGER PRIMARY KEY, v TEXT);"
        "CREATE TABLE clock (id INTEGER PRIMARY KEY, v TEXT);"
    )
    tables = ["x", "x_lt", "t_x", "clock"]
    a, b = make_db("a", schema), make_db("b", schema)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", tables)
        dbb.provision("s", ["x"])
        dbb.provision("s2", ["x_lt", "t_x", "clock"])
        write(a, *(f"INSERT INTO {t} VALUES (1, '{t}')" for t in tables))
        assert status(da).tracked_rows == 4


# -- copied files --------------------------------------------------------------------------------
def test_copied_file_must_be_reidentified(make_db: MakeDb, tmp_path: Path) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'a1', 1, 1.0), (2, 'a2', 2, 2.0)", "INSERT INTO tag VALUES (1, 'x')")
        write(b, "INSERT INTO item VALUES (3, 'b3', 3, 3.0)")
        peersync.sync(da, dbb, "s")
    copy = tmp_path / "copy.db"
    shutil.copyfile(a, copy)
    copy_bytes, a_bytes = copy.read_bytes(), a.read_bytes()
    with peersync.connect(a) as da, peersync.connect(b) as dbb, peersync.connect(copy) as dc:
        old = status(dc).replica_id
        assert old == status(da).replica_id
        with pytest.raises(peersync.RepairNeeded, match="reidentif"):
            peersync.sync(da, dc, "s")
        with pytest.raises(peersync.RepairNeeded):
            peersync.sync(dc, da, "s")
        assert copy.read_bytes() == copy_bytes and a.read_bytes() == a_bytes

        new = dc.reidentify("s")
        assert new != old and status(dc).replica_id == new
        assert status(da).replica_id == old

        # Nothing is re-sent, in either direction, with A or with B.
        for x, y in ((da, dc), (dc, dbb), (dbb, dc)):
            r = peersync.sync(x, y, "s")
            assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (0, 0, 0, 0)

        # New writes on each side flow normally, without conflicts.
        write(a, "UPDATE item SET name = 'a1 edited' WHERE id = 1")
        write(copy, "INSERT INTO item VALUES (4, 'copy4', 4, 4.0)", "UPDATE item SET qty = 20 WHERE id = 2")
        r = peersync.sync(da, dc, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (1, 2, 0, 0)
        r = peersync.sync(dc, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (3, 0, 0, 0)
        assert rows(a, "item") == rows(b, "item") == rows(copy, "item")
        assert rows(a, "tag") == rows(b, "tag") == rows(copy, "tag")
        assert da.conflicts() == dbb.conflicts() == dc.conflicts() == []


# -- schema changes ------------------------------------------------------------------------------
def test_schema_change_after_provisioning_raises_schema_mismatch(make_db: MakeDb) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(da, dbb, "s")
        write(a, "ALTER TABLE item ADD COLUMN color TEXT", "INSERT INTO item VALUES (2, 'y', 2, 2.0, 'red')")
        a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
        for x, y in ((da, dbb), (dbb, da)):
            with pytest.raises(peersync.SchemaMismatch) as err:
                peersync.sync(x, y, "s")
            msg = str(err.value)
            assert "'s'" in msg and "changed" in msg and "provision" in msg
        with pytest.raises(peersync.SchemaMismatch):
            da.status("s")
        assert a.read_bytes() == a_bytes and b.read_bytes() == b_bytes
        assert rows(b, "item") == [(1, "x", 1, 1.0)]


def test_peers_provisioned_with_different_columns_refuse_to_sync(make_db: MakeDb) -> None:
    a = make_db("a")
    b = make_db(
        "b",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, note TEXT);"
        "CREATE TABLE tag (item_id INTEGER NOT NULL REFERENCES item(id) ON DELETE CASCADE,"
        " label TEXT NOT NULL, PRIMARY KEY (item_id, label));",
    )
    c = make_db(
        "c",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty TEXT, price REAL);"
        "CREATE TABLE tag (item_id INTEGER, label TEXT, PRIMARY KEY (item_id, label));",
    )
    with peersync.connect(a) as da, peersync.connect(b) as dbb, peersync.connect(c) as dc:
        for d in (da, dbb, dc):
            d.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        write(b, "INSERT INTO item VALUES (2, 'y', 2, 2.0, 'n')")
        write(c, "INSERT INTO item VALUES (3, 'z', '3', 3.0)")
        before = {p: p.read_bytes() for p in (a, b, c)}
        for x, y in ((da, dbb), (dbb, da), (da, dc), (dc, dbb)):
            for direction in ("both", "push", "pull"):
                with pytest.raises(peersync.SchemaMismatch, match="'s'"):
                    peersync.sync(x, y, "s", direction=direction)
        assert {p: p.read_bytes() for p in (a, b, c)} == before
