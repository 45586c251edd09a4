"""One table of values travels SQLite -> PostgreSQL -> MariaDB -> SQLite and
directly PostgreSQL -> MariaDB and MariaDB -> PostgreSQL, and arrives exactly
(issue 8, "Types"; README, "Types"): compared value by value, type and sign
of zero included. A value the destination column cannot hold (too long, out
of range, a precision loss, NaN, infinities or -0.0 where the column has
none) becomes an ``error`` conflict naming the column and the reason, never
a changed value, and the rest of the batch applies, on each destination kind.

Each value is written in its canonical form (``_engine/types.py``), the
form every peer sends, so what SQLite holds at the end must be what it
held at the start, bytes and storage classes alike."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import ConflictType

from .conftest import Rows, run

COLS = [
    "id", "small", "big", "dbl", "dec", "txt", "vc", "bin", "flag", "day", "tod", "ts", "tstz", "uid", "doc", "color",
    "single",
]  # fmt: skip
PG = [
    "CREATE TYPE hue AS ENUM ('red', 'green')",
    "CREATE TABLE v (id bigint PRIMARY KEY, small smallint, big bigint, dbl double precision,"
    " dec numeric(20, 6), txt text, vc varchar(20), bin bytea, flag boolean, day date, tod time, ts timestamp,"
    " tstz timestamptz, uid uuid, doc json, color hue, single real)",
]
MYSQL = [
    "CREATE TABLE v (id BIGINT PRIMARY KEY, small SMALLINT, big BIGINT, dbl DOUBLE, `dec` DECIMAL(20, 6),"
    " txt LONGTEXT, vc VARCHAR(20), bin LONGBLOB, flag BOOLEAN, day DATE, tod TIME(6), ts DATETIME(6),"
    " tstz TIMESTAMP(6) NULL, uid UUID, doc JSON, color ENUM('red', 'green'), single FLOAT)"
]
LITE = [
    "CREATE TABLE v (id INTEGER PRIMARY KEY, small SMALLINT, big BIGINT, dbl REAL, dec DECIMAL(20, 6),"
    " txt TEXT, vc VARCHAR(20), bin BLOB, flag BOOLEAN, day DATE, tod TIME, ts TIMESTAMP, tstz TIMESTAMPTZ,"
    " uid UUID, doc JSON, color TEXT, single FLOAT)"
]
BIG_TEXT = "ab\u00e9\u4e2d\U0001f600" * 60_000  # 300,000 characters, 4-byte ones included
BIG_BYTES = bytes(range(256)) * 4_000  # 1 MB, every byte value
ROWS: list[tuple[Any, ...]] = [
    (1, -32768, -(2**63), 1.7976931348623157e308, 12.5, "\u00fcn\u00efc\u00f8d\u00e9 \U0001f600 \U0001d11e",
     "abcdefghij0123456789", b"\x00\xff\x00", 1, "2024-02-29", "23:59:59.123456", "2024-03-01 09:30:00.000001",
     "2038-01-19 03:14:07.999999+00:00", "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
     '{"a": [1, 2.5], "\u00e9": "\U0001f600"}', "red", 3.4028234663852886e38),
    (2, 32767, 2**63 - 1, 5e-324, -99999999999999, BIG_TEXT, "", BIG_BYTES, 0, "1000-01-01", "00:00:00",
     "1999-12-31 23:59:59", "1970-01-01 00:00:01+00:00", "00000000-0000-0000-0000-000000000000", "[]", "green",
     1.401298464324817e-45),
    (3, *([None] * 16)),
    (4, 0, 0, -2.5e-300, -0.25, "tab\there\nnewline 'quote' \"dq\" \\ back", "\U0001f600" * 20, b"", 1,
     "9999-12-31", "12:00:00.500000", "9999-12-31 23:59:59.999999", "2024-06-30 23:59:59.500000+00:00",
     "ffffffff-ffff-ffff-ffff-ffffffffffff", "null", "red", -0.10000000149011612),
    (5, 1, 1, 0.1, 0, "", "x", b"\x00", 0, "2024-01-01", "00:00:00.000001", "2024-01-01 00:00:00",
     "2024-01-01 00:00:00+00:00", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '"just a string"', "green",
     0.12345670163631439),
]  # fmt: skip


def _lite(tmp_path: Path, name: str, rows: list[tuple[Any, ...]] = ()) -> str:  # type: ignore[assignment]
    path = str(tmp_path / f"{name}.db")
    run(path, *LITE)
    if rows:
        import sqlite3

        conn = sqlite3.connect(path)
        with conn:
            conn.executemany(f"INSERT INTO v VALUES ({', '.join('?' * len(COLS))})", rows)
        conn.close()
    with peersync.connect(path) as db:
        db.provision("s", ["v"])
    return path


def _server(make: Callable[[], str], ddl: list[str]) -> str:
    url = make()
    run(url, *ddl)
    with peersync.connect(url) as db:
        db.provision("s", ["v"])
    return url


def _push(a: str, b: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", direction="push")


def _quiet(a: str, b: str) -> None:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        r = peersync.sync(x, y, "s")
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (0, 0, 0), r


def _same(got: Rows, want: Rows) -> None:
    """Value by value: same type, same value, same sign of zero."""
    assert [r[0] for r in got] == [r[0] for r in want]
    for g, w in zip(got, want, strict=True):
        for col, x, y in zip(COLS, g, w, strict=True):
            where = f"row {w[0]}, column {col}: {str(x)[:60]!r} != {str(y)[:60]!r}"
            assert type(x) is type(y) and x == y, where
            if isinstance(x, float):
                assert math.copysign(1, x) == math.copysign(1, y), where


def _lite_rows(path: str) -> Rows:
    return run(path, "SELECT * FROM v ORDER BY id")


@pytest.fixture
def servers(make_pg: Callable[[], str], mysql_db: Callable[[], str]) -> Callable[[], tuple[str, str]]:
    return lambda: (_server(make_pg, PG), _server(mysql_db, MYSQL))


def test_values_round_trip_sqlite_postgres_mariadb_sqlite(
    servers: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    a, c = _lite(tmp_path, "a", ROWS), _lite(tmp_path, "c")
    pg, maria = servers()
    for src, dst in ((a, pg), (pg, maria), (maria, c)):
        r = _push(src, dst)
        assert (r.applied, r.errors, r.conflicts) == (len(ROWS), 0, 0), (src, dst, r)
    _same(_lite_rows(c), _lite_rows(a))
    # Nothing was rewritten on the way: no server made a version of its own.
    for x, y in ((a, pg), (pg, maria), (maria, c), (c, a)):
        _quiet(x, y)


def test_values_round_trip_postgres_to_mariadb_and_back(servers: Callable[[], tuple[str, str]], tmp_path: Path) -> None:
    """Written by each server's own client, in its own forms; compared through
    what each server sends (its canonical values), at a SQLite peer each."""
    pg, maria = servers()
    run(
        pg,
        "SET TimeZone = 'Asia/Kolkata'",
        "INSERT INTO v VALUES (10, 7, 9007199254740993, -0.5, 1234567890.123456, 'pg \U0001f600', 'vc', '\\x00ff',"
        " true, '2024-02-29', '10:11:12.25', '2024-01-01 10:00:00.25', '2024-01-01 10:00:00.25+05:30',"
        " 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"k\": [true, null]}', 'green', 0.3),"
        " (11, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    run(
        maria,
        "SET time_zone = '-07:00'",
        "INSERT INTO v VALUES (20, -7, -9007199254740993, 2.5e-310, -0.000001, 'maria \U0001f600', '\u00e9', x'ff00',"
        " FALSE, '2000-01-01', '23:00:00.5', '2000-01-01 00:00:00.000001', '2000-01-01 00:00:00.75',"
        " 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '[1, {\"a\": \"b\"}]', 'red', 0.1234567)",
    )
    from_pg, from_maria = _lite(tmp_path, "from_pg"), _lite(tmp_path, "from_maria")
    r = _push(pg, maria)
    assert (r.applied, r.errors) == (2, 0), r
    r = _push(maria, pg)
    assert (r.applied, r.errors) == (1, 0), r
    _quiet(pg, maria)
    _push(pg, from_pg)
    _push(maria, from_maria)
    _same(_lite_rows(from_pg), _lite_rows(from_maria))
    got = {row[0]: row for row in _lite_rows(from_pg)}
    assert got[10][2:5] == (9007199254740993, -0.5, "1234567890.123456") or got[10][4] == 1234567890.123456
    assert got[10][11:14] == ("2024-01-01 10:00:00.250000", "2024-01-01 04:30:00.250000+00:00",
                              "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")  # fmt: skip
    assert got[20][12] == "2000-01-01 07:00:00.750000+00:00"  # MariaDB's writer was at -07:00
    assert got[11][1:] == (None,) * 16
    assert got[10][16] == 0.30000001192092896 and got[20][16] == 0.12345670163631439  # single precision, exactly


# The destination column, the value, what the error must say.
PG_UNFIT = [
    ("vc", "x" * 21, "too long"),
    ("small", 40000, "out of range"),
    ("dec", "1.1234567", "decimal places"),
    ("dec", 1.1234567, "decimal places"),  # SQLite's DECIMAL affinity made it a REAL
    ("dec", "123456789012345.5", "out of range"),
    ("color", "blue", "enum"),
    ("day", "2024-02-30", "date"),
    ("ts", "2023-02-29 10:00:00", "date"),
    ("txt", "a\x00b", "NUL"),
    ("uid", "not-a-uuid", "UUID"),
    ("single", 0.1, "precision"),
]
MYSQL_UNFIT = [
    ("vc", "x" * 21, "too long"),
    ("small", 40000, "out of range"),
    ("dec", "1.1234567", "decimal places"),
    ("dec", 1.1234567, "decimal places"),
    ("dec", "123456789012345.5", "out of range"),
    ("color", "blue", "truncated"),
    ("day", "2024-02-30", "incorrect date"),
    ("dbl", math.inf, "inf"),
    ("dbl", -math.inf, "inf"),
    ("tstz", "1969-12-31 23:59:59+00:00", "incorrect"),
    ("txt", b"\xff\xfe", "incorrect string value"),  # SQLite holds bytes in a TEXT column
    ("single", 0.1, "precision"),
    ("single", 1e39, "out of range"),
]


def _unfit(src: str, dst: str, column: str, value: Any, reason: str) -> None:
    import sqlite3

    conn = sqlite3.connect(src)
    with conn:
        conn.execute("INSERT INTO v (id, txt) VALUES (1, 'before')")
        conn.execute(f"INSERT INTO v (id, {column}) VALUES (2, ?)", (value,))
        conn.execute("INSERT INTO v (id, txt) VALUES (3, 'after')")
    with peersync.connect(src) as s, peersync.connect(dst) as d:
        res = peersync.sync(s, d, "s", direction="push")
        assert (res.applied, res.errors) == (2, 1), res
        (err,) = d.conflicts("s")
        assert err.type is ConflictType.ERROR and err.key == (2,)
        assert reason.lower() in err.detail.lower(), err.detail
        assert column in err.detail, err.detail
        assert d.status("s")[0].pending == 1
    assert [r[0] for r in run(dst, "SELECT id FROM v ORDER BY id")] == [1, 3]


@pytest.mark.parametrize(("column", "value", "reason"), PG_UNFIT)
def test_a_value_postgresql_cannot_hold_is_an_error_conflict(
    make_pg: Callable[[], str], tmp_path: Path, column: str, value: Any, reason: str
) -> None:
    _unfit(_lite(tmp_path, "a"), _server(make_pg, PG), column, value, reason)


@pytest.mark.parametrize(("column", "value", "reason"), MYSQL_UNFIT)
def test_a_value_mariadb_cannot_hold_is_an_error_conflict(
    mysql_db: Callable[[], str], tmp_path: Path, column: str, value: Any, reason: str
) -> None:
    _unfit(_lite(tmp_path, "a"), _server(mysql_db, MYSQL), column, value, reason)


@pytest.mark.parametrize(
    ("column", "value", "reason"), [("dbl", "NaN", "nan"), ("dec", "NaN", "nan"), ("dbl", "-0", "-0.0")]
)
def test_a_postgresql_nan_or_negative_zero_is_an_error_conflict_at_mariadb(
    servers: Callable[[], tuple[str, str]], column: str, value: str, reason: str
) -> None:
    """SQLite stores a NaN as NULL and a REAL -0.0 as 0.0, so these come from PostgreSQL."""
    pg, maria = servers()
    run(pg, "INSERT INTO v (id, txt) VALUES (1, 'before'), (3, 'after')")
    run(pg, f"INSERT INTO v (id, {column}) VALUES (2, '{value}')")
    with peersync.connect(pg) as s, peersync.connect(maria) as d:
        res = peersync.sync(s, d, "s", direction="push")
        assert (res.applied, res.errors) == (2, 1), res
        (err,) = d.conflicts("s")
        assert err.key == (2,) and reason in err.detail.lower() and column in err.detail, err.detail
    assert [r[0] for r in run(maria, "SELECT id FROM v ORDER BY id")] == [1, 3]


# The SQLite column, the value the server's own client writes, what the error must say.
LITE_UNFIT = [
    ("pg", "dbl", "'NaN'", "nan"),
    ("pg", "single", "'NaN'", "nan"),
    ("pg", "dbl", "'-0'", "-0.0"),
    ("pg", "dec", "12345678901234.123456", "precision"),  # NUMERIC affinity makes it 12345678901234.123
    ("pg", "dec", "99999999999999.999999", "precision"),  # ... and this 100000000000000.0
    ("mysql", "dec", "12345678901234.123456", "precision"),
]
# A value that fits after all, and what SQLite holds of it.
LITE_FIX = {"dbl": ("2.5", 2.5), "single": ("0.5", 0.5), "dec": ("12345678901234.5", 12345678901234.5)}


@pytest.mark.parametrize(("kind", "column", "value", "reason"), LITE_UNFIT)
def test_a_value_sqlite_cannot_hold_is_an_error_conflict_until_it_changes(
    servers: Callable[[], tuple[str, str]], tmp_path: Path, kind: str, column: str, value: str, reason: str
) -> None:
    pg, maria = servers()
    src, lite = pg if kind == "pg" else maria, _lite(tmp_path, "a")
    col = f"`{column}`" if kind == "mysql" else column
    run(src, "INSERT INTO v (id, txt) VALUES (1, 'before'), (3, 'after')")
    run(src, f"INSERT INTO v (id, {col}) VALUES (2, {value})")
    with peersync.connect(src) as s, peersync.connect(lite) as d:
        res = peersync.sync(s, d, "s", direction="push")
        assert (res.applied, res.errors) == (2, 1), res
        (err,) = d.conflicts("s")
        assert err.type is ConflictType.ERROR and err.key == (2,), err
        assert reason in err.detail.lower() and f"column {column}" in err.detail, err.detail
        assert err.remote_row is not None and err.remote_row[column] is not None  # as sent, a NaN included
        assert d.status("s")[0].pending == 1
        # Knowledge does not claim it: it comes again, and fails again.
        res = peersync.sync(s, d, "s", direction="push")
        assert (res.applied, res.errors) == (0, 1), res
    assert [r[0] for r in _lite_rows(lite)] == [1, 3]
    sql, held = LITE_FIX[column]
    run(src, f"UPDATE v SET {col} = {sql} WHERE id = 2")
    with peersync.connect(src) as s, peersync.connect(lite) as d:
        res = peersync.sync(s, d, "s", direction="push")
        assert (res.applied, res.errors) == (1, 0), res
        assert d.status("s")[0].pending == 0
    row = {r[0]: r for r in _lite_rows(lite)}[2]
    assert row[COLS.index(column)] == held and type(row[COLS.index(column)]) is type(held)
    _quiet(src, lite)


# What PostgreSQL's client writes, and what SQLite holds: values its columns keep, whatever their storage class.
LITE_KEEPS = [
    ("dbl", "'Infinity'", math.inf),
    ("dbl", "'-Infinity'", -math.inf),
    ("dbl", "0", 0.0),
    ("dec", "'NaN'", "NaN"),  # NUMERIC affinity leaves text that is not a number
    ("dec", "1234567890.123456", 1234567890.123456),  # 16 digits, but the REAL reads back the same
    ("dec", "-0.000001", -1e-06),
    ("dec", "0", 0),  # '0.000000'
    ("dec", "-99999999999999", -99999999999999),
    ("dec", "12.3", 12.3),  # '12.300000'
]


def test_values_sqlite_keeps_apply_and_travel_back_unchanged(make_pg: Callable[[], str], tmp_path: Path) -> None:
    """Only what SQLite changes is refused: the rest applies, as SQLite stores
    it, and goes back to PostgreSQL as the same number."""
    pg, lite, back = _server(make_pg, PG), _lite(tmp_path, "a"), _server(make_pg, PG)
    for i, (column, value, _) in enumerate(LITE_KEEPS, start=1):
        run(pg, f"INSERT INTO v (id, {column}) VALUES ({i}, {value})")
    r = _push(pg, lite)
    assert (r.applied, r.errors) == (len(LITE_KEEPS), 0), r
    for row, (column, _, held) in zip(_lite_rows(lite), LITE_KEEPS, strict=True):
        got = row[COLS.index(column)]
        assert type(got) is type(held) and got == held, (column, got, held)
    r = _push(lite, back)
    assert (r.applied, r.errors) == (len(LITE_KEEPS), 0), r
    select = "SELECT id, dbl, dec::text FROM v ORDER BY id"
    assert run(back, select) == run(pg, select)
    _quiet(pg, lite)
