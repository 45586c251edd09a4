"""What a clone carries of a PostgreSQL scope's tables beyond their shape
(btree and hash indexes, foreign keys, literal defaults), read from
``pg_catalog`` inside the snapshot's transaction. What is carried and what
is left out: :mod:`peersync._adapters.sql.constraints`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from peersync._adapters.sql import constraints as C
from peersync._engine.model import TableSchema

from .schema import Tracked

# Columns of an index or a key, by attribute number, in their order.
_ATTS = (
    "ARRAY(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY AS k(n, o)"
    " JOIN pg_attribute AS a ON a.attrelid = {rel} AND a.attnum = k.n{where} ORDER BY k.o)"
)
# Plain-column btree and hash indexes other than the key: an expression or
# partial index (indexprs, indpred), an exclusion constraint, and GIN, GiST,
# BRIN or SP-GiST indexes (other operators) would mean something else in
# SQLite. INCLUDE columns (beyond indnkeyatts) are not part of the key.
_INDEXES = (
    "SELECT i.indrelid, c.relname, i.indisunique, "
    + _ATTS.format(keys="i.indkey", rel="i.indrelid", where=" WHERE k.o <= i.indnkeyatts")
    + " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_am AS am ON am.oid = c.relam"
    " WHERE i.indrelid = ANY(%(oids)s) AND NOT i.indisprimary AND i.indisvalid AND NOT i.indisexclusion"
    " AND i.indexprs IS NULL AND i.indpred IS NULL AND am.amname IN ('btree', 'hash') ORDER BY i.indexrelid"
)
# Foreign keys between the scope's tables (conparentid: not the copies a key
# to a partitioned table has per partition); confdelsetcols (PostgreSQL 15,
# ``SET NULL (column)``) read through row_to_json so older servers answer NULL.
_FOREIGN_KEYS = (
    "SELECT f.conrelid, f.confrelid, f.confdeltype, f.confupdtype, f.condeferred,"
    " row_to_json(f) ->> 'confdelsetcols', "
    + _ATTS.format(keys="f.conkey", rel="f.conrelid", where="")
    + ", "
    + _ATTS.format(keys="f.confkey", rel="f.confrelid", where="")
    + " FROM pg_constraint AS f WHERE f.contype = 'f' AND f.conrelid = ANY(%(oids)s)"
    " AND f.confrelid = ANY(%(oids)s) AND f.conparentid = 0 ORDER BY f.conrelid, f.conname"
)
_DEFAULTS = (
    "SELECT a.attrelid, a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a"
    " LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
    " AND (d.adbin IS NOT NULL OR a.attidentity <> '')"
)
_ACTION = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
# How pg_get_expr shows a constant: 5, -1.5, true, NULL::text, 'it''s'::character varying,
# '-3'::integer, 'y'::mood. A function call (now(), nextval(...)) or an expression matches none.
_STRING = re.compile(r"'((?:[^']|'')*)'(?:::[\w .\"$]+(?:\(\d+(?:,\s*\d+)?\))?)?")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NULL = re.compile(r"NULL(?:::[\w .\"$]+)?")


def constraints_of(conn: Any, tables: Sequence[Tracked], glob: Sequence[TableSchema]) -> tuple[C.TableConstraints, ...]:
    """The constraints a clone carries for each of ``tables`` (a scope's,
    ``glob`` their shapes in global names), read in the caller's open
    transaction: three catalog queries for the whole scope."""
    oids = [
        r[0]
        for r in conn.execute(
            "SELECT x::regclass::oid FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, o) ORDER BY o",
            ([t.qualified for t in tables],),
        ).fetchall()
    ]
    at = {oid: i for i, oid in enumerate(oids)}
    found = [C.LocalConstraints() for _ in tables]
    params = {"oids": oids}
    for rel, name, unique, cols in conn.execute(_INDEXES, params).fetchall():
        found[at[rel]].indexes.append(C.IndexSpec(name, tuple(cols), bool(unique)))
    specs = [{c.name: c for c in t.schema.specs} for t in tables]
    for rel, col, expr in conn.execute(_DEFAULTS, params).fetchall():
        carried, value = _literal(expr, specs[at[rel]][col].type) if expr is not None else (False, None)
        if carried:
            found[at[rel]].defaults[col] = value
        else:
            found[at[rel]].uncarried.add(col)
    for rel, ref, dele, upd, deferred, setcols, cols, refcols in conn.execute(_FOREIGN_KEYS, params).fetchall():
        if setcols is not None:  # SET NULL (some columns): SQLite would null them all
            continue
        fk = C.ForeignKeySpec(tuple(cols), str(at[ref]), tuple(refcols), _ACTION[dele], _ACTION[upd], bool(deferred))
        found[at[rel]].foreign_keys.append(fk)
    return C.in_global_names([t.schema for t in tables], glob, found)


def _literal(expr: str, vtype: Any) -> tuple[bool, Any]:
    """``expr`` (pg_get_expr of a default) as a literal default of a
    column of canonical type ``vtype``; ``(False, None)`` when it is not one."""
    if expr in ("true", "false"):
        return C.default_value("bool", expr, vtype)
    if _NULL.fullmatch(expr):
        return C.default_value("null", "", vtype)
    if _NUMBER.fullmatch(expr):
        return C.default_value("number", expr, vtype)
    m = _STRING.fullmatch(expr)
    if m:
        return C.default_value("string", m.group(1).replace("''", "'"), vtype)
    return False, None
