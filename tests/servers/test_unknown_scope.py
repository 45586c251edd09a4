"""A scope that is gone is an unknown scope on every kind of database: once
the last scope of a database is deprovisioned (SQLite and MariaDB drop their
metadata tables with it), every call naming a scope raises
:class:`~peersync.ScopeError`, as it does for a name never provisioned, and
creates nothing."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Knowledge, ScopeError
from peersync._engine.model import Policy, SessionEnd

from .conftest import run

DDL = {
    "sqlite": "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)",
    "pg": "CREATE TABLE item (id bigint PRIMARY KEY, name text)",
    "mysql": "CREATE TABLE item (id BIGINT PRIMARY KEY, name VARCHAR(20))",
}
OBJECTS = {
    "sqlite": "SELECT name FROM sqlite_master WHERE name LIKE '%peersync%'",
    "pg": "SELECT relname FROM pg_class WHERE relname LIKE '%peersync%'"
    " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%peersync%'"
    " UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE '%peersync%'",
    "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    " AND table_name LIKE '%peersync%' UNION ALL SELECT trigger_name FROM information_schema.triggers"
    " WHERE trigger_schema = DATABASE() AND trigger_name LIKE '%peersync%'",
}


def _calls(db: Any, scope: str) -> dict[str, Callable[[], object]]:
    """Every call that names a scope (a SQLite database has no ``snapshot_of``:
    it clones by copying the file)."""
    return {
        "describe": lambda: db.describe(scope),
        "schemas": lambda: db.schemas(scope),
        "changes": lambda: db.changes(scope, Knowledge.empty(), 0, 10, max_rows=10, max_bytes=1 << 20),
        "batches": lambda: list(db.batches(scope, Knowledge.empty(), 0, 10, max_rows=10, max_bytes=1 << 20)),
        "apply": lambda: db.apply(scope, b"\x90", Policy.LAST_WRITER_WINS),
        "finish": lambda: db.finish(scope, SessionEnd(uuid.uuid4().hex, Knowledge.empty(), Knowledge.empty())),
        "keep_final": lambda: db.keep_final(scope, (b"\x01" * 16, 1, Knowledge.empty()), Knowledge.empty()),
        "kept_finals": lambda: db.kept_finals(scope),
        "status": lambda: db.status(scope),
        "conflicts": lambda: db.conflicts(scope),
        "compact": lambda: db.compact(scope),
        "migrate": lambda: db.migrate(scope),
        "repair": lambda: db.repair(scope),
        "reidentify": lambda: db.reidentify(scope),
        "deprovision": lambda: db.deprovision(scope),
        "snapshot_of": lambda: db.snapshot_of(scope).__enter__() if hasattr(db, "snapshot_of") else db.describe(scope),
    }


@pytest.fixture(params=["sqlite", "pg", "mysql"])
def fresh(request: Any, tmp_path: Path) -> tuple[str, str]:
    """(kind, URL) of a new database of each kind, holding table ``item``."""
    kind = request.param
    if kind == "sqlite":
        url = str(tmp_path / "a.db")
        sqlite3.connect(url).close()
    else:
        url = request.getfixturevalue("make_pg" if kind == "pg" else "mysql_db")()
    run(url, DDL[kind])
    return kind, url


@pytest.mark.parametrize("call", list(_calls(None, "s")))
def test_every_call_after_the_last_scope_is_deprovisioned_raises_scope_error(fresh: tuple[str, str], call: str) -> None:
    kind, url = fresh
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
        db.describe("s")
        db.deprovision("s")
        assert db.scopes() == [] and db.status() == [] and db.conflicts() == []
        left = run(url, OBJECTS[kind])  # PostgreSQL keeps its _peersync schema
        assert kind == "pg" or left == []
        with pytest.raises(ScopeError):
            _calls(db, "s")[call]()
    assert run(url, OBJECTS[kind]) == left


@pytest.mark.parametrize("call", list(_calls(None, "s")))
def test_every_call_naming_another_scope_raises_scope_error(fresh: tuple[str, str], call: str) -> None:
    _, url = fresh
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
        with pytest.raises(ScopeError, match="'other'"):
            _calls(db, "other")[call]()
        assert db.scopes() == ["s"]
        db.describe("s")
