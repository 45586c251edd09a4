"""Values arrive exactly as they were written: same storage class (an integer
is not a real of equal value), same bytes."""

from __future__ import annotations

import json
import sqlite3
import time
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


# -- TEXT that is not valid UTF-8 --------------------------------------------------------------------
RAW = "CAST(X'FF41' AS TEXT)"  # TEXT whose bytes are not UTF-8
RAW2 = "CAST(X'C3' AS TEXT)"  # a truncated two-byte sequence
RAW_KEY = "CAST(X'6B80' AS TEXT)"
TEXT_SCHEMA = "CREATE TABLE d (id TEXT PRIMARY KEY, body TEXT, u, code TEXT UNIQUE);"


@pytest.fixture
def text_pair(make_db: MakeDb) -> tuple[Path, Path]:
    a, b = make_db("a", TEXT_SCHEMA), make_db("b", TEXT_SCHEMA)
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["d"])
    return a, b


def test_text_that_is_not_utf8_syncs_byte_exact_both_ways(text_pair: tuple[Path, Path]) -> None:
    a, b = text_pair
    write(
        a,
        f"INSERT INTO d VALUES ('a1', {RAW}, {RAW2}, NULL)",
        f"INSERT INTO d VALUES ({RAW_KEY}, 'raw key', X'FF41', NULL)",
        "INSERT INTO d VALUES ('a2', 'plain', 1, NULL)",
    )
    write(b, f"INSERT INTO d VALUES ('b1', {RAW2}, {RAW}, {RAW})", "INSERT INTO d VALUES ('b2', 'plain', 2.5, NULL)")
    r = sync(a, b)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (3, 2, 0, 0)
    assert typed(a, "d") == typed(b, "d")
    got = {row[1]: row for row in typed(b, "d")}
    assert got["6B80"][:8] == ("text", "6B80", "text", "726177206B6579", "blob", "FF41", "null", None)
    assert got[b"a1".hex().upper()][2:6] == ("text", "FF41", "text", "C3")
    # Changes and deletes of such rows (a key that is not UTF-8 included) flow too.
    write(b, f"UPDATE d SET body = {RAW2} WHERE id = 'a2'", f"DELETE FROM d WHERE id = {RAW_KEY}")
    write(a, f"UPDATE d SET u = {RAW} WHERE id = 'b2'")
    r = sync(a, b)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (1, 2, 0, 0)
    assert typed(a, "d") == typed(b, "d")
    assert "6B80" not in {row[1] for row in typed(a, "d")}
    assert sync(a, b).sent_a_to_b == sync(a, b).sent_b_to_a == 0


def _conflict_on_raw_text(a: Path, b: Path, key: str = "'k'") -> None:
    """Both hold row ``key``; B then A set its body, A's value is not UTF-8 (A is later)."""
    write(a, f"INSERT INTO d VALUES ({key}, 'same', NULL, NULL)")
    sync(a, b)
    write(b, f"UPDATE d SET body = {RAW2}")
    time.sleep(0.01)
    write(a, f"UPDATE d SET body = {RAW}")


