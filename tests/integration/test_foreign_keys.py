"""Foreign keys with ``PRAGMA foreign_keys=ON`` on every side: parents before
children, children deleted before parents, within a batch and across batches;
self references; cascades; users' triggers; rows that can never apply. And
databases whose applications never enable foreign keys: orphans are theirs."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import peersync

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]

FAMILY = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id), name TEXT);
CREATE TABLE toy (child_id INTEGER NOT NULL REFERENCES child(id), label TEXT NOT NULL, PRIMARY KEY (child_id, label));
"""
FAMILY_TABLES = ["toy", "child", "parent"]  # deliberately children first

EMPLOYEE = "CREATE TABLE employee (id INTEGER PRIMARY KEY, name TEXT, manager_id INTEGER REFERENCES employee(id));"


def fk_clean(path: Path) -> bool:
    conn = sqlite3.connect(path)
    ok = conn.execute("PRAGMA foreign_key_check").fetchall() == []
    ok = ok and conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    return ok


def dump(path: Path, tables: list[str]) -> dict[str, list[tuple[object, ...]]]:
    return {t: rows(path, t) for t in tables}


def open_all(paths: list[Path], scope: str, tables: list[str]) -> list[peersync.Database]:
    dbs = [peersync.connect(p) for p in paths]  # foreign_keys=True is the default
    for d in dbs:
        assert d.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        d.provision(scope, tables)
    return dbs


@pytest.fixture
def family(make_db: MakeDb) -> Iterator[tuple[list[Path], list[peersync.Database]]]:
    paths = [make_db(f"f{i}", FAMILY) for i in range(3)]
    dbs = open_all(paths, "s", FAMILY_TABLES)
    yield paths, dbs
    for d in dbs:
        d.close()


def assert_no_logged_conflicts(dbs: list[peersync.Database]) -> None:
    for d in dbs:
        assert [(c.type.value, c.table, c.key, c.detail) for c in d.conflicts()] == []


# -- ordering within and across batches ------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5000])
def test_parents_before_children_and_children_deleted_first(
    family: tuple[list[Path], list[peersync.Database]], batch_size: int
) -> None:
    (a, b, c), dbs = family
    da, dbb, dc = dbs
    write(
        a,
        "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3')",
        "INSERT INTO child VALUES (10, 1, 'c10'), (11, 1, 'c11'), (12, 2, 'c12'), (13, 3, 'c13')",
        "INSERT INTO toy VALUES (10, 'ball'), (12, 'kite')",
    )
    r = peersync.sync(da, dbb, "s", batch_size=batch_size)
    assert (r.sent_a_to_b, r.errors, r.conflicts) == (9, 0, 0)

    # Ticks that put children before their parents:
    write(
        a,
        # a new parent, a child of it, then the parent changes again (its tick moves after the child);
        "INSERT INTO parent VALUES (4, 'p4')",
        "INSERT INTO child VALUES (14, 4, 'c14')",
        "INSERT INTO toy VALUES (14, 'drum')",
        "UPDATE parent SET name = 'p4 renamed' WHERE id = 4",
        "UPDATE child SET name = 'c14 renamed' WHERE id = 14",
        # children deleted before their parent;
        "DELETE FROM toy WHERE child_id = 10",
        "DELETE FROM child WHERE parent_id = 1",
        "DELETE FROM parent WHERE id = 1",
        # a child moves to another parent, the old parent goes, then the child changes again
        # (the parent's tombstone now comes before the child's move);
        "UPDATE child SET parent_id = 3 WHERE id = 12",
        "DELETE FROM parent WHERE id = 2",
        "UPDATE child SET name = 'c12 moved' WHERE id = 12",
    )
    for x, y in ((da, dbb), (dbb, dc), (dc, da)):
        r = peersync.sync(x, y, "s", batch_size=batch_size)
        assert r.errors == 0, y.conflicts()
    assert dump(a, FAMILY_TABLES) == dump(b, FAMILY_TABLES) == dump(c, FAMILY_TABLES)
    assert rows(c, "parent") == [(3, "p3"), (4, "p4 renamed")]
    assert rows(c, "child") == [(12, 3, "c12 moved"), (13, 3, "c13"), (14, 4, "c14 renamed")]
    assert rows(c, "toy") == [(12, "kite"), (14, "drum")]
    assert all(fk_clean(p) for p in (a, b, c))
    assert_no_logged_conflicts(dbs)
    for x, y in ((da, dbb), (dbb, dc), (dc, da)):
        r = peersync.sync(x, y, "s", batch_size=batch_size)
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_a_child_whose_parent_arrives_in_a_later_batch(
    family: tuple[list[Path], list[peersync.Database]], batch_size: int
) -> None:
    """Every child is enumerated before its parent, in separate batches."""
    (a, b, _), dbs = family
    da, dbb, _ = dbs
    n = 6
    write(a, *(f"INSERT INTO parent VALUES ({i}, 'p{i}')" for i in range(1, n + 1)))
    write(a, *(f"INSERT INTO child VALUES ({i * 10}, {i}, 'c')" for i in range(1, n + 1)))
    write(a, *(f"INSERT INTO toy VALUES ({i * 10}, 't')" for i in range(1, n + 1)))
    write(a, *(f"UPDATE child SET name = 'c!' WHERE id = {i * 10}" for i in range(1, n + 1)))
    write(a, *(f"UPDATE parent SET name = 'p!' WHERE id = {i}" for i in range(1, n + 1)))
    r = peersync.sync(da, dbb, "s", batch_size=batch_size)
    assert r.errors == 0, dbb.conflicts()
    assert r.applied == 3 * n
    assert dump(a, FAMILY_TABLES) == dump(b, FAMILY_TABLES)
    assert fk_clean(b)
    assert_no_logged_conflicts(dbs)


