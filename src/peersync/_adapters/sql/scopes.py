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
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from peersync._engine.errors import RepairNeeded, SchemaMismatch, ScopeError, TableError
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import ReplicaInfo, TableSchema
from peersync._engine.names import Names
from peersync._engine.schema import dependency_order, fingerprint

from .finals import drop_finals
from .meta import NAMES, PENDING, PREFIX, Meta, now_ms
from .tracked import ScopeBase


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


def plan_named(
    tables: Sequence[str], introspect: Callable[[str], Tab], names: Names, stored: Callable[[Tab], str] | None = None
) -> tuple[list[Tab], list[str], Names]:
    """The tables of a new scope over ``tables`` (global names), each
    introspected under its local name, without repeats and parents first;
    their names as the scope row stores them (``stored(table)``, by default
    the table's name); and ``names`` checked against them and spelled as this
    database spells its tables and columns. Raises
    :class:`~peersync.ScopeError` for a mapped table outside ``tables`` and
    :class:`~peersync.TableError` for a missing table or column."""
    named = stored or (lambda t: t.name)
    names.check_tables(list(tables))
    found: dict[str, Tab] = {}
    for g in tables:
        t = introspect(names.local_table(g))
        names = names.resolved(g, t.schema)
        found.setdefault(named(t), t)
    wanted = dependency_order(list(found.values()))
    return wanted, [named(t) for t in wanted], names


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
) -> tuple[int, bytes, str, list[T], Names]:
    """Scope ``name`` of the database at ``where`` (its URL or path, for
    messages): its index, replica id, stored fingerprint, tables (each
    introspected by ``introspect(table, tracked id)``) and local names.
    Raises :class:`~peersync.ScopeError` for an unknown scope and
    :class:`~peersync.SchemaMismatch` for a missing table, or tables whose
    shape in global names no longer ``holds`` the stored fingerprint
    (``changed(tables)`` is the message)."""
    if not meta.has_meta():
        raise ScopeError(f"{where} has no peersync scopes; run 'peersync init' first")
    row = meta.execute(f"SELECT idx, replica_id, tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (name,))
    row = row.fetchone()
    if row is None:
        raise ScopeError(f"unknown scope {name!r} in {where}")
    idx, rid, tables_json, fp = row
    names = meta.names(name)
    try:
        tids = meta.tracked_ids()
        tables = [introspect(t, tids[t]) for t in json.loads(tables_json)]
        shapes = [names.schema_out(t.schema) for t in tables]
    except TableError as exc:
        raise SchemaMismatch(f"scope {name!r} in {where}: {exc}") from exc
    if not holds(fp, shapes):
        raise SchemaMismatch(changed([t.schema.name for t in tables]))
    return int(idx), bytes(rid), fp, tables, names


@dataclass(frozen=True)
class Plan(Generic[Tab]):
    """What provisioning a new scope tracks (:func:`start_provision`)."""

    tables: list[Tab]  # introspected, parents first
    stored: list[str]  # their names as the scope row stores them
    fingerprint: str  # over the scope's global names
    names: Names  # the local names, resolved

    def insert_scope(self, meta: Meta, scope: str, **more: int) -> None:
        """The scope row, once every table is tracked (:func:`insert_scope`)."""
        insert_scope(meta, scope, self.stored, self.fingerprint, self.names, **more)


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
    names: Names | None = None,
) -> Plan[Tab] | None:
    """Plan provisioning ``scope`` over ``tables`` (global names) with local
    ``names`` (:func:`plan_named`; ``stored`` as there). None when the scope exists already over the same tables and
    names, whose shape ``holds`` its stored fingerprint (provisioning again
    is then a no-op). Raises :class:`~peersync.RepairNeeded` when it does but
    ``faults(tables, tracked ids)`` finds triggers to repair, and
    :class:`~peersync.ScopeError` when it exists with other tables, other
    names (or, given ``changed_msg``, the same tables reshaped)."""
    wanted, local, resolved = plan_named(tables, introspect, names or Names(), stored)
    shapes = [resolved.schema_out(t.schema) for t in wanted]
    fp = fingerprint(shapes)
    row = meta.execute(f"SELECT tables, fingerprint FROM {PREFIX}scopes WHERE name = ?", (scope,)).fetchone()
    if row is None:
        return Plan(wanted, local, fp, resolved)
    same = sorted(json.loads(row[0])) == sorted(local)
    kept = meta.names(scope)
    if same and kept != resolved:
        raise ScopeError(
            f"scope {scope!r} already exists in {where} with other names"
            f" ({json.dumps(kept.to_mapping()) if kept else 'none'}); names are not changed in place:"
            " deprovision the scope (the data stays) and init it again with the new names"
        )
    if same and holds(row[1], shapes):
        found = faults(wanted, meta.tracked_ids())
        if found:
            raise RepairNeeded(fault_msg(found))
        return None
    if same and changed_msg is not None:
        raise ScopeError(changed_msg(local))
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


def insert_scope(meta: Meta, scope: str, names: list[str], fp: str, local: Names | None = None, **more: int) -> None:
    """The new scope's row: a fresh replica id, empty knowledge, its tables
    (local names) in dependency order, its ``local`` names where they
    differ; ``more`` fills adapter-specific integer columns."""
    empty = Knowledge.empty().to_bytes()
    cols = ["name", "idx", "replica_id", "tables", "fingerprint", "knowledge", "forgotten", "created_at", *more]
    values = [scope, next_id(meta, "scopes", "idx"), os.urandom(16), json.dumps(names), fp, empty, empty, now_ms()]
    meta.execute(
        f"INSERT INTO {PREFIX}scopes ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        (*values, *more.values()),
    )
    if local:
        meta.save_names(scope, local)


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
    log, applied blocks, partial records, pending changes, recorded final
    batches and, with ``sessions``, its finished sessions."""
    for table in ("scopes", "conflicts", "applied", "partial", *(("sessions",) if sessions else ())):
        column = "name" if table == "scopes" else "scope"
        meta.execute(f"DELETE FROM {PREFIX}{table} WHERE {column} = ?", (scope,))
    meta.execute(f"DELETE FROM {PENDING} WHERE scope = ?", (idx,))
    if meta.execute(meta.d.table_exists, (NAMES,)).fetchone() is not None:
        meta.execute(f"DELETE FROM {NAMES} WHERE scope = ?", (scope,))
    drop_finals(meta, scope)


def tables_in_use(meta: Meta) -> set[str]:
    """The tables some scope still tracks."""
    return {t for (ts,) in meta.execute(f"SELECT tables FROM {PREFIX}scopes").fetchall() for t in json.loads(ts)}


def described(scope: str, sc: ScopeBase[Any], tick: int, stored: Knowledge, forgotten: Knowledge) -> ReplicaInfo:
    """What :meth:`Peer.describe` reports for ``scope`` (loaded as ``sc``)
    at the snapshot bound ``tick``: its stored knowledge of other replicas
    plus every tick of its own up to the bound (all that it holds; a
    description's knowledge is never merged, see ``ReplicaInfo``)."""
    k = stored.add_range(sc.rid, 1, tick)
    return ReplicaInfo(scope, sc.rid, tick, k, forgotten, sc.fingerprint, tuple(sc.global_schemas()))
