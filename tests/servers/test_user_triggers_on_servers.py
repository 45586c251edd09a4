"""A user's own triggers on a server database run when peersync applies a
batch there, as for any writer: what they change is a local change of the
server, so it reaches every peer and all converge (the README's convergence
and foreign-writers promises; docs/design.md, "Values a database rewrites").

The SQLite peer has the same tables without the triggers, so what it ends
with is exactly what the server tracked. Three effects, on PostgreSQL and on
MariaDB: a ``BEFORE`` trigger that rewrites the row being applied, an
``AFTER`` trigger that updates a row of another tracked table, and the same
when that row was written by the same batch (earlier, as a parent), where
the apply's own stamp must not cover the trigger's change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peersync

from .conftest import Rows, run

PG = [
    "CREATE TABLE stock (id int PRIMARY KEY, total int NOT NULL)",
    "CREATE TABLE item (id int PRIMARY KEY, name varchar(50), qty int, sid int REFERENCES stock (id))",
    "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$",
    "CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION shout()",
    "CREATE FUNCTION count_in() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN UPDATE stock SET total = total + NEW.qty WHERE id = NEW.sid; RETURN NULL; END $$",
    "CREATE TRIGGER count_in AFTER INSERT ON item FOR EACH ROW EXECUTE FUNCTION count_in()",
]
MYSQL = [
    "CREATE TABLE stock (id INT PRIMARY KEY, total INT NOT NULL)",
    "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(50), qty INT, sid INT,"
    " FOREIGN KEY (sid) REFERENCES stock (id))",
    "CREATE TRIGGER shout_i BEFORE INSERT ON item FOR EACH ROW SET NEW.name = UPPER(NEW.name)",
    "CREATE TRIGGER shout_u BEFORE UPDATE ON item FOR EACH ROW SET NEW.name = UPPER(NEW.name)",
    "CREATE TRIGGER count_in AFTER INSERT ON item FOR EACH ROW"
    " UPDATE stock SET total = total + NEW.qty WHERE id = NEW.sid",
]
LITE = [
    "CREATE TABLE stock (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)",
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(50), qty INTEGER, sid INTEGER REFERENCES stock (id))",
]
TABLES = ["stock", "item"]


def _pair(server: Callable[..., str], tmp_path: Path) -> tuple[str, str]:
    url = server(pg=PG, mysql=MYSQL)
    path = str(tmp_path / "a.db")
    run(path, *LITE)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", TABLES)
    return url, path


def _sync(a: str, b: str, **kw: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        r = peersync.sync(x, y, "s", **kw)
    assert r.error is None and r.errors == 0, r
    return r


def _rows(url: str, table: str) -> Rows:
    return run(url, f"SELECT * FROM {table} ORDER BY id")


def _converged(url: str, path: str) -> dict[str, Rows]:
    # Twice: a change the server makes while applying the second half of a
    # sync goes back in the next one.
    _sync(url, path)
    _sync(url, path)
    for t in TABLES:
        assert _rows(url, t) == _rows(path, t), t
    again = _sync(url, path)
    assert (again.sent_a_to_b, again.sent_b_to_a) == (0, 0)
    return {t: _rows(path, t) for t in TABLES}


def test_a_before_trigger_that_rewrites_the_applied_row_reaches_the_sender(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url, path = _pair(server, tmp_path)
    run(path, "INSERT INTO stock VALUES (1, 0)")
    _sync(path, url)
    run(path, "INSERT INTO item VALUES (1, 'quiet', 0, NULL)", "UPDATE stock SET total = 0")
    _sync(path, url, direction="push")
    assert _rows(url, "item") == [(1, "QUIET", 0, None)]
    assert _converged(url, path)["item"] == [(1, "QUIET", 0, None)]
    # An update applied later is rewritten again, and comes back again.
    run(path, "UPDATE item SET name = 'still quiet' WHERE id = 1")
    assert _converged(url, path)["item"] == [(1, "STILL QUIET", 0, None)]


def test_an_after_trigger_that_updates_another_tracked_table_is_a_local_change(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url, path = _pair(server, tmp_path)
    run(path, "INSERT INTO stock VALUES (1, 10)")
    _sync(path, url)
    run(path, "INSERT INTO item VALUES (1, 'A', 5, 1)")  # the batch holds the item only
    _sync(path, url, direction="push")
    assert _rows(url, "stock") == [(1, 15)]
    got = _converged(url, path)
    assert got == {"stock": [(1, 15)], "item": [(1, "A", 5, 1)]}


def test_an_after_trigger_that_updates_a_row_the_same_batch_wrote_is_a_local_change(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url, path = _pair(server, tmp_path)
    # One batch: the parent row first (stamped with its incoming version),
    # then the item whose trigger changes that parent row again.
    run(path, "INSERT INTO stock VALUES (1, 100)", "INSERT INTO item VALUES (1, 'b', 5, 1)")
    r = _sync(path, url, direction="push")
    assert r.applied == 2
    assert _rows(url, "stock") == [(1, 105)]
    got = _converged(url, path)
    assert got == {"stock": [(1, 105)], "item": [(1, "B", 5, 1)]}
    # A third replica that only ever syncs with the SQLite peer sees the same.
    third = str(tmp_path / "c.db")
    run(third, *LITE)
    with peersync.connect(third) as db:
        db.provision("s", TABLES)
    _sync(path, third)
    assert {t: _rows(third, t) for t in TABLES} == got
