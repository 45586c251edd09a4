"""Shared fixtures: real SQLite files in a temporary folder."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import peersync

from .helpers import CHINOOK_SQL

# An xdist worker starts with COLUMNS=80 and LINES=24 in its environment, where the main
# process has neither: the CLI's rich console would then fix its width at 80 when imported,
# and the CLI tests, which set COLUMNS for each run, would see narrow, cut tables. A worker
# starts as the main process does.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

ITEMS_SCHEMA = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);
CREATE TABLE tag (item_id INTEGER NOT NULL REFERENCES item(id) ON DELETE CASCADE, label TEXT NOT NULL,
                  PRIMARY KEY (item_id, label));
"""


@pytest.fixture
def make_db(tmp_path: Path) -> Callable[..., Path]:
    """``make_db(name, schema=ITEMS_SCHEMA)``: a new SQLite file with a schema."""

    def make(name: str, schema: str = ITEMS_SCHEMA) -> Path:
        path = tmp_path / f"{name}.db"
        conn = sqlite3.connect(path)
        conn.executescript(schema)
        conn.close()
        return path

    return make


@pytest.fixture
def peers(make_db: Callable[..., Path]) -> Iterator[list[peersync.Database]]:
    """Three provisioned peers of scope ``s`` over tables item and tag."""
    dbs = [peersync.connect(make_db(f"p{i}")) for i in range(1, 4)]
    for db in dbs:
        db.provision("s", ["item", "tag"])
    yield dbs
    for db in dbs:
        db.close()


@pytest.fixture
def chinook_sql() -> str:
    if not CHINOOK_SQL.exists():
        pytest.skip(f"Chinook data not found at {CHINOOK_SQL} (../shared is absent in a user's clone)")
    return CHINOOK_SQL.read_text(encoding="utf-8-sig")
