"""What an in-memory database holds: tables, their tracking, one tick counter,
and per scope its replica id, knowledge, pending changes and conflict log.

The shapes mirror the model (docs/design.md, SEMANTICS.md "Vocabulary"): a
tracking row per synced row, tombstones included, with the local tick of its
last change, where that change came from, its creation version, its change
time and whether it is a tombstone. Nothing here talks to a peer; the files
beside this one read and change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import Conflict, TableSchema, Value

Key = tuple[Value, ...]
Row = tuple[Value, ...]  # every column, in table order
# A creation version whose replica is None was made here, as a local change:
# each scope reports it under its own replica id (SEMANTICS.md, "Tracking row").
Creation = tuple[bytes | None, int]


@dataclass
class Track:
    """The tracking row of one synced row (deleted rows too, as tombstones).

    ``origin``/``via``: the change's version and the scope it arrived
    through, both None for a local change (then each scope reports the change
    as ``(its replica id, lt)``). ``creation`` is None while it equals the
    version of this very change. ``made_with`` records, for a row applied from
    a session that has not completed here, the knowledge its source had: the
    row's version supersedes that much, more than this replica's own knowledge
    may say yet (the scope that holds the record is ``made_with[0]``).
    """

    lt: int
    origin: Version | None
    via: str | None
    creation: Creation | None
    time: int
    deleted: bool
    made_with: tuple[str, Knowledge] | None = None

    def version(self, scope: str, rid: bytes) -> Version:
        """The version as ``scope`` (replica ``rid``) reports it."""
        if self.via == scope and self.origin is not None:
            return self.origin
        return (rid, self.lt)

    def creation_in(self, scope: str, rid: bytes) -> Version:
        if self.creation is None:
            return self.version(scope, rid)
        crid, tick = self.creation
        return (rid if crid is None else crid, tick)

    def record(self, scope: str) -> Knowledge | None:
        """The made-with record this row points to, as ``scope`` sees records."""
        return self.made_with[1] if self.made_with is not None else None


@dataclass
class Table:
    schema: TableSchema
    rows: dict[Key, Row] = field(default_factory=dict)
    tracking: dict[Key, Track] = field(default_factory=dict)

    def key_of(self, row: Row) -> Key:
        return tuple(row[p] for p in self.schema.key_positions)

    def as_dict(self, row: Row) -> dict[str, Value]:
        return dict(zip(self.schema.columns, row, strict=True))


@dataclass(frozen=True)
class Pending:
    """A change kept out of knowledge (deferred, failed): its row, its version
    and the source's local tick for it (SEMANTICS.md, "Exclusions persist")."""

    table: str
    key: Key
    version: Version
    source: Version


@dataclass
class ScopeData:
    name: str
    rid: bytes
    tables: list[str]
    fingerprint: str
    knowledge: Knowledge = field(default_factory=Knowledge.empty)  # of other replicas only
    forgotten: Knowledge = field(default_factory=Knowledge.empty)
    pending: set[Pending] = field(default_factory=set)
    conflicts: list[Conflict] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)

    def pending_knowledge(self) -> Knowledge:
        return Knowledge.from_versions(v for p in self.pending for v in (p.version, p.source))


def same_row(a: Row, b: Row) -> bool:
    """Equal values of equal types (1 and 1.0 differ, as SQLite storage classes do)."""
    return all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))