def _body(path: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(path)
    out = conn.execute("SELECT typeof(body), hex(body) FROM d").fetchone()
    conn.close()
    assert out is not None
    return tuple(out)


@pytest.mark.parametrize(
    ("policy", "winner"),
    [
        (peersync.Policy.LAST_WRITER_WINS, "FF41"),
        (peersync.Policy.SOURCE_WINS, "FF41"),
        (peersync.Policy.DESTINATION_WINS, "C3"),
    ],
)
@pytest.mark.parametrize("key", ["'k'", RAW_KEY])
def test_a_conflict_over_text_that_is_not_utf8_resolves_and_is_logged(
    text_pair: tuple[Path, Path], policy: peersync.Policy, winner: str, key: str
) -> None:
    a, b = text_pair
    _conflict_on_raw_text(a, b, key)
    r = sync(a, b, direction="push", policy=policy)
    assert (r.conflicts, r.errors) == (1, 0)
    assert _body(b) == ("text", winner)
    with peersync.connect(b) as db:
        (c,) = db.conflicts("s")
    assert c.type is peersync.ConflictType.UPDATE_UPDATE
    assert c.local_row is not None and c.remote_row is not None
    assert c.local_row["body"] == peersync.RawText(b"\xc3")
    assert c.remote_row["body"] == peersync.RawText(b"\xffA")
    assert c.key == ((peersync.RawText(b"k\x80"),) if key == RAW_KEY else ("k",))
    # Every replica ends with the same bytes.
    sync(a, b)
    assert typed(a, "d") == typed(b, "d")


def test_a_merge_callback_sees_and_writes_text_that_is_not_utf8(text_pair: tuple[Path, Path]) -> None:
    a, b = text_pair
    _conflict_on_raw_text(a, b, RAW_KEY)
    seen: list[peersync.Conflict] = []

    def merge(c: peersync.Conflict) -> peersync.Resolution:
        seen.append(c)
        assert c.local_row is not None and c.remote_row is not None
        both = c.local_row["body"].data + c.remote_row["body"].data
        return peersync.Resolution(peersync.Outcome.MERGE, row={"body": peersync.RawText(both), "u": "merged"})

    r = sync(a, b, direction="push", policy=merge)
    assert (r.conflicts, r.errors) == (1, 0) and len(seen) == 1
    assert _body(b) == ("text", "C3FF41")
    sync(a, b)
    assert typed(a, "d") == typed(b, "d")


def test_a_row_with_text_that_is_not_utf8_that_fails_is_one_error_naming_it(text_pair: tuple[Path, Path]) -> None:
    """A UNIQUE collision: that row alone is an error conflict, with its values; the rest flows."""
    a, b = text_pair
    write(a, f"INSERT INTO d VALUES ({RAW_KEY}, {RAW}, NULL, 'c1')", "INSERT INTO d VALUES ('ok', 'fine', 1, NULL)")
    write(b, "INSERT INTO d VALUES ('other', 'x', NULL, 'c1')")
    r = sync(a, b, direction="push")
    assert (r.applied, r.errors) == (1, 1)
    with peersync.connect(b) as db:
        (c,) = db.conflicts("s")
    assert c.type is peersync.ConflictType.ERROR and c.table == "d"
    assert c.key == (peersync.RawText(b"k\x80"),)
    assert c.remote_row is not None and c.remote_row["body"] == peersync.RawText(b"\xffA")
    assert "UNIQUE" in c.detail
    assert ("text", "6F6B") in {row[:2] for row in typed(b, "d")}  # 'ok' arrived


def test_the_cli_shows_conflicts_over_text_that_is_not_utf8(text_pair: tuple[Path, Path]) -> None:
    from click.testing import CliRunner

    from peersync._cli.main import cli

    a, b = text_pair
    _conflict_on_raw_text(a, b, RAW_KEY)
    sync(a, b, direction="push")
    res = CliRunner().invoke(cli, ["conflicts", str(b)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "update/update" in res.output, res.output
    res = CliRunner().invoke(cli, ["conflicts", str(b), "--json"])
    assert res.exit_code == 0, res.output
    (c,) = json.loads(res.output)
    assert c["type"] == "update/update" and "\\xffA" in c["remote_row"]["body"]


# -- a column of every canonical type ----------------------------------------------------------------
EVERY_TYPE_SCHEMA = """CREATE TABLE e (id INTEGER PRIMARY KEY, i BIGINT, r DOUBLE, d DECIMAL(30,4), t VARCHAR(5),
    b BLOB, f BOOLEAN, day DATE, at TIME, ts DATETIME, tz TIMESTAMPTZ, u UUID, j JSON);"""
EVERY_TYPE_ROWS = (
    # each value in its canonical form (see the README's Types table)
    "INSERT INTO e VALUES (1, 9223372036854775807, 0.1, '12.30', 'longer than five', X'00FF', 1, '2024-02-29',"
    " '23:59:59.999999', '2024-02-29 23:59:59.123456', '2024-03-01 09:30:00+00:00',"
    ' \'0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\', \'{"a": [1, 2.5, null],  "b": "\u00e9"}\')',
    # values a SQLite user may keep in other forms: they travel as stored
    "INSERT INTO e VALUES (2, -9223372036854775808, 9e999, 'NaN', X'41', 'text', TRUE,"
    " 2460369.5, 0, CURRENT_TIMESTAMP, 1709285400, X'0A1B2C3D4E5F4A6B8C7D9E0F1A2B3C4D', X'7B7D')",
    "INSERT INTO e VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
)


def test_a_value_of_every_canonical_type_arrives_exactly(make_db: MakeDb) -> None:
    a, b = make_db("a", EVERY_TYPE_SCHEMA), make_db("b", EVERY_TYPE_SCHEMA)
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["e"])
    write(a, *EVERY_TYPE_ROWS)
    assert sync(a, b).sent_a_to_b == 3
    assert typed(a, "e") == typed(b, "e")
    got = {row[1]: row[2:] for row in typed(b, "e")}
    assert got[1][4:6] == ("real", 12.3)  # SQLite's NUMERIC affinity stored '12.30' so, at both ends
    assert got[2][4:6] == ("text", b"NaN".hex().upper())  # not a number to SQLite: text
    assert got[1][12:14] == ("text", b"2024-02-29".hex().upper())
    assert got[2][12:14] == ("real", 2460369.5)
    assert got[2][20:22] == ("blob", "0A1B2C3D4E5F4A6B8C7D9E0F1A2B3C4D")
    assert all(kind == "null" for kind in got[3][::2])
    # Changes back, one column of each row, arrive as exactly.
    write(b, "UPDATE e SET ts = '2000-01-01 00:00:00', f = 0 WHERE id = 1", "UPDATE e SET j = '[]' WHERE id = 3")
    assert sync(a, b).sent_b_to_a == 2
    assert typed(a, "e") == typed(b, "e")
