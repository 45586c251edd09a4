"""What a clone carries of a MariaDB scope's tables beyond their shape,
from ``information_schema``, read in the consistent snapshot before its rows
stream (:meth:`MySQLPeer.snapshot_of`); the rules of what is carried are
:mod:`peersync._adapters.sql.constraints`'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from peersync._adapters.sql import constraints as C
from peersync._engine.model import TableSchema

from .cascades import foreign_keys
from .conn import Conn
from .schema import Tracked

# Plain B-tree and hash indexes other than the key; FULLTEXT and SPATIAL
# indexes and prefix indexes (sub_part, ``name(10)``) would mean something
# else in SQLite, so an index with any such part is left out.
_INDEXES = (
    "SELECT table_name, index_name, non_unique, column_name, sub_part, index_type FROM information_schema.statistics"
    " WHERE table_schema = DATABASE() AND table_name IN %s AND index_name <> 'PRIMARY'"
    " ORDER BY table_name, index_name, seq_in_index"
)
_DEFAULTS = (
    "SELECT table_name, column_name, column_default, extra FROM information_schema.columns"
    " WHERE table_schema = DATABASE() AND table_name IN %s"
)
# How MariaDB (10.2.7 and later) shows a constant default: 5, -1.50, 'it''s',
# 'a\\b', NULL; a function (current_timestamp(), uuid()) or an expression
# matches none. An escape other than these makes the literal not carried.
_STRING = re.compile(r"'((?:[^'\\]|''|\\.)*)'")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "0": "\0", "Z": "\x1a", "b": "\b"}
# InnoDB accepts SET DEFAULT but restricts instead (see cascades.py).
_ACTION = {"SET DEFAULT": "RESTRICT"}


def constraints_of(
    conn: Conn, tables: Sequence[Tracked], glob: Sequence[TableSchema]
) -> tuple[C.TableConstraints, ...]:
    """The constraints a clone carries for each of ``tables`` (a scope's,
    ``glob`` their shapes in global names), read in the caller's open
    transaction before any row is streamed."""
    at = {t.name: i for i, t in enumerate(tables)}
    names = tuple(at)
    found = [C.LocalConstraints() for _ in tables]
    parts: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in conn.execute(_INDEXES, (names,)).fetchall():
        parts.setdefault((row[0], row[1]), []).append(row)
    for (table, index), rows in parts.items():
        if all(r[4] is None and r[3] is not None and r[5] in ("BTREE", "HASH") for r in rows):
            found[at[table]].indexes.append(C.IndexSpec(index, tuple(r[3] for r in rows), not rows[0][2]))
    specs = [{c.name: c for c in t.schema.specs} for t in tables]
    for table, col, expr, extra in conn.execute(_DEFAULTS, (names,)).fetchall():
        if expr is None and "auto_increment" not in (extra or "").lower():
            continue
        carried, value = _literal(expr, specs[at[table]][col].type) if expr is not None else (False, None)
        if carried:
            found[at[table]].defaults[col] = value
        else:
            found[at[table]].uncarried.add(col)
    for fk in foreign_keys(conn):
        if fk.child in at and fk.parent in at:
            dele, upd = (_ACTION.get(a, a) for a in (fk.on_delete, fk.on_update))
            found[at[fk.child]].foreign_keys.append(C.ForeignKeySpec(fk.cols, str(at[fk.parent]), fk.refs, dele, upd))
    return C.in_global_names([t.schema for t in tables], glob, found)


def _literal(expr: str, vtype: Any) -> tuple[bool, Any]:
    """``expr`` (``information_schema.columns.column_default``) as a literal
    default of a column of canonical type ``vtype``; ``(False, None)`` when
    it is not one."""
    if expr == "NULL":
        return C.default_value("null", "", vtype)
    if _NUMBER.fullmatch(expr):
        return C.default_value("number", expr, vtype)
    m = _STRING.fullmatch(expr)
    if m is None:
        return False, None
    out, body, i = [], m.group(1), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if body[i + 1] not in _ESCAPES:
                return False, None
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        elif ch == "'":  # the regex allows a quote only doubled
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return C.default_value("string", "".join(out), vtype)
