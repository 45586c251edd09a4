"""Reading SQLite's catalog: a user table's shape (columns, key, types in the
engine's vocabulary, foreign keys, UNIQUE indexes, collations) as a
:class:`~peersync._adapters.sqlite.schema.Tracked`, and whether a stored
fingerprint still describes it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from peersync._adapters.sql.tracked import user_table
from peersync._engine.errors import TableError
from peersync._engine.model import TableSchema
from peersync._engine.schema import digest, fingerprint
from peersync._engine.types import SQLITE_AFFINITY_TYPES, SQLITE_TYPES, Column, column, parse_declared

from .schema import PREFIX, ForeignKey, Tracked


def type_class(declared: str) -> str:
    """SQLite's affinity rules (section 3.1 of the datatype docs)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if "BLOB" in t or not t:
        return "blob"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "real"
    return "numeric"


def column_type(name: str, declared: str, *, nullable: bool) -> Column:
    """A column of a SQLite table in the engine's vocabulary: by its declared
    type's name when that says what it means (:data:`SQLITE_TYPES`: BOOLEAN,
    DATE, DATETIME, UUID, JSON, DECIMAL(p,s), ...), otherwise by its
    affinity (VARCHAR(n) is text, BIGINT integer, no type at all bytes).
    Sizes are kept as declared; SQLite itself enforces none of them."""
    tname, params = parse_declared(declared)
    vtype = SQLITE_TYPES.get(tname) or SQLITE_AFFINITY_TYPES[type_class(declared)]
    return column(name, vtype, params, nullable=nullable, declared=declared)


def affinity_fingerprint(tables: Sequence[TableSchema]) -> str:
    """The fingerprint as peersync computed it before the type vocabulary:
    over SQLite affinities (``types``) instead of canonical types."""
    return digest([t.name, [list(c) for c in zip(t.columns, t.types, strict=True)], list(t.key)] for t in tables)


def fingerprint_holds(stored: str, tables: Sequence[TableSchema]) -> bool:
    """Does a scope's stored fingerprint describe ``tables`` as they are?

    Scopes provisioned before the type vocabulary stored the affinity
    fingerprint; it is accepted as long as it matches, and the current one
    (:func:`~peersync._engine.schema.fingerprint`) is what the scope reports
    to peers. ``migrate`` and ``repair`` store the current one.
    """
    return stored == fingerprint(tables) or stored == affinity_fingerprint(tables)


def introspect(conn: sqlite3.Connection, table: str) -> Tracked:
    """Read a user table's shape; raise :class:`TableError` if it cannot be tracked."""
    row = conn.execute(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    # SQLite names ignore letter case: so does the reservation.
    name, _, without_rowid = user_table(row, table, ("table",), (PREFIX, "sqlite_"))
    info = conn.execute(
        'SELECT name, type, pk, "notnull" FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid', (name,)
    ).fetchall()
    columns = tuple(r[0] for r in info)
    key = tuple(r[0] for r in sorted((r for r in info if r[2] > 0), key=lambda r: r[2]))
    if not key:
        raise TableError(f"table {name} has no primary key; peersync needs one to identify rows")
    types = tuple(type_class(r[1]) for r in info)
    # Key columns count as NOT NULL: peersync refuses rows with a NULL key.
    specs = tuple(column_type(r[0], r[1], nullable=not (r[3] or r[2])) for r in info)
    # A rowid alias is a single INTEGER key with no separate key index
    # (``INTEGER PRIMARY KEY DESC`` is not one: SQLite gives it an index).
    pk_index = conn.execute("SELECT 1 FROM pragma_index_list(?) WHERE origin = 'pk'", (name,)).fetchone()
    rowid_key = (
        len(key) == 1
        and not without_rowid
        and pk_index is None
        and next(r[1] for r in info if r[0] == key[0]).upper() == "INTEGER"
    )
    fk: dict[int, tuple[str, list[str], list[str | None], str]] = {}
    for fid, parent, frm, to, on_delete in conn.execute(
        'SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq', (name,)
    ):
        entry = fk.setdefault(fid, (parent, [], [], on_delete.upper()))
        entry[1].append(frm)
        entry[2].append(to)
    fks = tuple(ForeignKey(p, tuple(f), tuple(t), d) for p, f, t, d in fk.values())
    deps = tuple(sorted({f.parent for f in fks}))
    kcolls: tuple[str, ...] = ()
    if pk_index is not None:
        (pk_name,) = conn.execute("SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", (name,)).fetchone()
        colls = {c: coll for c, coll in conn.execute(
            "SELECT name, coll FROM pragma_index_xinfo(?) WHERE key = 1", (pk_name,)
        )}  # fmt: skip
        kcolls = tuple(colls.get(k) or "BINARY" for k in key)
    uniques = []
    for (index,) in conn.execute(
        "SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1 AND origin != 'pk' ORDER BY name", (name,)
    ):
        cols = conn.execute(
            "SELECT cid, name, coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno", (index,)
        ).fetchall()
        if cols and all(cid >= 0 for cid, _, _ in cols):  # expression indexes cannot be probed here
            uniques.append(tuple((c, coll or "BINARY") for _, c, coll in cols))
    return Tracked(TableSchema(name, columns, key, types, specs), rowid_key, deps, fks, 0, tuple(uniques), kcolls)


def tracking_kcolls(conn: sqlite3.Connection, tracking: str, n: int) -> tuple[str, ...]:
    """The collation each of the ``n`` key columns of a tracking table was made with."""
    pk = conn.execute("SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", (tracking,)).fetchone()
    if pk is None:  # a rowid key: INTEGER, compared as such
        return ("BINARY",) * n
    colls = conn.execute("SELECT coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno", (pk[0],))
    return tuple((c or "BINARY").upper() for (c,) in colls)
