"""Adversarial histories against NOCASE and composite keys, changed-column writes and value
types: short, deterministic histories among three peers, each checking convergence and a
quiet round that sends nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync

from ..helpers import at, full_rounds, peers, push, rows

T0 = (int(time.time()) + 86_400) * 1000 + 500

TAGS = """
CREATE TABLE tag (name TEXT PRIMARY KEY COLLATE NOCASE, color TEXT);
CREATE TABLE item (id INTEGER PRIMARY KEY, tag TEXT REFERENCES tag(name) ON DELETE CASCADE, body TEXT);
"""
NOTES = """
CREATE TABLE note (owner TEXT COLLATE NOCASE, slug TEXT, body TEXT, PRIMARY KEY (owner, slug));
"""


def typed(p: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(p)
    out = conn.execute(sql).fetchall()
    conn.close()
    return out


def same_everywhere(paths: list[Path], *tables: str) -> None:
    for t in tables:
        got = [rows(p, t) for p in paths]
        assert all(g == got[0] for g in got), got


# -- NOCASE keys with foreign keys -----------------------------------------------------------------------------------
def test_a_case_change_of_a_parent_key_and_a_new_child_converge(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, TAGS, ["tag", "item"])
    at(a, T0 + 100, "INSERT INTO tag VALUES ('urgent', 'red')")
    full_rounds([a, b, c], 1)
    at(b, T0 + 200, "UPDATE tag SET name = 'URGENT' WHERE name = 'urgent'")
    at(c, T0 + 300, "INSERT INTO item VALUES (1, 'urgent', 'x')")
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "tag", "item")
    assert rows(a, "tag") == [("URGENT", "red")]
    assert rows(a, "item") == [(1, "urgent", "x")]
    assert full_rounds([a, b, c], 1) == 0


def test_a_parent_deleted_in_another_case_cascades_the_same_everywhere(make_db: Callable[..., Path]) -> None:
    """A deletes tag 'urgent' (cascading to item 1), C re-cases it to 'Urgent' earlier. The
    delete is later and wins: no peer keeps the tag or the item."""
    a, b, c = peers(make_db, TAGS, ["tag", "item"])
    at(a, T0 + 100, "INSERT INTO tag VALUES ('urgent', 'red')", "INSERT INTO item VALUES (1, 'URGENT', 'x')")
    full_rounds([a, b, c], 1)
    at(c, T0 + 200, "UPDATE tag SET name = 'Urgent' WHERE name = 'urgent'")
    at(a, T0 + 300, "DELETE FROM tag WHERE name = 'urgent'")
    push(c, b)
    push(a, b, batch_size=1)
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "tag", "item")
    assert rows(a, "tag") == [] and rows(a, "item") == []
    assert full_rounds([a, b, c], 1) == 0


def test_concurrent_case_changes_of_a_composite_key_converge(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, NOTES, ["note"])
    at(a, T0 + 100, "INSERT INTO note VALUES ('ann', 'todo', 'x')")
    full_rounds([a, b, c], 1)
    at(b, T0 + 200, "UPDATE note SET owner = 'Ann' WHERE owner = 'ann'")
    at(c, T0 + 300, "UPDATE note SET owner = 'ANN', body = 'y' WHERE owner = 'ann'")
    at(a, T0 + 250, "UPDATE note SET body = 'z' WHERE owner = 'ann'")
    push(b, a)
    push(c, b)
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "note")
    assert rows(a, "note") == [("ANN", "todo", "y")]
    assert full_rounds([a, b, c], 1) == 0


def test_composite_keys_differing_only_in_case_on_two_peers_are_one_row(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, NOTES, ["note"])
    at(a, T0 + 100, "INSERT INTO note VALUES ('ann', 'todo', 'a')")
    at(b, T0 + 200, "INSERT INTO note VALUES ('ANN', 'todo', 'b')")
    at(c, T0 + 150, "INSERT INTO note VALUES ('Ann', 'todo', 'c')", "INSERT INTO note VALUES ('ann', 'TODO', 'd')")
    push(a, c)
    push(b, c)
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "note")
    assert rows(a, "note") == [("ann", "TODO", "d"), ("ANN", "todo", "b")]
    assert full_rounds([a, b, c], 1) == 0


# -- 1, 1.0 and '1' --------------------------------------------------------------------------------------------------
ANY = "CREATE TABLE cell (id PRIMARY KEY, v)"  # no type affinity: 1, 1.0 and '1' keep their storage class


def test_concurrent_writes_of_1_and_1_0_are_a_conflict_with_one_winner_everywhere(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, ANY, ["cell"])
    at(a, T0 + 100, "INSERT INTO cell VALUES ('k', 0)")
    full_rounds([a, b, c], 1)
    at(a, T0 + 200, "UPDATE cell SET v = 1")
    at(b, T0 + 300, "UPDATE cell SET v = 1.0")
    at(c, T0 + 250, "UPDATE cell SET v = '1'")
    push(a, c)
    push(c, b)
    push(b, a)
    full_rounds([a, b, c])
    want = [("k", 1.0, "real")]
    for p in (a, b, c):
        assert typed(p, "SELECT id, v, typeof(v) FROM cell") == want
    assert full_rounds([a, b, c], 1) == 0


@pytest.mark.xfail(
    strict=True,
    reason="a key column is written only on insert (or for a NOCASE letter-case change): A and C keep key 1"
    " (integer) while B holds 1.0 (real), and no round sends anything",
)
def test_keys_1_and_1_0_written_on_two_peers_end_with_one_storage_class(make_db: Callable[..., Path]) -> None:
    """1 and 1.0 are one key (they compare equal). B writes it later, as 1.0: every peer
    ends with B's row, key included."""
    a, b, c = peers(make_db, ANY, ["cell"])
    at(a, T0 + 100, "INSERT INTO cell VALUES (1, 'a')")
    at(b, T0 + 200, "INSERT INTO cell VALUES (1.0, 'b')")
    push(a, c)
    full_rounds([a, b, c])
    got = [typed(p, "SELECT id, typeof(id), v FROM cell") for p in (a, b, c)]
    assert got == [[(1.0, "real", "b")]] * 3
    assert full_rounds([a, b, c], 1) == 0


