"""Rows changed by foreign-key actions on MariaDB are tracked: InnoDB fires
no trigger for them, so without peersync's cascade triggers a parent deleted
by a plain client takes its children with it and peers keep them for ever.

The SQLite peers here declare no foreign keys, so nothing cascades there:
what they end with is exactly what MariaDB tracked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import peersync

from .conftest import pymysql, rows, sql, sqlite_file, sqlite_rows


def _setup(mysql_db: Callable[[], str], tmp_path: Path, maria: Sequence[str], lite: Sequence[str],
           tables: list[str]) -> tuple[str, str]:  # fmt: skip
    url = mysql_db()
    sql(url, *maria)
    path = sqlite_file(tmp_path, *lite)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", tables)
    _sync(url, path)
    return url, path


def _sync(a: str, b: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s")


def _converged(url: str, path: str, tables: list[str]) -> None:
    _sync(url, path)
    for t in tables:
        assert sqlite_rows(path, t) == rows(url, t), t
    again = _sync(url, path)
    assert again.sent_a_to_b == 0 and again.sent_b_to_a == 0


def test_delete_cascade_and_set_null_are_tracked(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE p (id INT PRIMARY KEY, name VARCHAR(10))",
         "CREATE TABLE c (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)",
         "CREATE TABLE n (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE SET NULL)",
         "INSERT INTO p VALUES (1, 'a'), (2, 'b')", "INSERT INTO c VALUES (10, 1), (11, 1), (12, 2)",
         "INSERT INTO n VALUES (20, 1), (21, 2)"],
        ["CREATE TABLE p (id INTEGER PRIMARY KEY, name VARCHAR(10))",
         "CREATE TABLE c (id INTEGER PRIMARY KEY, pid INT)", "CREATE TABLE n (id INTEGER PRIMARY KEY, pid INT)"],
        ["p", "c", "n"],
    )  # fmt: skip
    assert sqlite_rows(path, "c") == [(10, 1), (11, 1), (12, 2)]
    sql(url, "DELETE FROM p WHERE id = 1")
    _converged(url, path, ["p", "c", "n"])
    assert sqlite_rows(path, "c") == [(12, 2)]
    assert sqlite_rows(path, "n") == [(20, None), (21, 2)]


def test_cascade_through_an_untracked_table_and_from_an_untracked_root(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE root (id INT PRIMARY KEY)",
         "CREATE TABLE p (id INT PRIMARY KEY, rid INT, FOREIGN KEY (rid) REFERENCES root (id) ON DELETE CASCADE)",
         "CREATE TABLE mid (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)",
         "CREATE TABLE leaf (id INT PRIMARY KEY, mid INT, FOREIGN KEY (mid) REFERENCES mid (id) ON DELETE CASCADE)",
         "INSERT INTO root VALUES (1), (2)", "INSERT INTO p VALUES (1, 1), (2, 2)",
         "INSERT INTO mid VALUES (1, 1), (2, 2)", "INSERT INTO leaf VALUES (1, 1), (2, 1), (3, 2)"],
        ["CREATE TABLE p (id INTEGER PRIMARY KEY, rid INT)", "CREATE TABLE leaf (id INTEGER PRIMARY KEY, mid INT)"],
        ["p", "leaf"],
    )  # fmt: skip
    sql(url, "DELETE FROM p WHERE id = 1")  # p -> mid (untracked) -> leaf
    _converged(url, path, ["p", "leaf"])
    assert sqlite_rows(path, "leaf") == [(3, 2)]
    sql(url, "DELETE FROM root")  # an untracked root: p 2, mid 2, leaf 3
    _converged(url, path, ["p", "leaf"])
    assert sqlite_rows(path, "p") == [] and sqlite_rows(path, "leaf") == []


def test_self_referencing_cascade_deletes_the_whole_subtree(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE node (id INT PRIMARY KEY, up INT, FOREIGN KEY (up) REFERENCES node (id) ON DELETE CASCADE)",
         "INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2), (4, 3), (5, 4), (6, NULL), (7, 6)"],
        ["CREATE TABLE node (id INTEGER PRIMARY KEY, up INT)"],
        ["node"],
    )  # fmt: skip
    sql(url, "DELETE FROM node WHERE id = 2")
    _converged(url, path, ["node"])
    assert sqlite_rows(path, "node") == [(1, None), (6, None), (7, 6)]


def test_update_cascade_is_tracked_also_when_it_changes_a_key(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE p (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)",
         "CREATE TABLE c (id INT PRIMARY KEY, code VARCHAR(10),"
         " FOREIGN KEY (code) REFERENCES p (code) ON UPDATE CASCADE)",
         "CREATE TABLE k (code VARCHAR(10), n INT, PRIMARY KEY (code, n),"
         " FOREIGN KEY (code) REFERENCES p (code) ON UPDATE CASCADE ON DELETE CASCADE)",
         "CREATE TABLE z (id INT PRIMARY KEY, code VARCHAR(10),"
         " FOREIGN KEY (code) REFERENCES p (code) ON UPDATE SET NULL)",
         "INSERT INTO p VALUES (1, 'a'), (2, 'b')", "INSERT INTO c VALUES (1, 'a'), (2, 'b')",
         "INSERT INTO k VALUES ('a', 1), ('a', 2), ('b', 1)", "INSERT INTO z VALUES (1, 'a')"],
        ["CREATE TABLE p (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)",
         "CREATE TABLE c (id INTEGER PRIMARY KEY, code VARCHAR(10))",
         "CREATE TABLE k (code VARCHAR(10), n INT, PRIMARY KEY (code, n))",
         "CREATE TABLE z (id INTEGER PRIMARY KEY, code VARCHAR(10))"],
        ["p", "c", "k", "z"],
    )  # fmt: skip
    sql(url, "UPDATE p SET code = 'q' WHERE id = 1")
    _converged(url, path, ["p", "c", "k", "z"])
    assert sqlite_rows(path, "c") == [(1, "q"), (2, "b")]
    assert sorted(sqlite_rows(path, "k")) == [("b", 1), ("q", 1), ("q", 2)]
    assert sqlite_rows(path, "z") == [(1, None)]
    # an upsert that changes the referenced column cascades too
    sql(url, "INSERT INTO p VALUES (2, 'x') ON DUPLICATE KEY UPDATE code = 'r'")
    _converged(url, path, ["p", "c", "k", "z"])
    assert sorted(sqlite_rows(path, "k")) == [("q", 1), ("q", 2), ("r", 1)]


def test_cascade_fired_by_an_apply_is_a_local_change(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    # The SQLite peer deletes a parent and keeps its child as an orphan (it
    # declares no foreign key); applied at MariaDB the delete cascades to the
    # child, a local delete there, which must sync back.
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE p (id INT PRIMARY KEY)",
         "CREATE TABLE c (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)",
         "INSERT INTO p VALUES (1)", "INSERT INTO c VALUES (5, 1)"],
        ["CREATE TABLE p (id INTEGER PRIMARY KEY)", "CREATE TABLE c (id INTEGER PRIMARY KEY, pid INT)"],
        ["p", "c"],
    )  # fmt: skip
    import sqlite3

    assert sqlite_rows(path, "c") == [(5, 1)]
    lite = sqlite3.connect(path)
    lite.execute("DELETE FROM p WHERE id = 1")
    lite.commit()
    lite.close()
    with peersync.connect(path) as a, peersync.connect(url) as b:
        peersync.sync(a, b, "s", direction="push")
    assert rows(url, "c") == []
    _converged(url, path, ["p", "c"])
    assert sqlite_rows(path, "c") == []


def test_deprovision_removes_the_cascade_triggers(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(
        url,
        "CREATE TABLE p (id INT PRIMARY KEY)",
        "CREATE TABLE c (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)",
    )
    names = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY 1"
    with peersync.connect(url) as db:
        db.provision("s", ["c"])  # the parent is not tracked: it still gets the cascade trigger
        conn = db.conn  # type: ignore[attr-defined]
        assert [r[0] for r in conn.execute(names).fetchall()] == [
            "_peersync_cd_p", "_peersync_del_c", "_peersync_ins_c", "_peersync_upd_c"
        ]  # fmt: skip
        db.deprovision("s")
        assert conn.execute(names).fetchall() == ()


CHAIN = [
    "CREATE TABLE p (code VARCHAR(10) PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE c (pcode VARCHAR(10), n INT, PRIMARY KEY (pcode, n),"
    " FOREIGN KEY (pcode) REFERENCES p (code) ON UPDATE CASCADE ON DELETE CASCADE)",
    "CREATE TABLE g (pcode VARCHAR(10), n INT, m INT, PRIMARY KEY (pcode, n, m),"
    " FOREIGN KEY (pcode, n) REFERENCES c (pcode, n) ON UPDATE CASCADE ON DELETE CASCADE)",
    "CREATE TABLE w (id INT PRIMARY KEY, pcode VARCHAR(10), n INT,"
    " FOREIGN KEY (pcode, n) REFERENCES c (pcode, n) ON UPDATE CASCADE ON DELETE CASCADE)",
    "CREATE TABLE z (id INT PRIMARY KEY, pcode VARCHAR(10), n INT,"
    " FOREIGN KEY (pcode, n) REFERENCES c (pcode, n) ON UPDATE SET NULL ON DELETE SET NULL)",
    "CREATE TABLE gg (id INT PRIMARY KEY, pcode VARCHAR(10), n INT, m INT,"
    " FOREIGN KEY (pcode, n, m) REFERENCES g (pcode, n, m) ON UPDATE CASCADE ON DELETE SET NULL)",
    "INSERT INTO p VALUES ('a', 'first'), ('b', 'second')",
    "INSERT INTO c VALUES ('a', 1), ('a', 2), ('b', 1)",
    "INSERT INTO g VALUES ('a', 1, 1), ('a', 1, 2), ('a', 2, 1), ('b', 1, 1)",
    "INSERT INTO w VALUES (1, 'a', 1), (2, 'a', 2), (3, 'b', 1)",
    "INSERT INTO z VALUES (1, 'a', 1), (2, 'b', 1), (3, NULL, NULL)",
    "INSERT INTO gg VALUES (1, 'a', 1, 2), (2, 'b', 1, 1)",
]
CHAIN_LITE = [
    "CREATE TABLE p (code VARCHAR(10) PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE c (pcode VARCHAR(10), n INT, PRIMARY KEY (pcode, n))",
    "CREATE TABLE g (pcode VARCHAR(10), n INT, m INT, PRIMARY KEY (pcode, n, m))",
    "CREATE TABLE w (id INTEGER PRIMARY KEY, pcode VARCHAR(10), n INT)",
    "CREATE TABLE z (id INTEGER PRIMARY KEY, pcode VARCHAR(10), n INT)",
    "CREATE TABLE gg (id INTEGER PRIMARY KEY, pcode VARCHAR(10), n INT, m INT)",
]
CHAIN_TABLES = ["p", "c", "g", "w", "z", "gg"]


def test_update_cascades_reach_grandchildren_and_rekey_them(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(mysql_db, tmp_path, CHAIN, CHAIN_LITE, CHAIN_TABLES)
    sql(url, "UPDATE p SET code = 'q' WHERE code = 'a'")  # p -> c -> g -> gg, c -> w, c -> z (nulled)
    _converged(url, path, CHAIN_TABLES)
    assert sqlite_rows(path, "c") == [("b", 1), ("q", 1), ("q", 2)]
    assert sqlite_rows(path, "g") == [("b", 1, 1), ("q", 1, 1), ("q", 1, 2), ("q", 2, 1)]
    assert sqlite_rows(path, "w") == [(1, "q", 1), (2, "q", 2), (3, "b", 1)]
    assert sqlite_rows(path, "z") == [(1, None, None), (2, "b", 1), (3, None, None)]
    assert sqlite_rows(path, "gg") == [(1, "q", 1, 2), (2, "b", 1, 1)]
    # A key update in the middle of the chain: c -> g (rekeyed) -> gg, and c -> w.
    sql(url, "UPDATE c SET n = 5 WHERE pcode = 'q' AND n = 1")
    _converged(url, path, CHAIN_TABLES)
    assert sqlite_rows(path, "g") == [("b", 1, 1), ("q", 2, 1), ("q", 5, 1), ("q", 5, 2)]
    assert sqlite_rows(path, "w") == [(1, "q", 5), (2, "q", 2), (3, "b", 1)]
    assert sqlite_rows(path, "gg") == [(1, "q", 5, 2), (2, "b", 1, 1)]
    # An update that changes no referenced column reaches no child.
    with peersync.connect(url) as db:
        before = db.describe("s").tick
    sql(url, "UPDATE p SET name = 'renamed' WHERE code = 'q'", "UPDATE c SET pcode = pcode WHERE pcode = 'q'")
    with peersync.connect(url) as db:
        assert db.describe("s").tick == before + 1  # the row of p only
    _converged(url, path, CHAIN_TABLES)


def test_deletes_cascade_and_null_down_the_chain(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(mysql_db, tmp_path, CHAIN, CHAIN_LITE, CHAIN_TABLES)
    sql(url, "DELETE FROM p WHERE code = 'b'")  # c, g, w deleted; z and gg (through g's delete) nulled
    _converged(url, path, CHAIN_TABLES)
    assert sqlite_rows(path, "c") == [("a", 1), ("a", 2)]
    assert sqlite_rows(path, "w") == [(1, "a", 1), (2, "a", 2)]
    assert sqlite_rows(path, "z") == [(1, "a", 1), (2, None, None), (3, None, None)]
    assert sqlite_rows(path, "gg") == [(1, "a", 1, 2), (2, None, None, None)]
    sql(url, "DELETE FROM g WHERE m = 2")  # from the middle: gg nulled
    _converged(url, path, CHAIN_TABLES)
    assert sqlite_rows(path, "gg") == [(1, None, None, None), (2, None, None, None)]


def test_a_set_null_that_an_update_cascade_carries_on(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    # Deleting p nulls c.pcode (ON DELETE SET NULL), an update of c's
    # referenced column that InnoDB cascades to g, through an untracked table.
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE p (code VARCHAR(10) PRIMARY KEY)",
         "CREATE TABLE c (id INT PRIMARY KEY, pcode VARCHAR(10), KEY (pcode),"
         " FOREIGN KEY (pcode) REFERENCES p (code) ON DELETE SET NULL ON UPDATE CASCADE)",
         "CREATE TABLE mid (id INT PRIMARY KEY, ccode VARCHAR(10), KEY (ccode),"
         " FOREIGN KEY (ccode) REFERENCES c (pcode) ON UPDATE CASCADE)",
         "CREATE TABLE leaf (id INT PRIMARY KEY, mcode VARCHAR(10),"
         " FOREIGN KEY (mcode) REFERENCES mid (ccode) ON UPDATE CASCADE)",
         "INSERT INTO p VALUES ('a'), ('b')", "INSERT INTO c VALUES (1, 'a'), (2, 'b')",
         "INSERT INTO mid VALUES (1, 'a'), (2, 'b')", "INSERT INTO leaf VALUES (1, 'a'), (2, 'b'), (3, 'a')"],
        ["CREATE TABLE p (code VARCHAR(10) PRIMARY KEY)", "CREATE TABLE c (id INTEGER PRIMARY KEY, pcode VARCHAR(10))",
         "CREATE TABLE leaf (id INTEGER PRIMARY KEY, mcode VARCHAR(10))"],
        ["p", "c", "leaf"],
    )  # fmt: skip
    sql(url, "UPDATE p SET code = 'x' WHERE code = 'b'")  # p -> c -> mid (untracked) -> leaf
    _converged(url, path, ["p", "c", "leaf"])
    assert sqlite_rows(path, "leaf") == [(1, "a"), (2, "x"), (3, "a")]
    sql(url, "DELETE FROM p WHERE code = 'a'")
    _converged(url, path, ["p", "c", "leaf"])
    assert sqlite_rows(path, "c") == [(1, None), (2, "x")]
    assert sqlite_rows(path, "leaf") == [(1, None), (2, "x"), (3, None)]


def test_set_default_is_restrict_in_innodb_and_needs_no_tracking(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _setup(
        mysql_db, tmp_path,
        ["CREATE TABLE p (id INT PRIMARY KEY)",
         "CREATE TABLE c (id INT PRIMARY KEY, pid INT DEFAULT 0,"
         " FOREIGN KEY (pid) REFERENCES p (id) ON DELETE SET DEFAULT ON UPDATE SET DEFAULT)",
         "INSERT INTO p VALUES (1), (2)", "INSERT INTO c VALUES (1, 1)"],
        ["CREATE TABLE p (id INTEGER PRIMARY KEY)", "CREATE TABLE c (id INTEGER PRIMARY KEY, pid INT)"],
        ["p", "c"],
    )  # fmt: skip
    with pytest.raises(pymysql.err.IntegrityError):  # InnoDB keeps the key but not the action
        sql(url, "DELETE FROM p WHERE id = 1")
    with pytest.raises(pymysql.err.IntegrityError):
        sql(url, "UPDATE p SET id = 7 WHERE id = 1")
    sql(url, "DELETE FROM p WHERE id = 2")
    _converged(url, path, ["p", "c"])
    assert sqlite_rows(path, "p") == [(1,)] and sqlite_rows(path, "c") == [(1, 1)]
