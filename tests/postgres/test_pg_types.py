"""Values round-trip exactly SQLite -> PostgreSQL -> SQLite and PostgreSQL ->
PostgreSQL for the common types; a value a column cannot hold is an error
conflict naming the column, and the rest of the batch applies."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import peersync
from peersync import ConflictType

from .helpers import sqlite_rows, sync

PG_TYPES = """
CREATE TYPE color AS ENUM ('red', 'green');
CREATE TABLE v (
  id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, r double precision, f4 real,
  d numeric(14, 4), dn numeric, t text, vc varchar(5), ch char(3), b bytea, flag boolean,
  day date, tod time, ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, e color
)"""
SQLITE_TYPES = """
CREATE TABLE v (
  id INTEGER PRIMARY KEY, i2 SMALLINT, i4 INTEGER, i8 BIGINT, r REAL, f4 FLOAT, d DECIMAL(14, 4),
  dn NUMERIC, t TEXT, vc VARCHAR(5), ch CHAR(3), b BLOB, flag BOOLEAN, day DATE, tod TIME,
  ts TIMESTAMP, tstz TIMESTAMPTZ, u UUID, j JSON, jb JSONB, e TEXT
)"""
COLS = "id, i2, i4, i8, r, f4, d, dn, t, vc, ch, b, flag, day, tod, ts, tstz, u, j, jb, e"
BIG = "x" * 200_000 + "😀"
ROWS: list[tuple[Any, ...]] = [
    (1, -32768, -(2**31), -(2**63), -0.0, 0.5, 1234567890.1234, "12.30", "ünïcødé 😀 𝄞", "abcde", "ab",
     b"\x00\xff" * 1000, 1, "2024-02-29", "23:59:59.123456", "2024-03-01 09:30:00.000001",
     "2024-03-01 09:30:00+00:00", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", '{"a": [1, 2]}', '{"a": [1, 2]}', "red"),
    (2, 32767, 2**31 - 1, 2**63 - 1, math.inf, -1.5, -0.0001, "-99999999999999999999.000000001", BIG, "", "xyz",
     b"", 0, "0001-01-01", "00:00:00", "1999-12-31 23:59:59", "1970-01-01 00:00:00+00:00",
     "00000000-0000-0000-0000-000000000000", "[]", "{}", "green"),
    (3, *([None] * 20)),
    (4, 0, 0, 0, -math.inf, 0.0, 0, "0", "", "a", "a", b"x", 1, "2024-01-01", "12:00:00", "2024-01-01 00:00:00",
     "2024-06-30 23:59:59.500000+00:00", "ffffffff-ffff-ffff-ffff-ffffffffffff", "null", '"s"', "red"),
]  # fmt: skip


def _sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_TYPES)
    conn.close()
    with peersync.connect(path) as db:
        db.provision("s", ["v"])
    return path


def _pg(make_pg: Callable[..., str]) -> str:
    url = make_pg(PG_TYPES)
    with peersync.connect(url) as db:
        db.provision("s", ["v"])
    return url


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            assert type(x) is type(y) and (x == y or (x != x and y != y)), (ra[0], x, y)
            if isinstance(x, float):
                assert math.copysign(1, x) == math.copysign(1, y)


def test_values_round_trip_sqlite_postgres_sqlite(make_pg: Callable[..., str], tmp_path: Path) -> None:
    a, c = _sqlite(tmp_path / "a.db"), _sqlite(tmp_path / "c.db")
    url = _pg(make_pg)
    conn = sqlite3.connect(a)
    with conn:
        conn.executemany(f"INSERT INTO v ({COLS}) VALUES ({', '.join('?' * 21)})", ROWS)
    conn.close()
    r = sync(a, url, direction="push")
    assert (r.applied, r.errors) == (len(ROWS), 0)
    sync(url, c, direction="push")
    _same(sqlite_rows(a, "v"), sqlite_rows(c, "v"))
    with psycopg.connect(url) as pg:
        row = pg.execute("SELECT i8, d, dn, ch, tstz, r FROM v WHERE id = 1").fetchone()
    assert (
        row is not None and row[0] == -(2**63) and str(row[1]) == "1234567890.1234" and str(row[2]) == "12.3"
    )  # SQLite made it a REAL
    assert row[3] == "ab "  # padded by PostgreSQL itself, read back without the padding


def test_values_round_trip_postgres_to_postgres(make_pg: Callable[..., str]) -> None:
    a, b = _pg(make_pg), _pg(make_pg)
    with psycopg.connect(a) as pg:
        pg.execute("SET TimeZone = 'Asia/Kolkata'")  # a writer in another zone: the instant is what travels
        pg.execute(
            f"INSERT INTO v ({COLS}) VALUES (1, 1, 2, 3, 'NaN', 'Infinity', 12.3400, 'NaN', 'x', 'y', 'z', '\\x00',"
            " true, '2024-02-29', '10:11:12.5', '2024-01-01 10:00:00.25', '2024-01-01 10:00:00.25+05:30',"
            " 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"k\":  1}', '{\"k\":  1}', 'green')"
        )
        pg.execute("INSERT INTO v (id, r, f4, dn) VALUES (2, '-0', '-Infinity', '-Infinity')")
    sync(a, b, direction="push")
    q = f"SELECT {COLS}, d::text, dn::text, tstz::text, j::text FROM v ORDER BY id"
    with psycopg.connect(a) as pa, psycopg.connect(b) as pb:
        ra, rb = pa.execute(q).fetchall(), pb.execute(q).fetchall()
    assert [tuple(str(x) for x in r) for r in ra] == [tuple(str(x) for x in r) for r in rb]
    with psycopg.connect(b) as pb:
        assert pb.execute("SELECT r::text, f4::text, dn::text FROM v WHERE id = 2").fetchone() == (
            "-0",
            "-Infinity",
            "-Infinity",
        )
    assert rb[0][-1] == '{"k":  1}' and rb[0][-2] == "2024-01-01 04:30:00.25+00" and rb[0][-4] == "12.3400"


def test_pg_values_reach_sqlite_in_canonical_form(make_pg: Callable[..., str], tmp_path: Path) -> None:
    url = _pg(make_pg)
    c = _sqlite(tmp_path / "c.db")
    with psycopg.connect(url) as pg:
        pg.execute(
            f"INSERT INTO v ({COLS}) VALUES (1, 1, 2, 3, 1.5, 0.1, 12.3400, 5, 'x', 'y', 'z', '\\xdead', true,"
            " '2024-02-29', '10:11:12.5', '2024-01-01 10:00:00', '2024-01-01 10:00:00.25-02:00',"
            " 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '[1]', '{\"b\": 1, \"a\": 2}', 'green')"
        )
    sync(url, c, direction="push")
    (row,) = sqlite_rows(c, "v")
    assert row[5] == 0.10000000149011612  # float4 widened exactly
    assert row[11:] == (
        b"\xde\xad", 1, "2024-02-29", "10:11:12.500000", "2024-01-01 10:00:00", "2024-01-01 12:00:00.250000+00:00",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "[1]", '{"a": 2, "b": 1}', "green",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("vc", "toolong", "too long"),
        ("i2", 40000, "out of range"),
        ("i4", 2**40, "out of range"),
        ("d", "1.23456", "decimal places"),
        ("d", "12345678901.1", "out of range"),
        ("f4", 0.1, "precision"),
        ("t", "a\x00b", "NUL"),
        ("ch", "ab ", "trailing spaces"),
        ("e", "blue", "enum"),
        ("day", "2024-02-30", "date"),
        ("u", "not-a-uuid", "UUID"),
    ],
)
def test_value_that_does_not_fit_is_an_error_conflict(
    make_pg: Callable[..., str], tmp_path: Path, column: str, value: Any, reason: str
) -> None:
    a = _sqlite(tmp_path / "a.db")
    url = _pg(make_pg)
    conn = sqlite3.connect(a)
    with conn:
        conn.execute("INSERT INTO v (id, t) VALUES (1, 'before')")
        conn.execute(f"INSERT INTO v (id, {column}) VALUES (2, ?)", (value,))
        conn.execute("INSERT INTO v (id, t) VALUES (3, 'after')")
    with peersync.connect(a) as src, peersync.connect(url) as dst:
        res = peersync.sync(src, dst, "s", direction="push")
        assert (res.applied, res.errors) == (2, 1)
        (err,) = dst.conflicts("s")
        assert err.type is ConflictType.ERROR and err.key == (2,)
        assert reason.lower() in err.detail.lower()
        if reason not in ("enum", "date"):  # PostgreSQL's own message names the type, not the column
            assert column in err.detail
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT id FROM v ORDER BY id").fetchall() == [(1,), (3,)]
