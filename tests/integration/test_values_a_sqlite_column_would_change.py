"""A SQLite destination never stores a value its column would change (issue
8, "Types"): such a row becomes an ``error`` conflict naming the column and
the reason, the rest of the batch applies, and the row comes again until it
fits. Everything the column keeps applies as before.

A SQLite source cannot hold a NaN, nor a -0.0 in a column with affinity, but
a STRICT table's ``ANY`` column (canonical type ``decimal``, like a
``DECIMAL`` column elsewhere) keeps a -0.0 and decimal text exactly; those
come here from it. The server cases are in
``tests/servers/test_type_round_trip.py``."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import ConflictType
from peersync._adapters.sqlite.catalog import introspect
from peersync._adapters.sqlite.fit import Fit

from ..helpers import peers, push, rows, write

MakeDb = Callable[..., Path]

STRICT = "CREATE TABLE v (id INTEGER PRIMARY KEY, d ANY, txt TEXT) STRICT;"
LOOSE = "CREATE TABLE v (id INTEGER PRIMARY KEY, d DECIMAL(20, 6), txt TEXT);"


def _pair(make_db: MakeDb, src: str, dst: str) -> tuple[Path, Path]:
    """Source ``a`` and destination ``b`` of scope ``s`` over ``v``, each with its table."""
    return peers(make_db, src, ["v"], "a")[0], peers(make_db, dst, ["v"], "b")[0]


@pytest.mark.parametrize(
    ("value", "reason"),
    [(-0.0, "-0.0"), ("12345678901234.123456", "precision"), ("99999999999999999999", "precision")],
)
def test_a_value_a_decimal_column_would_change_is_an_error_until_it_changes(
    make_db: MakeDb, value: Any, reason: str
) -> None:
    a, b = _pair(make_db, STRICT, LOOSE)
    write(a, "INSERT INTO v VALUES (1, 1.5, 'before'), (3, NULL, 'after')")
    write(a, ("INSERT INTO v VALUES (2, ?, 'x')", (value,)))
    r = push(a, b)
    assert (r.applied, r.errors) == (2, 1), r
    with peersync.connect(b) as d:
        (err,) = d.conflicts("s")
        assert err.type is ConflictType.ERROR and err.key == (2,)
        assert "column d" in err.detail and reason in err.detail and "DECIMAL(20, 6)" in err.detail, err.detail
        assert err.remote_row is not None and repr(err.remote_row["d"]) == repr(value)
        assert d.status("s")[0].pending == 1
    assert [r[0] for r in rows(b, "v")] == [1, 3]
    r = push(a, b)  # it comes again
    assert (r.applied, r.errors) == (0, 1), r
    write(a, "UPDATE v SET d = '12.25' WHERE id = 2")
    r = push(a, b)
    assert (r.applied, r.errors) == (1, 0), r
    assert rows(b, "v")[1] == (2, 12.25, "x")
    with peersync.connect(b) as d:
        assert d.status("s")[0].pending == 0


def test_an_update_the_column_would_change_is_an_error_and_not_a_conflict(make_db: MakeDb) -> None:
    """Row 1 changed on both sides: the incoming one cannot be stored, so no
    policy is asked and the local row stays as it is. Row 2 changed at the
    source only: it fails the same way."""
    a, b = _pair(make_db, STRICT, LOOSE)
    write(a, "INSERT INTO v VALUES (1, 1, 'x'), (2, 2, 'y')")
    assert push(a, b).applied == 2
    write(b, "UPDATE v SET txt = 'local' WHERE id = 1")
    write(a, ("UPDATE v SET d = ?", (-0.0,)))
    r = push(a, b)
    assert (r.applied, r.errors, r.conflicts) == (0, 2, 0), r
    assert rows(b, "v") == [(1, 1, "local"), (2, 2, "y")]


@pytest.mark.parametrize("dst", [STRICT, LOOSE])
def test_values_the_column_keeps_apply_exactly(make_db: MakeDb, dst: str) -> None:
    """A STRICT ``ANY`` column keeps every value that can travel; a
    ``DECIMAL`` column keeps the number of what it converts."""
    values: list[Any] = [-0.0, "12345678901234.123456", "NaN", "abc", "12.30", "1234567890.123456", math.inf, 2.5, 7]
    a, b = _pair(make_db, STRICT, dst)
    write(a, *(("INSERT INTO v VALUES (?, ?, NULL)", (i, v)) for i, v in enumerate(values, start=1)))
    r = push(a, b)
    want = [v for v in values if dst == STRICT or v not in (-0.0, "12345678901234.123456")]
    assert (r.applied, r.errors) == (len(want), len(values) - len(want)), r
    conn = sqlite3.connect(":memory:")
    conn.execute(dst)
    conn.executemany("INSERT INTO v VALUES (?, ?, NULL)", list(enumerate(values, start=1)))
    held = {i: d for i, d, _ in conn.execute("SELECT * FROM v").fetchall()}
    got = {i: d for i, d, _ in rows(b, "v")}
    assert len(got) == len(want)
    for i, d in got.items():  # what SQLite makes of each, sign of zero included
        assert type(d) is type(held[i]) and repr(d) == repr(held[i]), (values[i - 1], d, held[i])


def _stored(affinity: str, values: list[Any]) -> list[Any]:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE p (i INTEGER PRIMARY KEY, v {affinity})")
    conn.executemany("INSERT INTO p VALUES (?, ?)", list(enumerate(values)))
    return [v for (v,) in conn.execute("SELECT v FROM p ORDER BY i")]


def _changed(sent: Any, stored: Any) -> bool:
    """The contract: SQLite stores another number (or none), or a zero of
    another sign. A REAL reads as its shortest repr; a decimal of at most 15
    significant digits needs only agree to 15 (SQLite's conversion keeps no more)."""
    if type(stored) is str:
        return stored != sent
    if stored is None:
        return sent is not None
    if type(sent) is str:
        want = Decimal(sent)
        if Decimal(repr(stored)) == want:
            return False
        return len(want.normalize().as_tuple().digits) > 15 or Decimal(f"{stored:.15g}") != want
    if type(sent) not in (int, float):
        return stored != sent
    return stored != sent or math.copysign(1, stored) != math.copysign(1, sent)


def _check(declared: str, values: list[Any]) -> tuple[int, list[tuple[Any, Any]]]:
    """How many ``values`` SQLite changes, and those Fit judges otherwise
    (with what SQLite stores)."""
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE v (id INTEGER PRIMARY KEY, x {declared})")
    found = Fit(conn, introspect(conn, "v")).unfit([[i, v] for i, v in enumerate(values)], 0)
    assert all(found[j].startswith("column x: ") for j in found)
    stored = _stored(declared, values)
    want = {j for j, (v, w) in enumerate(zip(values, stored, strict=True), start=1) if _changed(v, w)}
    return len(want), [(values[j - 1], stored[j - 1]) for j in set(found) ^ want]


@pytest.mark.parametrize("declared", ["REAL", "DECIMAL(20, 6)", "NUMERIC"])
def test_exactly_the_values_sqlite_changes_are_found(declared: str) -> None:
    """Against SQLite itself, over random decimals of 1 to 21 digits, floats,
    integers around 2**53 and odd texts: nothing is missed, nothing is
    refused that SQLite keeps. Columns of short texts only, and of floats
    only, take shortcuts of their own. The seed is printed on failure."""
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    values: list[Any] = [math.nan, -0.0, 0.0, math.inf, -math.inf, 1e308, 5e-324, 2**53, 2**53 + 1, -(2**63), None]
    short = ["NaN", "Infinity", "-0", "-0.000000", " 12", "1e400", "1e-400", "0x10", "1.", ".5", "abc", "12.5"]
    values += [*short, b"\x01", "748388.385037", " 748388.385037", "100000000000000000000", "12345678901234567"]
    values += ["9223372036854775808", "1" + "0" * 400, "-0." + "0" * 400 + "1", "3" + "0" * 30]
    for _ in range(3000):
        digits = str(rnd.randrange(10 ** rnd.randint(1, 21)))
        point = rnd.randint(0, len(digits))
        fraction = "." + digits[point:] if digits[point:] else ""
        values.append(rnd.choice(["", "-"]) + (digits[:point] or "0") + fraction)
    floats = [rnd.uniform(-1e6, 1e6) for _ in range(200)]
    values += floats + [rnd.randrange(-(2**60), 2**60) for _ in range(200)]
    for case in (values, short, [*floats, -0.0, None], [*floats, math.nan], [*floats, 0.0, math.inf]):
        changed, wrong = _check(declared, case)
        assert not wrong, (seed, changed, wrong[:10])
    assert _check(declared, values)[0] > 100


def test_a_decimal_text_is_stored_as_the_double_it_spells(make_db: MakeDb) -> None:
    """SQLite's own text-to-REAL conversion is not correctly rounded: it reads
    '748388.385037' as 748388.3850370001, which a server with scale 6 would
    later refuse from here. The apply binds the double the text spells."""
    a, b = _pair(make_db, STRICT, LOOSE)
    texts = ["748388.385037", "12.30", "-0.000", "100", "0.1", "-5.5"]
    write(a, *(("INSERT INTO v VALUES (?, ?, 'x')", (i, t)) for i, t in enumerate(texts)))
    r = push(a, b)
    assert (r.applied, r.errors) == (len(texts), 0), r
    stored = [row[1] for row in rows(b, "v")]
    assert [repr(v) for v in stored] == ["748388.385037", "12.3", "0", "100", "0.1", "-5.5"]
    assert [type(v) for v in stored] == [float, float, int, int, float, float]
