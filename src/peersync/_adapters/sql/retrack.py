"""What ``migrate`` and ``repair`` check before they touch a server scope's
triggers, as every server adapter does (SQLite keeps its own, in one
transaction with its collation checks).

Each function works through a :class:`~peersync._adapters.sql.meta.Meta`
inside the caller's transaction; introspection and the messages that name
the adapter's commands come in as arguments.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from peersync._engine.errors import SchemaMismatch, ScopeError, TableError
from peersync._engine.model import TableSchema
from peersync._engine.schema import dependency_order, fingerprint

from .meta import PREFIX, Meta
from .scopes import definition


class Retrackable(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def schema(self) -> TableSchema: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...

    @property
    def tid(self) -> int: ...


Tab = TypeVar("Tab", bound=Retrackable)


@dataclass
class RetrackPlan(Generic[Tab]):
    """A scope's tables as they are now, against what was stored."""

    names: list[str]  # the scope's tables, as stored (how the adapter names them)
    stored_fp: str
    current: list[Tab]  # introspected now, parents first, with their tracked ids
    fp: str  # their fingerprint now
    definitions: dict[str, str]  # each table's stored definition, by stored name
    define: Callable[[Tab], str]  # a table's definition as the adapter stores it
    ident: Callable[[Tab], str]  # a table's stored name

    @property
    def reshaped(self) -> bool:
        return self.fp != self.stored_fp

    def changed(self, t: Tab) -> bool:
        """Whether ``t``'s columns changed since its triggers were made."""
        return self.definitions[self.ident(t)] != self.define(t)


def migrate_command(where: str, scope: str, tables: Sequence[str]) -> str:
    flags = " ".join(f"--table {shlex.quote(t)}" for t in tables)
    return f"peersync init {shlex.quote(where)} --scope {shlex.quote(scope)} {flags} --migrate"


def keep_tables(asked: set[str] | None, names: Sequence[str], scope: str, where: str) -> None:
    """Migrating keeps a scope's tables: ``asked`` (the tables named, None when
    none were) must be the scope's ``names``. Raises :class:`ScopeError`."""
    if asked is not None and asked != set(names):
        raise ScopeError(
            f"migrating keeps a scope's tables: scope {scope!r} in {where} has {', '.join(names)};"
            " to add or remove tables, provision another scope"
        )


def plan_retrack(
    meta: Meta,
    scope: str,
    where: str,
    introspect: Callable[[str], Tab],
    *,
    migrate: bool,
    tables: Sequence[str] | None,
    define: Callable[[Tab], str] = lambda t: definition(t.schema),
    ident: Callable[[Tab], str] = lambda t: t.name,
    key_shape: Callable[[str], list[tuple[str, str]]] | None = None,
) -> RetrackPlan[Tab]:
    """Introspect ``scope``'s tables for ``migrate`` (or ``repair``) and check
    what cannot be done. Raises :class:`~peersync.ScopeError` for an unknown
    scope, ``tables`` other than the scope's, or a changed primary key (its
    columns or their types), and :class:`~peersync.SchemaMismatch` for a
    missing table, or for a changed shape when not migrating. ``define``,
    ``ident`` and ``key_shape`` (the key columns and types of a stored
    definition) are the adapter's way of storing tables."""
    row = None
    if meta.has_meta():
        row = meta.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
    if row is None:
        raise ScopeError(f"unknown scope {scope!r} in {where}")
    names, stored_fp = json.loads(row[0]), str(row[1])
    local = meta.names(scope)
    tracked = {r[0]: (r[1], int(r[2])) for r in meta.execute(f"SELECT tbl, definition, id FROM {PREFIX}tracked")}
    try:
        current = dependency_order([replace(introspect(n), tid=tracked[n][1]) for n in names])  # type: ignore[type-var]
        # tables given by their global names (a mapped one is found among the scope's own)
        by_global = {local.global_table(t.name): ident(t) for t in current}
        asked = None if tables is None else {by_global.get(n) or ident(introspect(n)) for n in tables}
    except TableError as exc:
        raise SchemaMismatch(f"scope {scope!r} in {where}: {exc}") from exc
    keep_tables(asked, names, scope, where)
    # the fingerprint is over the scope's global names (tables given are global too)
    plan = RetrackPlan(names, stored_fp, current, fingerprint([local.schema_out(t.schema) for t in current]),
                       {n: tracked[n][0] for n in names}, define, ident)  # fmt: skip
    if plan.reshaped and not migrate:
        raise SchemaMismatch(
            f"the tables of scope {scope!r} in {where} changed shape; run '{migrate_command(where, scope, names)}'"
            " (repair keeps the shape)"
        )
    shape = key_shape or _key_shape
    for t in current:
        before = shape(plan.definitions[ident(t)])
        after = shape(define(t))
        if before != after:
            raise ScopeError(key_changed(t.name, scope, _show(before), _show(after)))
    return plan


def key_changed(table: str, scope: str, before: str, after: str) -> str:
    return (
        f"the primary key of table {table} changed ({before} -> {after}): peersync identifies rows by their key,"
        f" so this cannot be migrated; sync every peer until they agree, then deprovision scope {scope!r} and"
        " provision it again on each"
    )


def save_retrack(meta: Meta, scope: str, plan: RetrackPlan[Tab]) -> None:
    """Store the scope's new shape: its fingerprint, its tables' order and definitions."""
    for t in plan.current:
        meta.execute(f"UPDATE {PREFIX}tracked SET definition = ? WHERE tbl = ?", (plan.define(t), plan.ident(t)))
    order = json.dumps([plan.ident(t) for t in plan.current])
    meta.execute(f"UPDATE {PREFIX}scopes SET fingerprint = ?, tables = ? WHERE name = ?", (plan.fp, order, scope))


def _key_shape(stored: str) -> list[tuple[str, str]]:
    cols, key, types = json.loads(stored)
    return [(k, types[cols.index(k)]) for k in key]


def _show(key: list[tuple[str, str]]) -> str:
    return ", ".join(f"{c} {t}" for c, t in key)