def test_keys_1_and_text_1_are_two_rows(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, ANY, ["cell"])
    at(a, T0 + 100, "INSERT INTO cell VALUES (1, 'int')")
    at(b, T0 + 200, "INSERT INTO cell VALUES ('1', 'text')")
    full_rounds([a, b, c])
    for p in (a, b, c):
        assert typed(p, "SELECT id, typeof(id), v FROM cell ORDER BY typeof(id)") == [
            (1, "integer", "int"),
            ("1", "text", "text"),
        ]
    assert full_rounds([a, b, c], 1) == 0


# -- changed-column writes and a user trigger that changes another row of the batch ----------------------------------
CHAIN = """
CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT);
CREATE TRIGGER t_chain AFTER UPDATE OF v ON t BEGIN UPDATE t SET w = NEW.v WHERE id = NEW.id + 1; END;
"""


def test_a_trigger_that_writes_the_next_row_of_the_same_batch_converges(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, CHAIN, ["t"])
    at(a, T0 + 100, *(f"INSERT INTO t VALUES ({i}, 'v{i}', 'w{i}')" for i in range(1, 5)))
    full_rounds([a, b, c], 1)
    at(b, T0 + 150, "UPDATE t SET w = 'b' WHERE id = 3")
    at(a, T0 + 200, "UPDATE t SET v = 'x' WHERE id IN (1, 2)", "UPDATE t SET v = 'y' WHERE id = 3")
    at(c, T0 + 250, "UPDATE t SET v = 'c' WHERE id = 2")
    push(a, b)
    push(c, b)
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "t")
    assert full_rounds([a, b, c], 1) == 0


def test_a_trigger_that_writes_the_next_row_converges_one_row_per_batch(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, CHAIN, ["t"])
    at(a, T0 + 100, *(f"INSERT INTO t VALUES ({i}, 'v{i}', 'w{i}')" for i in range(1, 5)))
    full_rounds([a, b, c], 1)
    at(a, T0 + 200, "UPDATE t SET v = 'x' WHERE id = 3", "UPDATE t SET w = 'own' WHERE id = 4")
    at(b, T0 + 300, "UPDATE t SET v = 'z' WHERE id = 2")
    push(a, b, batch_size=1)
    push(b, c, batch_size=1)
    full_rounds([a, b, c], batch_size=1)
    same_everywhere([a, b, c], "t")
    assert full_rounds([a, b, c], 1) == 0


# -- a parent deleted while a child is edited concurrently -----------------------------------------------------------
FAMILY = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, v TEXT);
"""


@pytest.mark.parametrize("child_edit", [150, 300])
def test_a_parent_deleted_while_its_child_is_edited_elsewhere_converges(
    make_db: Callable[..., Path], child_edit: int
) -> None:
    a, b, c = peers(make_db, FAMILY, ["parent", "child"])
    at(a, T0 + 100, "INSERT INTO parent VALUES (1, 'p')", "INSERT INTO child VALUES (1, 1, 'c')")
    full_rounds([a, b, c], 1)
    at(a, T0 + 200, "DELETE FROM parent WHERE id = 1")
    at(b, T0 + child_edit, "UPDATE child SET v = 'edited' WHERE id = 1")
    push(a, b)
    push(b, c)
    full_rounds([a, b, c])
    same_everywhere([a, b, c], "parent", "child")
    assert rows(a, "parent") == []
    assert full_rounds([a, b, c], 1) == 0
    assert [peersync.status(str(p), "s")[0].pending for p in (a, b, c)] == [0, 0, 0]
