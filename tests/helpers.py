"""Helpers for tests: a foreign writer and a reader, both plain sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHINOOK_SQL = SHARED / "data" / "chinook" / "Chinook_Sqlite.sql"


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