# -- self references -------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_self_reference_deep_chain_in_reverse_tick_order(make_db: MakeDb, batch_size: int) -> None:
    """A chain e1 <- e2 <- ... <- e10, then every row updated leaf first: the
    destination receives each employee before its manager. One session must
    bring the whole chain, without 'error' conflicts."""
    a, b = make_db("a", EMPLOYEE), make_db("b", EMPLOYEE)
    da, dbb = open_all([a, b], "s", ["employee"])
    try:
        n = 10
        write(
            a,
            "INSERT INTO employee VALUES (1, 'e1', NULL)",
            *(f"INSERT INTO employee VALUES ({i}, 'e{i}', {i - 1})" for i in range(2, n + 1)),
        )
        write(a, *(f"UPDATE employee SET name = name || '!' WHERE id = {i}" for i in range(n, 0, -1)))
        r = peersync.sync(da, dbb, "s", batch_size=batch_size)
        assert r.errors == 0, [(c.key, c.detail) for c in dbb.conflicts()]
        assert rows(b, "employee") == rows(a, "employee")
        assert_no_logged_conflicts([da, dbb])
    finally:
        da.close()
        dbb.close()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_self_reference_random_chains(make_db: MakeDb, seed: int) -> None:
    rng = random.Random(seed)
    paths = [make_db(f"e{i}", EMPLOYEE) for i in range(3)]
    dbs = open_all(paths, "s", ["employee"])
    try:
        # A random forest, inserted managers first (FKs are on at the source too).
        n = 40
        write(
            paths[0],
            *(
                (
                    "INSERT INTO employee VALUES (?, ?, ?)",
                    (i, f"e{i}", None if i == 1 or rng.random() < 0.1 else rng.randint(max(1, i - 4), i - 1)),
                )
                for i in range(1, n + 1)
            ),
        )
        # Random edits in random order: renames, new managers (any lower id: no cycles), leaves deleted.
        for _ in range(3):
            ids = [r[0] for r in rows(paths[0], "employee")]
            rng.shuffle(ids)
            stmts: list[tuple[str, tuple[object, ...]] | str] = []
            for i in ids[: len(ids) // 2]:
                lower = [j for j in ids if j < i]
                if lower and rng.random() < 0.5:
                    stmts.append(("UPDATE employee SET manager_id = ? WHERE id = ?", (rng.choice(lower), i)))
                else:
                    stmts.append(("UPDATE employee SET name = name || '.' WHERE id = ?", (i,)))
            write(paths[0], *stmts)
            conn = sqlite3.connect(paths[0])
            managers = "SELECT manager_id FROM employee WHERE manager_id IS NOT NULL"
            leaves = [r[0] for r in conn.execute(f"SELECT id FROM employee WHERE id NOT IN ({managers})")]
            conn.close()
            write(paths[0], *(("DELETE FROM employee WHERE id = ?", (i,)) for i in rng.sample(leaves, 2)))
            for x, y in ((0, 1), (1, 2), (2, 0)):
                r = peersync.sync(dbs[x], dbs[y], "s", batch_size=rng.randint(1, 3))
                assert r.errors == 0, (seed, [(c.key, c.detail) for c in dbs[y].conflicts()])
            assert rows(paths[0], "employee") == rows(paths[1], "employee") == rows(paths[2], "employee")
        assert all(fk_clean(p) for p in paths)
        assert_no_logged_conflicts(dbs)
    finally:
        for d in dbs:
            d.close()


# -- cascades --------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 2, 5000])
def test_on_delete_cascade_at_the_source_is_tracked_and_synced(make_db: MakeDb, batch_size: int) -> None:
    paths = [make_db(f"p{i}") for i in range(3)]
    dbs = open_all(paths, "s", ["item", "tag"])
    try:
        a = paths[0]
        write(
            a,
            "INSERT INTO item VALUES (1, 'one', 1, 1.0), (2, 'two', 2, 2.0)",
            "INSERT INTO tag VALUES (1, 'a'), (1, 'b'), (1, 'c'), (2, 'a')",
        )
        for x, y in ((0, 1), (1, 2)):
            peersync.sync(dbs[x], dbs[y], "s", batch_size=batch_size)
        assert rows(paths[2], "tag") == rows(a, "tag")
        write(a, "DELETE FROM item WHERE id = 1")  # cascades to three tags
        st = dbs[0].status("s")[0]
        assert st.tombstones == 4
        for x, y in ((0, 1), (1, 2), (2, 0)):
            r = peersync.sync(dbs[x], dbs[y], "s", batch_size=batch_size)
            assert r.errors == 0
        for p, d in zip(paths, dbs, strict=True):
            assert rows(p, "item") == [(2, "two", 2, 2.0)]
            assert rows(p, "tag") == [(2, "a")]
            assert d.status("s")[0].tombstones == 4
            assert fk_clean(p)
        assert_no_logged_conflicts(dbs)
    finally:
        for d in dbs:
            d.close()


CASCADE = """
CREATE TABLE folder (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE doc (id INTEGER PRIMARY KEY, folder_id INTEGER NOT NULL REFERENCES folder(id) ON DELETE CASCADE,
                  title TEXT);
"""


@pytest.mark.parametrize("batch_size", [1, 2])
def test_parent_delete_does_not_cascade_onto_a_child_that_moved_away(make_db: MakeDb, batch_size: int) -> None:
    """At A a document moves to another folder, the old folder is deleted, then
    the document is edited (its tick now comes after the folder's tombstone).
    Applying the folder's delete at B before the move must not end with the
    document deleted everywhere: nobody deleted it."""
    a, b = make_db("a", CASCADE), make_db("b", CASCADE)
    da, dbb = open_all([a, b], "s", ["folder", "doc"])
    try:
        write(a, "INSERT INTO folder VALUES (1, 'old'), (2, 'new')", "INSERT INTO doc VALUES (10, 1, 'report')")
        peersync.sync(da, dbb, "s")
        write(
            a,
            "UPDATE doc SET folder_id = 2 WHERE id = 10",
            "DELETE FROM folder WHERE id = 1",
            "UPDATE doc SET title = 'report v2' WHERE id = 10",
        )
        # The edit at A is older than anything B does during the sync: make that certain.
        time.sleep(0.01)
        for _ in range(2):
            peersync.sync(da, dbb, "s", batch_size=batch_size)
        assert rows(a, "doc") == [(10, 2, "report v2")], "A's document was deleted"
        assert rows(b, "doc") == [(10, 2, "report v2")]
        assert rows(a, "folder") == rows(b, "folder") == [(2, "new")]
    finally:
        da.close()
        dbb.close()


# -- users' own triggers ---------------------------------------------------------------------------
AUDITED = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE audit (item_id INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (item_id, event));
CREATE TRIGGER item_audit AFTER INSERT ON item BEGIN INSERT INTO audit VALUES (NEW.id, 'insert'); END;
"""


@pytest.mark.parametrize("tables", [["item", "audit"], ["audit", "item"]], ids=["item-first", "audit-first"])
@pytest.mark.parametrize("batch_size", [1, 5000])
def test_a_users_trigger_on_every_peer(make_db: MakeDb, tables: list[str], batch_size: int) -> None:
    """Every peer has the same audit trigger: applying an item fires it at the
    destination too; whatever the order of tables in the scope, items sync and
    each has exactly one audit row everywhere."""
    paths = [make_db(f"p{i}", AUDITED) for i in range(3)]
    dbs = open_all(paths, "s", tables)
    try:
        write(paths[0], "INSERT INTO item VALUES (1, 'one'), (2, 'two')")
        write(paths[1], "INSERT INTO item VALUES (3, 'three')")
        for _ in range(2):
            for x, y in ((0, 1), (1, 2), (2, 0)):
                r = peersync.sync(dbs[x], dbs[y], "s", batch_size=batch_size)
                assert r.errors == 0, [(c.table, c.key, c.detail) for c in dbs[y].conflicts()]
        for p in paths:
            assert rows(p, "item") == [(1, "one"), (2, "two"), (3, "three")]
            assert rows(p, "audit") == [(1, "insert"), (2, "insert"), (3, "insert")]
        for d in dbs:
            assert [c for c in d.conflicts() if c.type is peersync.ConflictType.ERROR] == []
    finally:
        for d in dbs:
            d.close()


def test_a_users_trigger_side_effect_at_the_destination_is_tracked(make_db: MakeDb) -> None:
    """Only B has the trigger: the audit rows it writes while applying A's
    items are B's local changes and reach A and C."""
    plain = (
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE audit (item_id INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (item_id, event));"
    )
    a, b, c = make_db("a", plain), make_db("b", AUDITED), make_db("c", plain)
    dbs = open_all([a, b, c], "s", ["item", "audit"])
    try:
        write(a, "INSERT INTO item VALUES (1, 'one'), (2, 'two')")
        r = peersync.sync(dbs[0], dbs[1], "s", direction="push")
        assert r.sent_a_to_b == 2
        assert rows(b, "audit") == [(1, "insert"), (2, "insert")]
        assert dbs[1].status("s")[0].tracked_rows == 4
        r = peersync.sync(dbs[1], dbs[2], "s")
        assert r.sent_a_to_b == 4
        r = peersync.sync(dbs[2], dbs[0], "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (2, 0)
        for p in (a, b, c):
            assert rows(p, "audit") == [(1, "insert"), (2, "insert")]
        assert_no_logged_conflicts(dbs)
    finally:
        for d in dbs:
            d.close()


# -- rows that can never apply ----------------------------------------------------------------------
def test_a_row_failing_a_foreign_key_everywhere_is_logged_and_the_rest_syncs(make_db: MakeDb) -> None:
    """B declares a foreign key A lacks (same columns, same fingerprint): A's
    orphan child can never apply at B. It is logged as an 'error' conflict,
    kept out of B's knowledge (sent again next time) and everything else syncs."""
    loose = (
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, name TEXT);"
    )
    strict = loose.replace("parent_id INTEGER NOT NULL", "parent_id INTEGER NOT NULL REFERENCES parent(id)")
    a, b = make_db("a", loose), make_db("b", strict)
    da, dbb = open_all([a, b], "s", ["parent", "child"])
    try:
        write(
            a,
            "INSERT INTO parent VALUES (1, 'p1')",
            "INSERT INTO child VALUES (10, 1, 'ok'), (11, 99, 'orphan'), (12, 1, 'ok too')",
            "INSERT INTO parent VALUES (2, 'p2')",
        )
        for batch_size in (1, 5000):
            r = peersync.sync(da, dbb, "s", batch_size=batch_size)
            assert r.errors == 1
            assert rows(b, "parent") == [(1, "p1"), (2, "p2")]
            assert rows(b, "child") == [(10, 1, "ok"), (12, 1, "ok too")]
            errors = [c for c in dbb.conflicts() if c.type is peersync.ConflictType.ERROR]
            assert errors and {(c.table, c.key, c.outcome) for c in errors} == {
                ("child", (11,), peersync.Outcome.FAILED)
            }
            assert "FOREIGN KEY" in errors[-1].detail
            assert errors[-1].remote_row == {"id": 11, "parent_id": 99, "name": "orphan"}
            # Not claimed as known: the orphan comes again, nothing else does.
            assert (11 in [r[0] for r in rows(b, "child")]) is False
        st = dbb.status("s")[0]
        assert st.conflicts >= 1
        r = peersync.sync(da, dbb, "s", direction="push")
        assert (r.sent_a_to_b, r.errors) == (1, 1)

        # Once the parent exists the row applies.
        write(a, "INSERT INTO parent VALUES (99, 'late parent')")
        r = peersync.sync(da, dbb, "s")
        assert r.errors == 0
        assert rows(b, "child") == rows(a, "child")
        assert rows(b, "parent") == rows(a, "parent")
        r = peersync.sync(da, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)
        assert fk_clean(b)
    finally:
        da.close()
        dbb.close()


# -- databases that do not enforce foreign keys ---------------------------------------------------
def write_loose(path: Path, *statements: str) -> None:
    """An application that never enables foreign keys (SQLite's default)."""
    conn = sqlite3.connect(path)
    with conn:
        for st in statements:
            conn.execute(st)
    conn.close()


LOOSE = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE, name TEXT);
"""


@pytest.mark.parametrize("action", ["NO ACTION", "CASCADE"])
def test_a_parents_delete_reaches_peers_that_do_not_enforce_foreign_keys(make_db: MakeDb, action: str) -> None:
    """Orphans exist everywhere and a parent with children is deleted on one
    peer: on peers that do not enforce foreign keys the delete is nobody's to
    hold back. It arrives everywhere, the children stay (as at the source) and
    no error is logged, in this session or any later one."""
    paths = [make_db(f"p{i}", LOOSE.replace("CASCADE", action)) for i in range(3)]
    dbs = [peersync.connect(p, foreign_keys=False) for p in paths]
    try:
        for d in dbs:
            d.provision("s", ["parent", "child"])
        write_loose(
            paths[0],
            "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')",
            "INSERT INTO child VALUES (10, 1, 'c10'), (11, 2, 'c11'), (12, 99, 'orphan from the start')",
        )
        ring = ((0, 1), (1, 2), (2, 0))
        for x, y in ring:
            peersync.sync(dbs[x], dbs[y], "s")
        write_loose(paths[0], "DELETE FROM parent WHERE id = 1")  # c10 becomes an orphan at A
        for x, y in ring:
            r = peersync.sync(dbs[x], dbs[y], "s", batch_size=1)
            assert r.errors == 0, dbs[y].conflicts()
        for p in paths:
            assert rows(p, "parent") == [(2, "p2")]
            assert rows(p, "child") == [(10, 1, "c10"), (11, 2, "c11"), (12, 99, "orphan from the start")]
        for _ in range(2):
            for x, y in ring:
                r = peersync.sync(dbs[x], dbs[y], "s")
                assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (0, 0, 0)
        assert_no_logged_conflicts(dbs)
    finally:
        for d in dbs:
            d.close()


def test_a_parent_deleted_where_its_children_stay_orphans_is_not_held_back_forever(make_db: MakeDb) -> None:
    """A does not enforce foreign keys and deletes a parent whose child it keeps.
    B enforces them (ON DELETE CASCADE): no change to the child will ever come,
    so B applies the delete at the end of the session instead of holding it
    back every session; the cascade is B's own change and reaches A."""
    a, b = make_db("a", LOOSE), make_db("b", LOOSE)
    da, dbb = peersync.connect(a, foreign_keys=False), peersync.connect(b)
    try:
        for d in (da, dbb):
            d.provision("s", ["parent", "child"])
        write_loose(a, "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')", "INSERT INTO child VALUES (10, 1, 'c10')")
        peersync.sync(da, dbb, "s")
        write_loose(a, "UPDATE child SET name = 'c10 edited' WHERE id = 10", "DELETE FROM parent WHERE id = 1")
        for batch_size in (1, 5000):
            peersync.sync(da, dbb, "s", batch_size=batch_size)
        for p in (a, b):
            assert rows(p, "parent") == [(2, "p2")]
            assert rows(p, "child") == []
        assert fk_clean(b)
        r = peersync.sync(da, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (0, 0, 0)
        assert_no_logged_conflicts([da, dbb])
    finally:
        da.close()
        dbb.close()


def test_parent_delete_does_not_cascade_onto_a_moved_child_when_the_fk_names_the_key_in_another_case(
    make_db: MakeDb,
) -> None:
    """As test_parent_delete_does_not_cascade_onto_a_child_that_moved_away, with
    ``REFERENCES folder(ID)`` naming the key ``id`` in another letter case. The apply, which
    holds back a parent's delete while children the source knew still reference it, compares
    column names without letter case as SQLite does; so the folder's delete does not cascade
    onto the document that moved away, and the document survives everywhere."""
    schema = (
        "CREATE TABLE folder (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE doc (id INTEGER PRIMARY KEY,"
        " folder_id INTEGER NOT NULL REFERENCES folder(ID) ON DELETE CASCADE, title TEXT);"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["folder", "doc"])
        write(pa, "INSERT INTO folder VALUES (1, 'old'), (2, 'new')", "INSERT INTO doc VALUES (10, 1, 'report')")
        peersync.sync(a, b, "s")
        write(
            pa,
            "UPDATE doc SET folder_id = 2 WHERE id = 10",
            "DELETE FROM folder WHERE id = 1",
            "UPDATE doc SET title = 'report v2' WHERE id = 10",
        )
        for _ in range(2):
            peersync.sync(a, b, "s", batch_size=1)
        assert rows(pa, "doc") == rows(pb, "doc") == [(10, 2, "report v2")]
    finally:
        a.close()
        b.close()
