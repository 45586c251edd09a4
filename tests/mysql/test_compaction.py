"""Compaction of the MariaDB change log: superseded entries go, every row
keeps its version, and sessions carry on exactly."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import peersync

from .conftest import raw, rows, sql, sqlite_file, sqlite_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))"
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"


def _log_entries(url: str) -> int:
    conn = raw(url)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM _peersync_log")
    (n,) = cur.fetchone()
    conn.close()
    return int(n)


def _sync(a: str, b: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s")


def test_compact_drops_superseded_log_entries_and_sessions_stay_exact(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    url = mysql_db()
    sql(url, TABLE, "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    one, two = sqlite_file(tmp_path, LITE, name="one.db"), sqlite_file(tmp_path, LITE, name="two.db")
    for u in (url, one, two):
        with peersync.connect(u) as db:
            db.provision("s", ["items"])
    _sync(url, one)
    for i in range(20):
        sql(url, f"UPDATE items SET name = 'v{i}' WHERE id = {1 + i % 3}")
    sql(url, "DELETE FROM items WHERE id = 3", "INSERT INTO items VALUES (4, 'd')")
    before = _log_entries(url)
    with peersync.connect(url) as db:
        db.compact("s")
        db.compact()
    after = _log_entries(url)
    # rows 1, 2 and 3 (a tombstone) keep their last change and their creation; 4 its insert
    assert before >= 25 and after == 7, (before, after)
    # a peer that knows older states and one that knows nothing both get exactly what is there
    assert _sync(url, one).sent_a_to_b == 4
    assert _sync(url, two).sent_a_to_b == 4
    want = rows(url, "items")
    assert sqlite_rows(one, "items") == want == sqlite_rows(two, "items")
    assert _sync(url, one).sent_a_to_b == 0
    # changes after compaction travel, and an edit elsewhere comes back in
    sql(url, "UPDATE items SET name = 'after' WHERE id = 1")
    c = sqlite3.connect(two)
    c.execute("UPDATE items SET name = 'lite' WHERE id = 2")
    c.commit()
    c.close()
    _sync(url, two)
    _sync(url, one)
    assert rows(url, "items") == sqlite_rows(one, "items") == sqlite_rows(two, "items")
    assert rows(url, "items") == [(1, "after"), (2, "lite"), (4, "d")]


def test_compact_of_an_unknown_scope_is_refused(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, TABLE)
    with peersync.connect(url) as db:
        db.provision("s", ["items"])
        try:
            db.compact("nope")
        except peersync.ScopeError:
            pass
        else:
            raise AssertionError("compact of an unknown scope did not raise")
