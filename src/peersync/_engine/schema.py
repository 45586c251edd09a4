"""Scope shapes across databases: the schema fingerprint and the order tables apply in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from .model import TableSchema


def difference(a: dict[str, TableSchema], b: dict[str, TableSchema], name_a: str, name_b: str) -> str:
    """What first tells two shapes of one scope apart, and what fixes it, in
    words: other tables, another primary key (no migration can change a key:
    rows are known by it), other columns (a migration). ``a`` and ``b`` are
    the peers' :meth:`~peersync.Peer.schemas`, ``name_a`` and ``name_b`` how
    to call the peers."""
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a or only_b:
        said = "; ".join(f"only {who} has {', '.join(t)}" for who, t in ((name_a, only_a), (name_b, only_b)) if t)
        return (
            f"they track other tables ({said}): a scope names the same tables on every peer; deprovision it where"
            " it is wrong and provision it again with the same tables"
        )
    for name in sorted(a):
        ta, tb = a[name], b[name]
        if ta.key != tb.key:
            return (
                f"the primary key of table {name} differs ({', '.join(ta.key)} against {', '.join(tb.key)}): a"
                " migration cannot change a key (rows are known by it); give the table the same key on every"
                " peer, then deprovision the scope and provision it again where the key changed"
            )
    for name in sorted(a):
        sa = [f"{c.name} {c.type.value}" for c in a[name].specs] or list(a[name].columns)
        sb = [f"{c.name} {c.type.value}" for c in b[name].specs] or list(b[name].columns)
        if sa != sb:
            return f"the columns of table {name} differ ({name_a}: {', '.join(sa)}; {name_b}: {', '.join(sb)})"
    return "their stored shapes differ"


def digest(shape: Iterable[list[Any]]) -> str:
    """16 hex digits of SHA-256 over ``shape`` (one JSON-able list per table,
    its name first), sorted so table order does not matter."""
    text = json.dumps(sorted(shape), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(tables: Iterable[TableSchema]) -> str:
    """A short hash of a scope's shape, equal on peers that can exchange batches.

    It covers, per table: the name, each column's name and canonical type
    (:class:`~peersync._engine.types.ValueType`) in table order, and the key
    columns. It leaves out what may differ between databases that hold the
    same data: the database's spelling of a type (``INT``, ``BIGINT``,
    ``int8``), lengths, precision, nullability, defaults, constraints and
    indexes. A value that does not fit at a destination fails there as an
    ``error`` conflict.

    For tables of integer, real and text columns only, the hash is the one
    peersync computed from SQLite affinities before it had a type
    vocabulary (the same names hash the same way), so those scopes keep
    their stored fingerprint.

    Raises ValueError for a table without column descriptions (``specs``).
    """
    shape = []
    for t in tables:
        if len(t.specs) != len(t.columns) or not t.columns:
            raise ValueError(f"table {t.name}: no canonical type for its columns")
        shape.append([t.name, [[c.name, c.type.value] for c in t.specs], list(t.key)])
    return digest(shape)


class Dependent(Protocol):
    """A table that may reference other tables through foreign keys."""

    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...


D = TypeVar("D", bound=Dependent)


def dependency_order(tables: Iterable[D]) -> list[D]:
    """Parents before children (foreign keys inside the set); cycles keep
    input order. Names compare without letter case, as SQL names do."""
    items = list(tables)
    by_name = {t.name.lower(): t for t in items}
    done: list[D] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(t: D) -> None:
        key = t.name.lower()
        if key in seen or key in visiting:
            return
        visiting.add(key)
        for dep in t.depends_on:
            parent = by_name.get(dep.lower())
            if parent is not None and parent is not t:
                visit(parent)
        visiting.discard(key)
        seen.add(key)
        done.append(t)

    for t in items:
        visit(t)
    return done
