"""Schema changes, rebuilt tables and copied databases on PostgreSQL:
``migrate``, ``repair`` and ``reidentify`` keep every row's tracking, as on
SQLite, each in one transaction."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import RepairNeeded, SchemaMismatch, ScopeError, SyncError

TABLE = (
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(40)); INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')"
)
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"


def _sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def _lite(path: str, *statements: str) -> list[tuple[Any, ...]]:
    c = sqlite3.connect(path)
    for st in statements:
        c.execute(st)
    c.commit()
    got = c.execute("SELECT * FROM items ORDER BY 1").fetchall()
    c.close()
    return got


def _pair(make_pg: Callable[..., str], tmp_path: Path) -> tuple[str, str]:
    url = make_pg(TABLE)
    path = str(tmp_path / "a.db")
    _lite(path, LITE)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", ["items"])
    _sync(url, path)
    return url, path


def _rows(sql: Any, url: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in sql(url, "SELECT * FROM items ORDER BY 1")]


def test_migrate_keeps_unsynced_edits_and_the_new_column_syncs(
    make_pg: Callable[..., str], sql: Any, tmp_path: Path
) -> None:
    url, path = _pair(make_pg, tmp_path)
    sql(url, "UPDATE items SET name = 'pg' WHERE id = 1")
    sql(url, "DELETE FROM items WHERE id = 3")
    _lite(path, "UPDATE items SET name = 'lite' WHERE id = 2")
    sql(url, "ALTER TABLE items ADD COLUMN color varchar(10)")
    _lite(path, "ALTER TABLE items ADD COLUMN color VARCHAR(10)")
    with pytest.raises(SchemaMismatch, match="--migrate"), peersync.connect(url) as db:
        db.describe("s")
    with peersync.connect(url) as db:
        report = db.migrate("s", ["items"])
        assert report.migrated and report.untracked == ()
        assert not db.migrate("s").migrated  # idempotent
    with pytest.raises(SchemaMismatch):
        _sync(url, path)  # the SQLite peer has not migrated yet
    with peersync.connect(path) as db:
        db.migrate("s")
    result = _sync(url, path)
    assert (result.sent_a_to_b, result.sent_b_to_a) == (2, 1)  # only the unsynced edits travel
    sql(url, "UPDATE items SET color = 'red' WHERE id = 2")
    _sync(url, path)
    assert _rows(sql, url) == _lite(path) == [(1, "pg", None), (2, "lite", "red")]


def test_migrate_refuses_a_changed_key_and_other_tables(make_pg: Callable[..., str], sql: Any, tmp_path: Path) -> None:
    url, _ = _pair(make_pg, tmp_path)
    sql(url, "CREATE TABLE other (id int PRIMARY KEY)")
    with peersync.connect(url) as db:
        with pytest.raises(ScopeError, match="keeps a scope's tables"):
            db.migrate("s", ["items", "other"])
        with pytest.raises(ScopeError, match="unknown scope"):
            db.migrate("nope")
    sql(url, "ALTER TABLE items ALTER COLUMN id TYPE text")
    with peersync.connect(url) as db, pytest.raises(ScopeError, match="primary key of table items changed"):
        db.migrate("s")


def test_rebuilt_table_is_refused_until_repaired_then_its_writes_sync(
    make_pg: Callable[..., str], sql: Any, tmp_path: Path
) -> None:
    url, path = _pair(make_pg, tmp_path)
    for st in (
        "CREATE TABLE items_new (id int PRIMARY KEY, name varchar(40) NOT NULL)",
        "INSERT INTO items_new SELECT * FROM items",
        "DROP TABLE items",
        "ALTER TABLE items_new RENAME TO items",
        "INSERT INTO items VALUES (4, 'new')",
        "DELETE FROM items WHERE id = 1",
        "UPDATE items SET name = 'edited' WHERE id = 2",
    ):
        sql(url, st)
    with pytest.raises(RepairNeeded, match="peersync repair"):
        _sync(url, path)
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert (report.retracked, report.untracked, report.inserted, report.deleted) == (("items",), ("items",), 1, 1)
    _sync(url, path)
    assert _lite(path) == [(2, "b"), (3, "c"), (4, "new")]  # the update went unseen
    with peersync.connect(url) as db:
        assert db.repair("s", restamp=True).restamped == 3
    _sync(url, path)
    assert _rows(sql, url) == _lite(path) == [(2, "edited"), (3, "c"), (4, "new")]
    sql(url, "UPDATE items SET name = 'after' WHERE id = 3")  # tracked again
    assert _sync(url, path).sent_a_to_b == 1


def test_disabled_trigger_is_repaired_and_a_changed_shape_is_migrate(
    make_pg: Callable[..., str], sql: Any, tmp_path: Path
) -> None:
    url, path = _pair(make_pg, tmp_path)
    sql(url, "ALTER TABLE items DISABLE TRIGGER _peersync_ins")
    sql(url, "INSERT INTO items VALUES (9, 'unseen')")
    with peersync.connect(url) as db:
        assert db.repair("s").inserted == 1
    _sync(url, path)
    assert (9, "unseen") in _lite(path)
    sql(url, "ALTER TABLE items ADD COLUMN x int")
    with peersync.connect(url) as db, pytest.raises(SchemaMismatch, match="--migrate"):
        db.repair("s")


def _once(url: str, statement: str) -> list[tuple[Any, ...]]:
    """A statement on a connection of its own, closed at once (so the
    database can serve as a template)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def test_database_made_from_another_is_refused_until_reidentified(
    make_pg: Callable[..., str], pg_admin: Any, tmp_path: Path
) -> None:
    url, path = _pair(make_pg, tmp_path)
    _once(url, "UPDATE items SET name = 'before copy' WHERE id = 1")
    name = f"peersync_t_{uuid.uuid4().hex[:12]}"
    origin = url.rsplit("/", 1)[1]
    pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (origin,),
    )
    pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{origin}"')
    copy = url.rsplit("/", 1)[0] + "/" + name
    try:
        with pytest.raises(SyncError, match="same replica"):
            _sync(url, copy)
        _once(copy, "UPDATE items SET name = 'on the copy' WHERE id = 2")
        _once(url, "UPDATE items SET name = 'on the original' WHERE id = 3")
        with peersync.connect(copy) as db:
            old = db.status("s")[0].replica_id
            assert db.reidentify("s", moved=True) == old
            assert db.reidentify("s") != old
        _sync(url, path)
        _sync(copy, path)
        _sync(url, copy)
        _sync(url, path)
        want = [(1, "before copy"), (2, "on the copy"), (3, "on the original")]
        assert (
            _once(url, "SELECT * FROM items ORDER BY 1")
            == _once(copy, "SELECT * FROM items ORDER BY 1")
            == _lite(path)
            == want
        )
        assert _sync(url, copy).sent_a_to_b == 0
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
