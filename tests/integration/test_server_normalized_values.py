"""Values a server database stores in another form than it received (PostgreSQL: a UUID in lower
case, jsonb, temporal text; MariaDB: fractional seconds in six digits, a UUID in lower case) make
the server's row a new local change, so the stored form reaches every peer and all replicas hold
identical rows (the README's convergence promise); values already in their stored form make no
new version (no redundancy)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync
from tests.integration.test_usertest_findings import _mysql, _pg, mysql_db, pg_db

__all__ = ["mysql_db", "pg_db"]  # fixtures, imported to be registered here

SQLITE_V = "CREATE TABLE v (id TEXT PRIMARY KEY, u UUID, j JSON, ts DATETIME, d DATE, tm TIME, n INTEGER)"
PG_V = "CREATE TABLE v (id text PRIMARY KEY, u uuid, j jsonb, ts timestamp, d date, tm time, n int)"
MARIA_V = "CREATE TABLE v (id varchar(20) PRIMARY KEY, u uuid, j json, ts datetime(6), d date, tm time(6), n int)"
# Each row in a form the servers rewrite (r1: PostgreSQL; r2: both) or keep (r3, canonical).
ROWS = [
    (
        "r1",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        '{"b": 1,  "a": 2}',
        "2024-01-02T03:04:05",
        "2024-01-02",
        "10:00",
        1,
    ),
    ("r2", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12", "[1, 2]", "2024-01-02 03:04:05.5", "2024-01-02", "10:00:00.25", 2),
    ("r3", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13", "[1, 2]", "2024-01-02 03:04:05.500000", "2024-01-02", "10:00:00", 3),
]


def _sqlite(path: str, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        for st in statements:
            conn.execute(st)
        if rows:
            conn.executemany(f"INSERT INTO v VALUES ({', '.join('?' * len(rows[0]))})", rows)
        conn.commit()
        return conn.execute("SELECT * FROM v ORDER BY id").fetchall()
    finally:
        conn.close()


def _peers(tmp_path: Path, rows: list[tuple[Any, ...]]) -> tuple[str, str]:
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    _sqlite(a, SQLITE_V, rows=rows)
    _sqlite(b, SQLITE_V)
    return a, b


def _quiet(a: peersync.Database, b: peersync.Database) -> tuple[int, int]:
    r = peersync.sync(a, b, "s")
    return r.sent_a_to_b, r.sent_b_to_a


def _through_server(url: str, tmp_path: Path, rows: list[tuple[Any, ...]]) -> tuple[str, str]:
    """A -> server -> B, then every pair until nothing moves; returns the two SQLite paths."""
    a, b = _peers(tmp_path, rows)
    with peersync.connect(a) as da, peersync.connect(url) as ds, peersync.connect(b) as db:
        for d in (da, ds, db):
            d.provision("s", ["v"])
        assert peersync.sync(da, ds, "s").sent_a_to_b == len(rows)
        peersync.sync(ds, db, "s")
        for _ in range(2):
            peersync.sync(da, db, "s")
            peersync.sync(da, ds, "s")
            peersync.sync(ds, db, "s")
        assert _quiet(da, db) == (0, 0)
        assert _quiet(da, ds) == (0, 0)
        assert _quiet(ds, db) == (0, 0)
    return a, b


def test_sqlite_peers_converge_through_postgresql_on_every_rewritten_type(
    pg_db: Callable[[str], str], tmp_path: Path
) -> None:
    url = pg_db(PG_V)
    a, b = _through_server(url, tmp_path, ROWS)
    assert _sqlite(a) == _sqlite(b)
    (r1, r2, r3) = _sqlite(a)
    assert r1[1:6] == ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '{"a": 2, "b": 1}', "2024-01-02 03:04:05",
                       "2024-01-02", "10:00:00")  # fmt: skip
    assert r2[3:6] == ("2024-01-02 03:04:05.500000", "2024-01-02", "10:00:00.250000")
    assert r3 == ROWS[2]


def test_sqlite_peers_converge_through_mariadb_on_timestamp_fractions(
    mysql_db: Callable[[str], str], tmp_path: Path
) -> None:
    url = mysql_db(MARIA_V)
    a, b = _through_server(url, tmp_path, ROWS)
    assert _sqlite(a) == _sqlite(b)
    (r1, r2, r3) = _sqlite(a)
    assert r1[1] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert r1[3] == "2024-01-02 03:04:05" and r1[5] == "10:00:00"
    assert r2[3:6] == ("2024-01-02 03:04:05.500000", "2024-01-02", "10:00:00.250000")
    assert r3 == ROWS[2]
    assert [tuple(r) for r in _mysql(url, "SELECT id, CAST(ts AS char) FROM v ORDER BY id")] == [
        ("r1", "2024-01-02 03:04:05.000000"), ("r2", "2024-01-02 03:04:05.500000"), ("r3", "2024-01-02 03:04:05.500000")
    ]  # fmt: skip


def test_a_loop_through_both_servers_converges_and_then_sends_nothing(
    pg_db: Callable[[str], str], mysql_db: Callable[[str], str], tmp_path: Path
) -> None:
    pg, maria = pg_db(PG_V), mysql_db(MARIA_V)
    a, b = _peers(tmp_path, ROWS)
    with (
        peersync.connect(a) as da,
        peersync.connect(pg) as dp,
        peersync.connect(maria) as dm,
        peersync.connect(b) as db,
    ):
        ring = [da, dp, dm, db]
        for d in ring:
            d.provision("s", ["v"])
        for _ in range(3):  # A -> PG -> MariaDB -> B -> A, both ways each hop
            for x, y in zip(ring, ring[1:] + ring[:1], strict=True):
                peersync.sync(x, y, "s")
        for x, y in zip(ring, ring[1:] + ring[:1], strict=True):
            assert _quiet(x, y) == (0, 0)
        assert _quiet(da, dm) == (0, 0) and _quiet(dp, db) == (0, 0)
    assert _sqlite(a) == _sqlite(b)
    assert [r[0] for r in _pg(pg, "SELECT id FROM v ORDER BY id")] == ["r1", "r2", "r3"]


def test_values_already_in_stored_form_make_no_new_version(
    pg_db: Callable[[str], str], mysql_db: Callable[[str], str], tmp_path: Path
) -> None:
    canonical = [ROWS[2], ("r4", None, None, None, None, None, 4)]
    for url in (pg_db(PG_V), mysql_db(MARIA_V)):
        path = str(tmp_path / f"{len(url)}-{url[-6:]}.db")
        _sqlite(path, SQLITE_V, rows=canonical)
        with peersync.connect(path) as da, peersync.connect(url) as ds:
            da.provision("s", ["v"])
            ds.provision("s", ["v"])
            (before,) = da.status("s")
            assert _quiet(da, ds) == (2, 0)  # nothing comes back: the server made no version of its own
            (st,) = ds.status("s")
            assert st.tracked_rows == 2
            (after,) = da.status("s")
            assert after.tick == before.tick


def test_a_rewritten_row_comes_back_once_and_keeps_later_edits(pg_db: Callable[[str], str], tmp_path: Path) -> None:
    url = pg_db(PG_V)
    a, _ = _peers(tmp_path, [ROWS[0]])
    with peersync.connect(a) as da, peersync.connect(url) as dp:
        da.provision("s", ["v"])
        dp.provision("s", ["v"])
        assert _quiet(da, dp) == (1, 1)  # r1 goes, its stored form comes back (no conflict)
        assert da.conflicts("s") == [] and dp.conflicts("s") == []
        assert _quiet(da, dp) == (0, 0)
        _sqlite(a, "UPDATE v SET n = 9")
        assert _quiet(da, dp) == (1, 0)  # a later edit of canonical values makes no new server version
    assert _pg(url, "SELECT n, u::text FROM v") == [(9, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")]
