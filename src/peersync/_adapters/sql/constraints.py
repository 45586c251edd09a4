"""What a server replica's tables declare beyond their shape, as a clone
carries it into SQLite: unique and plain indexes, foreign keys inside the
scope, literal column defaults (see :class:`TableConstraints` and
``sqlite/from_server.py``).

The catalog readers (``postgres/constraints.py``, ``mysql/constraints.py``)
describe each table in its local names (:class:`LocalConstraints`);
:func:`in_global_names` turns those into the scope's global names and keeps
only what SQLite can enforce as the source does. Left out, by design:

- expression and partial indexes, and prefix indexes (MariaDB's
  ``name(10)``): SQLite would index or enforce something else;
- CHECK constraints: their expressions are the source's SQL (functions,
  casts, operators) and cannot be translated safely;
- defaults that are not a plain literal (``now()``, ``nextval(...)``,
  ``gen_random_uuid()``, ``uuid()``, identity and ``AUTO_INCREMENT``
  columns, expressions), and literals for temporal, UUID, JSON and binary
  columns (their text differs between the databases);
- foreign keys to a table outside the scope (the clone does not have it),
  foreign keys whose referenced columns are not the parent's key or a
  carried unique set (SQLite refuses every write to such a table), and
  ``SET DEFAULT`` actions on a column whose default is not carried.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from peersync._engine.model import TableSchema, Value
from peersync._engine.types import ValueType

ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")


@dataclass(frozen=True)
class IndexSpec:
    """An index over plain columns (in key order); ``unique`` for a UNIQUE
    constraint or a unique index. ``name`` is the source's name for it."""

    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class ForeignKeySpec:
    """A foreign key from ``columns`` to ``parent_columns`` of table
    ``parent``; actions are among :data:`ACTIONS`; ``deferred`` when the
    source checks it at commit (PostgreSQL's ``INITIALLY DEFERRED``)."""

    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"
    deferred: bool = False


@dataclass(frozen=True)
class TableConstraints:
    """What a clone's table carries beyond its columns, key and NOT NULL,
    in the scope's global names: indexes, foreign keys (to tables of the
    scope) and column defaults (values in canonical wire form, by column;
    a column absent has none, or NULL)."""

    indexes: tuple[IndexSpec, ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = ()
    defaults: Mapping[str, Value] = field(default_factory=dict)


@dataclass
class LocalConstraints:
    """One table's constraints as a reader finds them, in local names; a
    foreign key's ``parent`` is the index of a scope table, as a string.
    ``uncarried`` names the columns whose default is not carried."""

    indexes: list[IndexSpec] = field(default_factory=list)
    foreign_keys: list[ForeignKeySpec] = field(default_factory=list)
    defaults: dict[str, Value] = field(default_factory=dict)
    uncarried: set[str] = field(default_factory=set)


_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?\d+")


def default_value(kind: str, text: str, vtype: ValueType) -> tuple[bool, Value]:
    """A literal default for a column of canonical type ``vtype``: ``kind``
    is ``"string"`` (``text`` unescaped), ``"number"``, ``"bool"`` (``text``
    ``true``/``false``) or ``"null"``. Returns ``(carried, value)``: the
    value in canonical wire form, or ``(False, None)`` for a literal this
    type's column does not carry (see the module docstring)."""
    if kind == "null":
        return True, None
    if vtype is ValueType.TEXT:  # a NUL cannot be written in a SQLite literal
        return (True, text) if kind == "string" and "\0" not in text else (False, None)
    if vtype is ValueType.BOOLEAN:
        if kind == "bool":
            return True, int(text == "true")
        return (True, int(text)) if text in ("0", "1") else (False, None)
    if kind not in ("number", "string") or not _NUMBER.fullmatch(text):
        return False, None
    if vtype is ValueType.INTEGER:
        return (True, int(text)) if _INTEGER.fullmatch(text) else (False, None)
    if vtype is ValueType.REAL:
        f = float(text)
        return (True, f) if math.isfinite(f) else (False, None)
    if vtype is ValueType.DECIMAL:
        return True, text
    return False, None


def in_global_names(
    local: Sequence[TableSchema], glob: Sequence[TableSchema], found: Sequence[LocalConstraints]
) -> tuple[TableConstraints, ...]:
    """``found`` (per scope table, in local names) in the scope's global
    names (``local[i]`` is ``glob[i]`` in local names, column for column),
    keeping what SQLite enforces as the source does: duplicates and an
    index on exactly the key are dropped, and a foreign key is kept only if
    its parent's columns are that parent's key or one of its unique sets and
    a ``SET DEFAULT`` action has its default carried."""
    cols = [dict(zip(lo.columns, gl.columns, strict=True)) for lo, gl in zip(local, glob, strict=True)]
    indexes: list[tuple[IndexSpec, ...]] = []
    for i, f in enumerate(found):
        kept: dict[tuple[str, ...], IndexSpec] = {}
        for ix in sorted(f.indexes, key=lambda x: not x.unique):  # a unique index covers a plain one
            names = tuple(cols[i][c] for c in ix.columns)
            if names != glob[i].key and names not in kept:
                kept[names] = IndexSpec(ix.name, names, ix.unique)
        indexes.append(tuple(kept.values()))
    unique_sets = [
        {frozenset(g.key)} | {frozenset(ix.columns) for ix in ixs if ix.unique}
        for g, ixs in zip(glob, indexes, strict=True)
    ]
    out = []
    for i, f in enumerate(found):
        fks = []
        for fk in f.foreign_keys:
            p = int(fk.parent)
            parent_cols = tuple(cols[p][c] for c in fk.parent_columns)
            if frozenset(parent_cols) not in unique_sets[p]:
                continue
            if "SET DEFAULT" in (fk.on_delete, fk.on_update) and f.uncarried & set(fk.columns):
                continue
            own = tuple(cols[i][c] for c in fk.columns)
            fks.append(ForeignKeySpec(own, glob[p].name, parent_cols, fk.on_delete, fk.on_update, fk.deferred))
        defaults = {cols[i][c]: v for c, v in f.defaults.items() if v is not None}
        out.append(TableConstraints(indexes[i], tuple(fks), defaults))
    return tuple(out)
