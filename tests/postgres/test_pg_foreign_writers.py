"""Changes made through plain SQL by any program are tracked: multi-row
statements, key updates, ON CONFLICT, COPY, TRUNCATE; a no-op UPDATE is no change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from .helpers import ITEM_PG, pg_rows, provision, sqlite_db, sqlite_rows, sync


def _pair(make_pg: Callable[..., str], tmp_path: Path) -> tuple[str, Path]:
    url = make_pg(ITEM_PG)
    path = sqlite_db(tmp_path / "a.db")
    provision(url, ["item"])
    provision(path, ["item"])
    return url, path


def _converged(url: str, path: Path) -> None:
    assert pg_rows(url) == sqlite_rows(path)


def test_multi_row_statements_and_key_updates(make_pg: Callable[..., str], tmp_path: Path, sql: Any) -> None:
    url, path = _pair(make_pg, tmp_path)
    sql(url, "INSERT INTO item SELECT g, 'n' || g, g, g / 2.0 FROM generate_series(1, 50) AS g")
    assert sync(url, path, direction="push").sent_a_to_b == 50
    _converged(url, path)
    sql(url, "UPDATE item SET qty = qty + 100 WHERE id <= 10")
    sql(url, "UPDATE item SET id = id + 1000 WHERE id BETWEEN 11 AND 12")  # a key change: delete + insert
    sql(url, "DELETE FROM item WHERE id > 40")
    r = sync(url, path, direction="push")
    assert r.sent_a_to_b == 10 + 4 + 10
    _converged(url, path)


def test_on_conflict_upsert_and_noop_update(make_pg: Callable[..., str], tmp_path: Path, sql: Any) -> None:
    url, path = _pair(make_pg, tmp_path)
    sql(url, "INSERT INTO item VALUES (1, 'a', 1, 1), (2, 'b', 2, 2)")
    sync(url, path, direction="push")
    sql(
        url,
        "INSERT INTO item VALUES (2, 'B', 2, 2), (3, 'c', 3, 3) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
    )
    sql(url, "UPDATE item SET name = name")  # changes nothing: sends nothing
    assert sync(url, path, direction="push").sent_a_to_b == 2
    _converged(url, path)
    sql(url, "UPDATE item SET name = name")
    assert sync(url, path, direction="push").sent_a_to_b == 0


def test_copy_is_tracked(make_pg: Callable[..., str], tmp_path: Path) -> None:
    url, path = _pair(make_pg, tmp_path)
    with psycopg.connect(url) as conn, conn.cursor().copy("COPY item (id, name, qty, price) FROM STDIN") as cp:
        for i in range(1, 1001):
            cp.write_row((i, f"row {i}", i, i * 0.5))
    assert sync(url, path, direction="push").sent_a_to_b == 1000
    _converged(url, path)


def test_truncate_becomes_deletes(make_pg: Callable[..., str], tmp_path: Path, sql: Any) -> None:
    url, path = _pair(make_pg, tmp_path)
    sql(url, "INSERT INTO item VALUES (1, 'a', 1, 1), (2, 'b', 2, 2)")
    sync(url, path, direction="push")
    sql(url, "TRUNCATE item")
    assert sync(url, path, direction="push").sent_a_to_b == 2
    assert sqlite_rows(path) == []


def test_one_tick_lock_per_transaction(make_pg: Callable[..., str], tmp_path: Path, sql: Any) -> None:
    url, _ = _pair(make_pg, tmp_path)
    with psycopg.connect(url) as conn:
        for i in range(200):
            conn.execute("INSERT INTO item VALUES (%s, 'x', 0, 0)", (i,))
        (n,) = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()
        assert n == 1


def test_an_update_is_a_change_when_a_stored_value_reads_back_otherwise(
    make_pg: Callable[..., str], tmp_path: Path, sql: Any
) -> None:
    """The update trigger compares old and new rows by their stored bytes:
    1.5 made 1.50 in a numeric (equal as numbers), a trailing space, and
    toasted texts, floats and numerics set to what they held are judged as
    reading them back would. (-0.0 for 0.0 too, but SQLite refuses it.)"""
    url = make_pg(
        "CREATE TABLE m (id integer PRIMARY KEY, f float8, n numeric, t text);"
        " INSERT INTO m SELECT g, 0.0, 1.5, repeat('x', 5000) || g FROM generate_series(1, 6) AS g"
    )
    path = sqlite_db(tmp_path / "a.db", "CREATE TABLE m (id INTEGER PRIMARY KEY, f REAL, n NUMERIC, t TEXT)")
    provision(url, ["m"])
    provision(path, ["m"])
    assert sync(url, path, direction="push").sent_a_to_b == 6
    sql(url, "UPDATE m SET n = 1.50 WHERE id = 2")
    sql(url, "UPDATE m SET t = t || ' ' WHERE id = 3")
    sql(url, "UPDATE m SET t = repeat('x', 5000) || id, f = 0.0, n = 1.5 WHERE id > 3")  # the same values again
    assert sync(url, path, direction="push").sent_a_to_b == 2
    assert sync(url, path, direction="push").sent_a_to_b == 0
