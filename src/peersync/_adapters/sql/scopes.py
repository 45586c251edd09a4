"""Reading, provisioning and removing a scope's rows, as every SQL adapter does.

Each function works inside the caller's transaction through a
:class:`~peersync._adapters.sql.meta.Meta`; what differs by adapter
(introspection, triggers, the messages that name its own commands) comes in
as arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from peersync._engine.errors import RepairNeeded, SchemaMismatch, ScopeError, TableError
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import TableSchema
from peersync._engine.schema import dependency_order, fingerprint

from .meta import PENDING, PREFIX, Meta, now_ms


class HasSchema(Protocol):
    @property
    def schema(self) -> TableSchema: ...


T = TypeVar("T", bound=HasSchema)


class Introspected(HasSchema, Protocol):
    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...


Tab = TypeVar("Tab", bound=Introspected)
S = TypeVar("S")


def check_provision_args(scope: str, tables: Sequence[str]) -> None:
    """Refuse a ``provision`` call's arguments before touching the database."""
    if isinstance(tables, str):
        raise TableError(f"tables is a list of names, not the string {tables!r}: write [{tables!r}]")
    if not scope or not tables:
        raise ScopeError("a scope needs a name and at least one table")


def plan_tables(
    tables: Sequence[str], introspect: Callable[[str], Tab], stored: Callable[[Tab], str] | None = None
) -> tuple[list[Tab], list[str], str]:
    """The tables a new scope over ``tables`` tracks, introspected, without
    repeats and parents first; their names as the scope row stores them
    (``stored(table)``, by default the table's name); their fingerprint."""
    named = stored or (lambda t: t.name)
    wanted = dependency_order(list({named(t): t for t in (introspect(n) for n in tables)}.values()))
    return wanted, [named(t) for t in wanted], fingerprint([t.schema for t in wanted])


def cached(cache: dict[str, S], name: str, reload: bool, load: Callable[[], S]) -> S:
    """``cache[name]``, loaded (again, with ``reload``) by ``load``."""
    sc = cache.get(name)
    if sc is None or reload:
        sc = cache[name] = load()
    return sc


