"""Rows changed by foreign-key actions on MariaDB are tracked: InnoDB fires
no trigger for them, so without peersync's cascade triggers a parent deleted
by a plain client takes its children with it and peers keep them for ever.

The SQLite peers here declare no foreign keys, so nothing cascades there:
what they end with is exactly what MariaDB tracked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import peersync

from .conftest import rows, sql, sqlite_file, sqlite_rows


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
