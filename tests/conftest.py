"""Shared fixtures: real SQLite files in a temporary folder."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import peersync

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHINOOK_SQL = SHARED / "data" / "chinook" / "Chinook_Sqlite.sql"

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


def write(path: Path | str, *statements: tuple[str, tuple[object, ...]] | str) -> None:
    """A foreign writer: plain sqlite3, foreign keys on, one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        for st in statements:
            if isinstance(st, str):
                conn.execute(st)
            else:
                conn.execute(*st)
    conn.close()


def rows(path: Path | str, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    out = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2').fetchall()
    conn.close()
    return out


@pytest.fixture
def chinook_sql() -> str:
    if not CHINOOK_SQL.exists():
        pytest.skip(f"Chinook data not found at {CHINOOK_SQL} (../shared is absent in a user's clone)")
    return CHINOOK_SQL.read_text(encoding="utf-8-sig")
