"""A scope that differs between two peers, or whose key changed under it, is
refused with what differs and the way out that works: other tables and another
key are a deprovision and a provision (a migration cannot change a key), other
columns a migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import peersync

from .test_cli import assert_error, invoke, ok


def _db(path: Path, schema: str, tables: tuple[str, ...] = ("t",)) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.close()
    with peersync.connect(path) as db:
        db.provision("s", list(tables))
    return path


T = "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT);"


def _mismatch(tmp_path: Path, other: str, tables: tuple[str, ...] = ("t",)) -> str:
    a = _db(tmp_path / "a.db", T)
    b = _db(tmp_path / "b.db", other, tables)
    with peersync.connect(a) as da, peersync.connect(b) as db, pytest.raises(peersync.SchemaMismatch) as exc:
        peersync.sync(da, db, "s")
    return str(exc.value)


def test_other_tables_say_which_and_not_migrate(tmp_path: Path) -> None:
    msg = _mismatch(tmp_path, T + "CREATE TABLE u (id INTEGER PRIMARY KEY);", ("t", "u"))
    assert "only" in msg and "b.db has u" in msg and "provision it again" in msg
    assert "--migrate" not in msg


def test_another_key_says_deprovision_not_migrate(tmp_path: Path) -> None:
    msg = _mismatch(tmp_path, "CREATE TABLE t (id INTEGER, x TEXT, PRIMARY KEY (id, x));")
    assert "primary key of table t differs (id against id, x)" in msg and "deprovision" in msg
    assert "--migrate" not in msg


def test_other_columns_name_them_and_the_migration(tmp_path: Path) -> None:
    msg = _mismatch(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, y TEXT);")
    assert "columns of table t differ" in msg and "y text" in msg and "--migrate" in msg


def test_a_key_changed_since_provisioning_names_deprovision_not_migrate(tmp_path: Path) -> None:
    a = _db(tmp_path / "a.db", T + "INSERT INTO t VALUES (1, 'x');")
    b = _db(tmp_path / "b.db", T)
    conn = sqlite3.connect(a)
    conn.executescript(
        "CREATE TABLE t2 (id INTEGER, x TEXT, PRIMARY KEY (id, x)); INSERT INTO t2 SELECT * FROM t;"
        " DROP TABLE t; ALTER TABLE t2 RENAME TO t;"
    )
    conn.close()
    line = assert_error(invoke("sync", a, b, "-s", "s"), "primary key of table t")
    assert "--migrate cannot follow" in line and f"peersync deprovision {a} --scope s" in line
    # the commands it names work (--migrate refuses a new key)
    assert_error(invoke("init", a, "--scope", "s", "--table", "t", "--migrate"), "primary key")
    ok(invoke("deprovision", a, "--scope", "s"))
    ok(invoke("init", a, "--scope", "s", "--table", "t"))
    with peersync.connect(a) as d:
        assert d.schemas("s")["t"].key == ("id", "x")
