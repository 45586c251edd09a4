"""Foreign keys on a PostgreSQL peer: parents apply before children, deletes
of parents with their children (cascading here and at the source), and a
child whose parent is missing is an error conflict that applies once the
parent comes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peersync

from .helpers import pg_rows, provision, sqlite_db, sqlite_rows, sqlite_write, sync

PG = """
CREATE TABLE item (id integer PRIMARY KEY, name text);
CREATE TABLE tag (item_id integer NOT NULL REFERENCES item(id) ON DELETE CASCADE, label text NOT NULL,
                  PRIMARY KEY (item_id, label));
"""
SQLITE = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE tag (item_id INTEGER NOT NULL REFERENCES item(id) ON DELETE CASCADE, label TEXT NOT NULL,
                  PRIMARY KEY (item_id, label));
"""


def _pair(make_pg: Callable[..., str], tmp_path: Path) -> tuple[Path, str]:
    path = sqlite_db(tmp_path / "a.db", SQLITE)
    url = make_pg(PG)
    provision(path, ["tag", "item"])
    provision(url, ["tag", "item"])
    return path, url


def _fk_write(path: Path, *statements: str) -> None:
    sqlite_write(path, "PRAGMA foreign_keys = ON", *statements)


def test_parents_and_children_in_one_batch_and_cascading_deletes(make_pg: Callable[..., str], tmp_path: Path) -> None:
    path, url = _pair(make_pg, tmp_path)
    _fk_write(path, "INSERT INTO item VALUES (1, 'a'), (2, 'b')", "INSERT INTO tag VALUES (1, 'x'), (1, 'y'), (2, 'z')")
    r = sync(path, url, direction="push")
    assert (r.applied, r.errors) == (5, 0)
    assert pg_rows(url, "tag") == [(1, "x"), (1, "y"), (2, "z")]
    _fk_write(path, "DELETE FROM item WHERE id = 1")  # cascades to its tags at the source
    r = sync(path, url, direction="push")
    assert r.errors == 0
    assert pg_rows(url, "item") == [(2, "b")] and pg_rows(url, "tag") == [(2, "z")]
    sync(path, url)
    assert sqlite_rows(path, "tag") == pg_rows(url, "tag")
    assert sync(path, url).sent_a_to_b == 0


def test_child_without_its_parent_is_an_error_until_the_parent_comes(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    path, url = _pair(make_pg, tmp_path)
    # The source holds an orphan (its foreign keys were off when it was written).
    sqlite_write(path, "INSERT INTO tag VALUES (7, 'orphan')")
    with peersync.connect(path) as a, peersync.connect(url) as b:
        r = peersync.sync(a, b, "s", direction="push")
        assert r.errors == 1
        assert b.status("s")[0].pending == 1
    _fk_write(path, "INSERT INTO item VALUES (7, 'parent')")
    r = sync(path, url, direction="push")
    assert r.errors == 0
    assert pg_rows(url, "tag") == [(7, "orphan")]
