"""Values arrive exactly as they were written: same storage class (an integer
is not a real of equal value), same bytes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import write

MakeDb = Callable[..., Path]

VALUES_SCHEMA = "CREATE TABLE v (id INTEGER PRIMARY KEY, u, n NUMERIC, r REAL, t TEXT, b BLOB);"


def typed(path: Path, table: str = "v") -> list[tuple[object, ...]]:
    """Every value with its storage class, as hex for TEXT and BLOB (bytes exact)."""
    conn = sqlite3.connect(path)
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    sel = ", ".join(f"typeof({c}), CASE WHEN typeof({c}) IN ('text', 'blob') THEN hex({c}) ELSE {c} END" for c in cols)
    out = conn.execute(f"SELECT {sel} FROM {table} ORDER BY 2").fetchall()
    conn.close()
    return out


@pytest.fixture
def pair(make_db: MakeDb) -> tuple[Path, Path]:
    a, b = make_db("a", VALUES_SCHEMA), make_db("b", VALUES_SCHEMA)
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["v"])
    return a, b


def sync(a: Path, b: Path, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        return peersync.sync(da, db_, "s", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("before", "after"), [("1", "1.0"), ("1.0", "1"), ("0", "0.0"), ("-5.0", "-5")])
def test_an_integer_changed_to_an_equal_real_syncs(pair: tuple[Path, Path], before: str, after: str) -> None:
    a, b = pair
    write(a, f"INSERT INTO v (id, u) VALUES (1, {before})")
    sync(a, b)
    assert typed(a) == typed(b)
    write(a, f"UPDATE v SET u = {after} WHERE id = 1")
    r = sync(a, b)
    assert r.sent_a_to_b == 1
    assert typed(a) == typed(b)
    conn = sqlite3.connect(b)
    assert conn.execute("SELECT typeof(u) FROM v").fetchone() == ("real" if "." in after else "integer",)
    conn.close()


def test_a_numeric_column_stores_an_integral_real_as_integer_and_that_is_no_change(pair: tuple[Path, Path]) -> None:
    a, b = pair
    write(a, "INSERT INTO v (id, n, r) VALUES (1, 1, 1)")
    sync(a, b)
    write(a, "UPDATE v SET n = 1.0, r = 1.0 WHERE id = 1")  # affinity makes both what they were
    assert sync(a, b).sent_a_to_b == 0
    assert typed(a) == typed(b)
