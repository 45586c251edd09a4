"""The type vocabulary: how declared types map to canonical ones, and what the
schema fingerprint compares (meaning, not spelling)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from peersync._adapters.sqlite.catalog import column_type, introspect
from peersync._engine.model import TableSchema
from peersync._engine.schema import dependency_order, fingerprint
from peersync._engine.types import (
    MARIADB_COLUMN_TYPES,
    MARIADB_TYPES,
    POSTGRES_TYPES,
    SQLITE_TYPES,
    Column,
    ValueType,
    parse_declared,
)

V = ValueType
README = Path(__file__).resolve().parents[2] / "README.md"

# (declared type, canonical type, length, precision, scale)
SQLITE_CASES: list[tuple[str, ValueType, int | None, int | None, int | None]] = [
    # by name
    ("BOOLEAN", V.BOOLEAN, None, None, None),
    ("bool", V.BOOLEAN, None, None, None),
    ("DATE", V.DATE, None, None, None),
    ("TIME", V.TIME, None, None, None),
    ("time(3) without time zone", V.TIME, None, 3, None),
    ("DATETIME", V.TIMESTAMP, None, None, None),
    ("TIMESTAMP", V.TIMESTAMP, None, None, None),
    ("TIMESTAMP(6)", V.TIMESTAMP, None, 6, None),
    ("timestamp  without time zone", V.TIMESTAMP, None, None, None),
    ("TIMESTAMPTZ", V.TIMESTAMPTZ, None, None, None),
    ("timestamp(3) with time zone", V.TIMESTAMPTZ, None, 3, None),
    ("UUID", V.UUID, None, None, None),
    ("JSON", V.JSON, None, None, None),
    ("JSONB", V.JSON, None, None, None),
    ("DECIMAL", V.DECIMAL, None, None, None),
    ("DECIMAL(10,2)", V.DECIMAL, None, 10, 2),
    ("numeric ( 12 , 4 )", V.DECIMAL, None, 12, 4),
    ("NUMERIC(7)", V.DECIMAL, None, 7, 0),
    ("BINARY(16)", V.BYTES, 16, None, None),
    ("VARBINARY(255)", V.BYTES, 255, None, None),
    ("BYTEA", V.BYTES, None, None, None),
    # by affinity
    ("INTEGER", V.INTEGER, None, None, None),
    ("INT", V.INTEGER, None, None, None),
    ("BIGINT", V.INTEGER, None, None, None),
    ("INT(11)", V.INTEGER, None, None, None),  # a display width, not a size
    ("UNSIGNED BIG INT", V.INTEGER, None, None, None),
    ("TINYINT(1)", V.INTEGER, None, None, None),
    ("TEXT", V.TEXT, None, None, None),
    ("VARCHAR(20)", V.TEXT, 20, None, None),
    ("CHARACTER(5)", V.TEXT, 5, None, None),
    ("NVARCHAR(100)", V.TEXT, 100, None, None),
    ("VARYING CHARACTER(30)", V.TEXT, 30, None, None),
    ("CLOB", V.TEXT, None, None, None),
    ("BLOB", V.BYTES, None, None, None),
    ("", V.BYTES, None, None, None),
    ("REAL", V.REAL, None, None, None),
    ("DOUBLE", V.REAL, None, None, None),
    ("DOUBLE PRECISION", V.REAL, None, None, None),
    ("FLOAT", V.REAL, None, None, None),
    ("MONEY", V.DECIMAL, None, None, None),  # unknown names have NUMERIC affinity
]


@pytest.mark.parametrize(("declared", "vtype", "length", "precision", "scale"), SQLITE_CASES)
def test_a_sqlite_declared_type_maps_by_name_then_by_affinity(
    declared: str, vtype: ValueType, length: int | None, precision: int | None, scale: int | None
) -> None:
    col = column_type("c", declared, nullable=True)
    assert col == Column("c", vtype, True, length, precision, scale, declared)


def test_every_sqlite_type_name_in_the_table_is_covered_above() -> None:
    covered = {parse_declared(d)[0] for d, *_ in SQLITE_CASES}
    assert set(SQLITE_TYPES) <= covered


@pytest.mark.parametrize(
    ("declared", "parsed"),
    [
        ("varchar(20)", ("VARCHAR", (20,))),
        ("  Decimal ( 10 ,2 ) ", ("DECIMAL", (10, 2))),
        ("timestamp(3) with time zone", ("TIMESTAMP WITH TIME ZONE", (3,))),
        ("bigint(20) unsigned", ("BIGINT UNSIGNED", (20,))),
        ("enum('a','b')", ("ENUM", ())),
        ("VARCHAR(+20)", ("VARCHAR", (20,))),
        ("", ("", ())),
    ],
)
def test_a_declared_type_splits_into_name_and_sizes(declared: str, parsed: tuple[str, tuple[int, ...]]) -> None:
    assert parse_declared(declared) == parsed


def test_introspection_records_canonical_type_nullability_and_sizes() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(8) NOT NULL, price DECIMAL(9,2), at DATETIME, u)"
    )
    s = introspect(conn, "t").schema
    conn.close()
    assert s.specs == (
        Column("id", V.INTEGER, False, declared="INTEGER"),
        Column("code", V.TEXT, False, length=8, declared="VARCHAR(8)"),
        Column("price", V.DECIMAL, True, precision=9, scale=2, declared="DECIMAL(9,2)"),
        Column("at", V.TIMESTAMP, True, declared="DATETIME"),
        Column("u", V.BYTES, True, declared=""),
    )
    assert s.types == ("integer", "text", "numeric", "numeric", "blob")  # SQLite's own storage view, unchanged


# -- the fingerprint -------------------------------------------------------------------------------------
def _fp(*ddl: str) -> str:
    """The fingerprint of the tables ``ddl`` creates in a new SQLite database."""
    conn = sqlite3.connect(":memory:")
    names = []
    for d in ddl:
        conn.execute(d)
        names.append(re.match(r"CREATE TABLE (\w+)", d).group(1))  # type: ignore[union-attr]
    out = fingerprint([introspect(conn, n).schema for n in names])
    conn.close()
    return out


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("id INTEGER PRIMARY KEY, n INT", "id INTEGER PRIMARY KEY, n BIGINT"),
        ("id INTEGER PRIMARY KEY, n INTEGER", "id INTEGER PRIMARY KEY, n SMALLINT"),
        ("id INTEGER PRIMARY KEY, s VARCHAR(20)", "id INTEGER PRIMARY KEY, s TEXT"),
        ("id INTEGER PRIMARY KEY, s CHAR(2)", "id INTEGER PRIMARY KEY, s CLOB"),
        ("id INTEGER PRIMARY KEY, x NUMERIC", "id INTEGER PRIMARY KEY, x DECIMAL(10,2)"),
        ("id INTEGER PRIMARY KEY, x REAL", "id INTEGER PRIMARY KEY, x DOUBLE PRECISION"),
        ("id INTEGER PRIMARY KEY, t DATETIME", "id INTEGER PRIMARY KEY, t TIMESTAMP(3)"),
        ("id INTEGER PRIMARY KEY, b BLOB", "id INTEGER PRIMARY KEY, b"),
        ("id INTEGER PRIMARY KEY, s TEXT NOT NULL", "id INTEGER PRIMARY KEY, s TEXT"),
        ("id INTEGER PRIMARY KEY, s TEXT DEFAULT 'x' UNIQUE", "id INTEGER PRIMARY KEY, s TEXT"),
        ("id INT PRIMARY KEY, s TEXT", "id INTEGER PRIMARY KEY, s TEXT"),
    ],
)
def test_tables_that_differ_only_in_spelling_or_size_have_one_fingerprint(one: str, other: str) -> None:
    assert _fp(f"CREATE TABLE t ({one})") == _fp(f"CREATE TABLE t ({other})")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("s TEXT", "s BLOB"),
        ("n INTEGER", "n REAL"),
        ("n INTEGER", "n DECIMAL"),
        ("n REAL", "n NUMERIC"),
        ("d DATE", "d TEXT"),  # a server peer needs to know it holds dates
        ("d DATE", "d DATETIME"),
        ("t TIMESTAMP", "t TIMESTAMPTZ"),
        ("t TIME", "t TEXT"),
        ("f BOOLEAN", "f INTEGER"),
        ("u UUID", "u TEXT"),
        ("j JSON", "j TEXT"),
        ("a TEXT, b TEXT", "b TEXT, a TEXT"),  # column order is part of the batch format
        ("a TEXT", "a2 TEXT"),
    ],
)
def test_tables_whose_columns_mean_different_things_have_different_fingerprints(one: str, other: str) -> None:
    assert _fp(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {one})") != _fp(
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, {other})"
    )


def test_the_key_and_the_table_name_are_part_of_the_fingerprint() -> None:
    base = _fp("CREATE TABLE t (a INTEGER, b INTEGER, PRIMARY KEY (a, b))")
    assert base != _fp("CREATE TABLE t (a INTEGER, b INTEGER, PRIMARY KEY (b, a))")
    assert base != _fp("CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER)")
    assert base != _fp("CREATE TABLE u (a INTEGER, b INTEGER, PRIMARY KEY (a, b))")


def test_table_order_does_not_change_the_fingerprint() -> None:
    x, y = "CREATE TABLE x (id INTEGER PRIMARY KEY)", "CREATE TABLE y (id TEXT PRIMARY KEY)"
    assert _fp(x, y) == _fp(y, x)


def test_integer_real_and_text_tables_keep_the_fingerprint_of_the_affinity_rule() -> None:
    """Scopes over such tables, provisioned before the type vocabulary, keep their stored fingerprint."""
    shape = [["item", [["id", "integer"], ["name", "text"], ["price", "real"]], ["id"]]]
    old = hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()[:16]
    assert _fp("CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(9), price FLOAT)") == old


def test_a_table_without_column_descriptions_cannot_be_fingerprinted() -> None:
    with pytest.raises(ValueError, match="no canonical type"):
        fingerprint([TableSchema("t", ("id",), ("id",), ("integer",))])


def test_column_descriptions_must_name_the_columns_in_order() -> None:
    with pytest.raises(ValueError, match="in order"):
        TableSchema("t", ("a", "b"), ("a",), ("text", "text"), (Column("b", V.TEXT), Column("a", V.TEXT)))


# -- dependency order ------------------------------------------------------------------------------------
class _T:
    def __init__(self, name: str, *deps: str) -> None:
        self.name, self.depends_on = name, deps

    def __repr__(self) -> str:
        return self.name


def test_parents_come_before_children_whatever_the_letter_case() -> None:
    line, order, cust = _T("line", "ORDER", "product"), _T("Order", "customer"), _T("Customer")
    product = _T("product")
    got = dependency_order([line, order, cust, product])
    assert [t.name for t in got] == ["Customer", "Order", "product", "line"]


def test_a_cycle_and_outside_parents_keep_input_order() -> None:
    a, b, c = _T("a", "b"), _T("b", "a"), _T("c", "elsewhere", "c")
    assert [t.name for t in dependency_order([a, b, c])] == ["b", "a", "c"]


# -- the other databases' tables, and the README --------------------------------------------------------
def _reachable(*tables: Mapping[str, ValueType]) -> set[ValueType]:
    return {v for t in tables for v in t.values()}


@pytest.mark.parametrize(
    "tables",
    [
        (SQLITE_TYPES, {"": V.INTEGER, ".": V.REAL, "..": V.TEXT}),  # the rest by affinity
        (POSTGRES_TYPES,),
        (MARIADB_TYPES, MARIADB_COLUMN_TYPES),
    ],
    ids=["sqlite", "postgres", "mariadb"],
)
def test_every_canonical_type_has_a_column_type_in_every_database(tables: tuple[Mapping[str, ValueType], ...]) -> None:
    assert _reachable(*tables) == set(ValueType)


def _readme_types() -> dict[str, list[set[str]]]:
    """The README's Types table: canonical type -> [SQLite, PostgreSQL, MariaDB] type names."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Types\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0].endswith("`"):
            out[cells[0].strip("`")] = [set(re.findall(r"`([^`]+)`", c)) for c in cells[1:4]]
    return out


def test_the_readme_types_table_lists_every_canonical_type_and_every_mapped_name() -> None:
    table = _readme_types()
    assert set(table) == {v.value for v in ValueType}
    for vtype in ValueType:
        sqlite_names, pg_names, maria_names = table[vtype.value]
        assert {n for n, v in SQLITE_TYPES.items() if v is vtype} <= sqlite_names, vtype
        assert {column_type("c", n, nullable=True).type for n in sqlite_names} == {vtype}, vtype
        assert {n for n, v in POSTGRES_TYPES.items() if v is vtype} == pg_names, vtype
        want = {n for n, v in (*MARIADB_TYPES.items(), *MARIADB_COLUMN_TYPES.items()) if v is vtype}
        assert want == maria_names, vtype
