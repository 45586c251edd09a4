"""What every SQL adapter's tracked tables and scopes share: the names of a
tracked table's objects, and a scope's fields."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from peersync._engine.errors import TableError
from peersync._engine.model import TableSchema
from peersync._engine.names import Names

from .meta import PREFIX


class TrackedNames:
    """Mixed into an adapter's ``Tracked`` dataclass (which holds ``schema``):
    the user table's name, its tracking table's, and the tracking table's key
    columns ``k0, k1, ...`` (one per user key column, in key order)."""

    schema: TableSchema

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def tracking(self) -> str:
        return PREFIX + "t_" + self.schema.name

    @property
    def kcols(self) -> list[str]:
        return [f"k{i}" for i in range(len(self.schema.key))]


def user_table(
    row: Sequence[Any] | None, table: str, table_kinds: Collection[str], reserved: Sequence[str] = (PREFIX,)
) -> Sequence[Any]:
    """``row``, the catalog's entry ``(name, kind, ...)`` for the table a user
    named ``table`` (None when there is none). Raises
    :class:`~peersync.TableError` when there is none, when it is not a table
    (its kind is not in ``table_kinds``: a view, ...), or when its name starts
    with a ``reserved`` prefix, whatever the letter case."""
    if row is None:
        raise TableError(f"no such table: {table}")
    name, kind = row[0], row[1]
    if kind not in table_kinds:
        raise TableError(f"{name} is a {kind.lower()}, not a table")
    for prefix in reserved:
        if name.lower().startswith(prefix):
            raise TableError(f"table {name}: names starting with {prefix} are reserved; rename the table to sync it")
    return row


class HasSchema(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def schema(self) -> TableSchema: ...


T = TypeVar("T", bound=HasSchema)


@dataclass
class ScopeBase(Generic[T]):
    """A provisioned scope as a connection last read it (an adapter's
    ``Scope`` adds what its apply wants to know)."""

    name: str
    idx: int  # its index in _peersync_scopes (pending rows refer to it)
    rid: bytes  # its replica id in this database
    fingerprint: str
    tables: list[T]  # parents before children
    schemas: dict[str, TableSchema] = field(init=False, default_factory=dict)  # by local name
    # This database's names where they differ from the scope's global ones
    # (set by the loader); the Peer calls translate with it at their boundary.
    names: Names = field(init=False, default_factory=Names)

    def __post_init__(self) -> None:
        self.schemas = {t.name: t.schema for t in self.tables}

    def global_schemas(self) -> list[TableSchema]:
        """The tables' shapes in the scope's global names, parents first."""
        return [self.names.schema_out(t.schema) for t in self.tables]