def load_scope(
    meta: Meta,
    name: str,
    where: str,
    introspect: Callable[[str, int], T],
    holds: Callable[[str, list[TableSchema]], bool],
    changed: Callable[[list[str]], str],
) -> tuple[int, bytes, str, list[T]]:
    """Scope ``name`` of the database at ``where`` (its URL or path, for
    messages): its index, replica id, stored fingerprint and tables, each
    introspected by ``introspect(table, tracked id)``. Raises
    :class:`~peersync.ScopeError` for an unknown scope and
    :class:`~peersync.SchemaMismatch` for a missing table, or tables whose
    shape no longer ``holds`` the stored fingerprint (``changed(tables)`` is
    the message)."""
    if not meta.has_meta():
        raise ScopeError(f"{where} has no peersync scopes; run 'peersync init' first")
    row = meta.execute(f"SELECT idx, replica_id, tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (name,))
    row = row.fetchone()
    if row is None:
        raise ScopeError(f"unknown scope {name!r} in {where}")
    idx, rid, tables_json, fp = row
    try:
        tids = meta.tracked_ids()
        tables = [introspect(t, tids[t]) for t in json.loads(tables_json)]
    except TableError as exc:
        raise SchemaMismatch(f"scope {name!r} in {where}: {exc}") from exc
    if not holds(fp, [t.schema for t in tables]):
        raise SchemaMismatch(changed([t.schema.name for t in tables]))
    return int(idx), bytes(rid), fp, tables


def start_provision(
    meta: Meta,
    scope: str,
    where: str,
    tables: Sequence[str],
    introspect: Callable[[str], Tab],
    holds: Callable[[str, list[TableSchema]], bool],
    faults: Callable[[list[Tab], dict[str, int]], dict[str, str]],
    fault_msg: Callable[[dict[str, str]], str],
    changed_msg: Callable[[list[str]], str] | None = None,
    stored: Callable[[Tab], str] | None = None,
) -> tuple[list[Tab], list[str], str] | None:
    """Plan provisioning ``scope`` over ``tables`` (:func:`plan_tables`);
    None when it exists already over the same tables, whose shape ``holds``
    its stored fingerprint (provisioning again is then a no-op). Raises
    :class:`~peersync.RepairNeeded` when it does but ``faults(tables,
    tracked ids)`` finds triggers to repair, and :class:`~peersync.ScopeError` when
    it exists with other tables (or, given ``changed_msg``, the same tables
    reshaped). ``stored`` is as for :func:`plan_tables`."""
    wanted, names, fp = plan_tables(tables, introspect, stored)
    row = meta.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
    if row is None:
        return wanted, names, fp
    same = sorted(json.loads(row[0])) == sorted(names)
    if same and holds(row[1], [t.schema for t in wanted]):
        found = faults(wanted, meta.tracked_ids())
        if found:
            raise RepairNeeded(fault_msg(found))
        return None
    if same and changed_msg is not None:
        raise ScopeError(changed_msg(names))
    raise ScopeError(
        f"scope {scope!r} already exists in {where} with tables {', '.join(json.loads(row[0]))};"
        " deprovision it first or choose another name"
    )


def definition(schema: TableSchema) -> str:
    """A tracked table's shape as ``_peersync_tracked`` stores it."""
    return json.dumps([list(schema.columns), list(schema.key), list(schema.types)])


def tracked_definition(meta: Meta, schema: TableSchema, advice: str = "") -> bool:
    """Whether ``schema``'s table is tracked already (by another scope), with
    the same definition; :class:`~peersync.ScopeError` if it changed since."""
    row = meta.execute(f"SELECT definition FROM {PREFIX}tracked WHERE tbl = ?", (schema.name,)).fetchone()
    if row is None:
        return False
    if row[0] != definition(schema):
        raise ScopeError(f"table {schema.name} changed since another scope started tracking it{advice}")
    return True


def next_id(meta: Meta, table: str, column: str) -> int:
    """One more than the largest ``column`` in metadata table ``table``,
    locking the rows read where the dialect can."""
    lock = meta.d.for_update if meta.d.lock_max else ""
    (n,) = meta.execute(f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {PREFIX}{table}{lock}").fetchone()
    return int(n)


def insert_scope(meta: Meta, scope: str, names: list[str], fp: str, **more: int) -> None:
    """The new scope's row: a fresh replica id, empty knowledge, its tables
    in dependency order; ``more`` fills adapter-specific integer columns."""
    empty = Knowledge.empty().to_bytes()
    cols = ["name", "idx", "replica_id", "tables", "fingerprint", "knowledge", "forgotten", "created_at", *more]
    values = [scope, next_id(meta, "scopes", "idx"), os.urandom(16), json.dumps(names), fp, empty, empty, now_ms()]
    meta.execute(
        f"INSERT INTO {PREFIX}scopes ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        (*values, *more.values()),
    )


def scope_row(meta: Meta, scope: str, where: str) -> tuple[int, list[str]]:
    """Scope ``scope``'s index and tables; :class:`~peersync.ScopeError` if unknown."""
    row = None
    if meta.has_meta():
        row = meta.execute(f"SELECT idx, tables FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
    if row is None:
        raise ScopeError(f"unknown scope {scope!r} in {where}")
    return int(row[0]), json.loads(row[1])


def delete_scope_rows(meta: Meta, scope: str, idx: int, *, sessions: bool = True) -> None:
    """Every metadata row of ``scope`` (index ``idx``): its row, conflict
    log, applied blocks, partial records, pending changes and, with
    ``sessions``, its finished sessions."""
    for table in ("scopes", "conflicts", "applied", "partial", *(("sessions",) if sessions else ())):
        column = "name" if table == "scopes" else "scope"
        meta.execute(f"DELETE FROM {PREFIX}{table} WHERE {column} = ?", (scope,))
    meta.execute(f"DELETE FROM {PENDING} WHERE scope = ?", (idx,))


def tables_in_use(meta: Meta) -> set[str]:
    """The tables some scope still tracks."""
    return {t for (ts,) in meta.execute(f"SELECT tables FROM {PREFIX}scopes").fetchall() for t in json.loads(ts)}
