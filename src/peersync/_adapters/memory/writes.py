"""Local writes to an in-memory database, tracked as the SQLite triggers track
a foreign writer's (SEMANTICS.md promise 8, "Foreign writers count").

Each change that really changes a row takes the next tick of the database's
one counter and becomes a local change: its version is ``(replica id, tick)``
in every scope (``Track.origin`` None). Its change time is ``max(now,
previous + 1)``, so times only grow along a row's history and a change made on
top of another always compares later under last writer wins, whatever the
clock says. A change to a live row keeps its incarnation's creation version;
an insert on a tombstone starts a new incarnation. A write that changes
nothing (the same values, of the same types) takes no tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from peersync._engine.errors import TableError
from peersync._engine.model import Value

from .state import Creation, Key, Row, ScopeData, Table, Track, same_row


@dataclass
class Store:
    """One in-memory database: tables, one tick counter, scopes."""

    name: str
    now: Callable[[], int]
    tables: dict[str, Table] = field(default_factory=dict)
    scopes: dict[str, ScopeData] = field(default_factory=dict)
    clock: int = 0  # the newest tick: it only grows
    logged: int = 0  # conflict log ids, shared by every scope

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise TableError(f"no table {name!r} in memory database {self.name!r}") from None

    def tick(self) -> int:
        self.clock += 1
        return self.clock


def kept_creation(prev: Track, *, restart_on_tombstone: bool = True) -> Creation | None:
    """The creation version a new change on top of ``prev`` keeps: the current
    incarnation's (the change ``prev`` itself, when it was the creation), or
    none after a tombstone (a new incarnation starts)."""
    if prev.deleted and restart_on_tombstone:
        return None
    if prev.creation is not None:
        return prev.creation
    if prev.origin is not None:
        return prev.origin
    return (None, prev.lt)


def _stamp(store: Store, t: Table, key: Key, deleted: bool, creation: Creation | None, at: int | None) -> Track:
    prev = t.tracking.get(key)
    now = store.now() if at is None else at
    time = now if prev is None else max(now, prev.time + 1)
    track = Track(store.tick(), None, None, creation, time, deleted, prev.made_with if prev else None)
    t.tracking[key] = track
    return track


def _full_row(t: Table, values: Mapping[str, Value]) -> Row:
    s = t.schema
    unknown = set(values) - set(s.columns)
    if unknown:
        raise TableError(f"table {s.name} has no column {', '.join(sorted(unknown))}")
    if any(values.get(k) is None for k in s.key):
        raise TableError(f"table {s.name}: a row needs every key column ({', '.join(s.key)})")
    return tuple(values.get(c) for c in s.columns)


def insert(store: Store, table: str, values: Mapping[str, Value], at: int | None = None) -> None:
    """Insert a row; raises :class:`~peersync.TableError` if its key is live."""
    t = store.table(table)
    row = _full_row(t, values)
    key = t.key_of(row)
    if key in t.rows:
        raise TableError(f"table {table}: key {key!r} exists")
    _stamp(store, t, key, False, None, at)
    t.rows[key] = row


def update(store: Store, table: str, key: Key, values: Mapping[str, Value], at: int | None = None) -> bool:
    """Set some non-key columns of a live row; True if anything changed."""
    t = store.table(table)
    if key not in t.rows:
        raise TableError(f"table {table}: no row with key {key!r}")
    if any(k in values for k in t.schema.key):
        raise TableError(f"table {table}: a key cannot change (delete the row and insert another)")
    old = t.rows[key]
    new = _full_row(t, {**t.as_dict(old), **values})
    if same_row(old, new):
        return False
    _stamp(store, t, key, False, kept_creation(t.tracking[key]), at)
    t.rows[key] = new
    return True


def delete(store: Store, table: str, key: Key, at: int | None = None) -> bool:
    """Delete a live row, leaving a tombstone; False if there was none."""
    t = store.table(table)
    if key not in t.rows:
        return False
    _stamp(store, t, key, True, kept_creation(t.tracking[key]), at)
    del t.rows[key]
    return True


def upsert(store: Store, table: str, values: Mapping[str, Value], at: int | None = None) -> bool:
    """Insert the row, or update it to these values; True if anything changed."""
    t = store.table(table)
    row = _full_row(t, values)
    key = t.key_of(row)
    if key not in t.rows:
        insert(store, table, values, at)
        return True
    return update(store, table, key, {c: v for c, v in values.items() if c not in t.schema.key}, at)
