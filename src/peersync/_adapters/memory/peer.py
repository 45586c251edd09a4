"""The in-memory reference peer: the whole Peer contract over plain Python data.

It is the executable spec of the model: enumeration (``source.py``) and apply
(``apply.py``) follow SEMANTICS.md step by step on the engine's pure rules and
batch format, with no SQL, so every adapter's set-based apply can be checked
against it on random batches (tests/property/test_triage_matches_rules.py),
and the conformance suite (tests/conformance) runs every promise against it,
alone and paired with the other kinds.

Databases live in this process, by name: ``open_memory("a")`` twice gives two
handles on one database, as two connections to one file would be (the URL is
``memory://a``). A handle's local write API (:meth:`MemoryPeer.insert`,
``update``, ``delete``, ``upsert``) plays the part of a foreign writer: every
change it makes is tracked, as triggers track plain SQL.

>>> from peersync._adapters.memory import open_memory  # doctest: +SKIP
>>> a = open_memory("a")  # doctest: +SKIP
>>> a.create_table(TableSchema("item", ("id", "name"), ("id",), ("integer", "text")))  # doctest: +SKIP
>>> a.provision("s", ["item"])  # doctest: +SKIP
>>> a.insert("item", {"id": 1, "name": "pen"})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from peersync._engine import model
from peersync._engine.errors import ConfigurationError, InvalidURL, ScopeError, StorageError, TableError
from peersync._engine.knowledge import REPLICA_ID_BYTES, Knowledge
from peersync._engine.names import NamesArg
from peersync._engine.peer import Handle
from peersync._engine.schema import fingerprint
from peersync._engine.types import SQLITE_AFFINITY_TYPES, Column

from . import writes
from .apply import Apply, log_conflicts, save_knowledge
from .source import read_batch
from .state import Key, Pending, ScopeData, Table, Track
from .writes import Store

SCHEME = "memory"
_STORES: dict[str, Store] = {}


def _wall_ms() -> int:
    return int(time.time() * 1000)


def open_memory(name: str, *, now: Callable[[], int] | None = None) -> MemoryPeer:
    """A handle on the in-memory database ``name``, made empty on first use.

    ``now`` (milliseconds since the epoch) replaces the wall clock of the
    database's change times from then on: tests use it as a fake clock."""
    if not name:
        raise StorageError("a memory database needs a name: memory://NAME")
    store = _STORES.setdefault(name, Store(name, _wall_ms))
    if now is not None:
        store.now = now
    return MemoryPeer(store)


def open_memory_url(url: str, **options: Any) -> MemoryPeer:
    """The registry's opener for ``memory://NAME``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != SCHEME or not parts.netloc or parts.path not in ("", "/"):
        raise InvalidURL(f"bad memory URL {url!r}: write memory://NAME")
    if options:
        raise InvalidURL(f"memory databases take no option {', '.join(sorted(options))}")
    return open_memory(parts.netloc)


def drop_memory(name: str) -> None:
    """Forget the in-memory database ``name`` (handles on it keep their data)."""
    _STORES.pop(name, None)


class MemoryPeer(Handle):
    """A handle on one in-memory database, as a peersync peer."""

    def __init__(self, store: Store) -> None:
        self._store: Store | None = store
        self.url = f"{SCHEME}://{store.name}"

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StorageError(f"{self.url} is closed")
        return self._store

    def _scope(self, scope: str) -> ScopeData:
        try:
            return self.store.scopes[scope]
        except KeyError:
            raise ScopeError(f"unknown scope {scope!r} in {self.url}") from None

    # -- the database's own shape -------------------------------------------------
    def create_table(self, schema: model.TableSchema) -> None:
        """Declare a table (idempotent for the same shape). Every write to it
        is tracked. Without column descriptions (``specs``), each column's
        canonical type is read from ``types`` as SQLite affinities."""
        if not schema.specs:
            try:
                specs = tuple(
                    Column(c, SQLITE_AFFINITY_TYPES[t]) for c, t in zip(schema.columns, schema.types, strict=True)
                )
            except (KeyError, ValueError):
                raise TableError(f"table {schema.name}: types are integer, real, text, blob or numeric") from None
            schema = model.TableSchema(schema.name, schema.columns, schema.key, schema.types, specs)
        have = self.store.tables.get(schema.name)
        if have is not None:
            if have.schema != schema:
                raise TableError(f"table {schema.name} exists in {self.url} with another shape")
            return
        if not schema.key or not set(schema.key) <= set(schema.columns):
            raise TableError(f"table {schema.name} needs a primary key among its columns")
        self.store.tables[schema.name] = Table(schema)

    def provision(
        self, scope: str, tables: Sequence[str], *, replica_id: bytes | None = None, names: NamesArg = None
    ) -> bool:
        """Create ``scope`` over ``tables``; False if it exists with the same
        tables (idempotent). ``replica_id`` (16 bytes) is for tests that run
        two stores as one replica; by default it is random. Its tables have
        the scope's global names: ``names`` that map any is refused."""
        if names:  # a path or a mapping: the in-memory peer reads no names file
            raise ConfigurationError("the in-memory peer's tables have the scope's global names: no names file")
        if isinstance(tables, str) or not scope or not tables:
            raise ScopeError("a scope needs a name and a list of at least one table")
        tables_here = [self.store.table(n).schema.name for n in tables]
        have = self.store.scopes.get(scope)
        if have is not None:
            if sorted(have.tables) != sorted(tables_here):
                raise ScopeError(f"scope {scope!r} already exists in {self.url} with tables {', '.join(have.tables)}")
            return False
        rid = os.urandom(REPLICA_ID_BYTES) if replica_id is None else replica_id
        if len(rid) != REPLICA_ID_BYTES:
            raise ScopeError("a replica id has 16 bytes")
        fp = fingerprint([self.store.tables[n].schema for n in tables_here])
        self.store.scopes[scope] = ScopeData(scope, rid, tables_here, fp)
        return True

    # -- local writes (a foreign writer) -------------------------------------------
    def insert(self, table: str, values: Mapping[str, model.Value], *, at: int | None = None) -> None:
        writes.insert(self.store, table, values, at)

    def update(self, table: str, key: Key, values: Mapping[str, model.Value], *, at: int | None = None) -> bool:
        return writes.update(self.store, table, tuple(key), values, at)

    def delete(self, table: str, key: Key, *, at: int | None = None) -> bool:
        return writes.delete(self.store, table, tuple(key), at)

    def upsert(self, table: str, values: Mapping[str, model.Value], *, at: int | None = None) -> bool:
        return writes.upsert(self.store, table, values, at)

    # -- reading, for tests -----------------------------------------------------------
    def rows(self, table: str) -> list[tuple[model.Value, ...]]:
        """The live rows of ``table``, sorted by key."""
        return [row for _, row in sorted(self.store.table(table).rows.items(), key=lambda kv: repr(kv[0]))]

    def tracking(self, table: str) -> dict[Key, Track]:
        """The tracking rows of ``table`` (tombstones included), by key."""
        return dict(self.store.table(table).tracking)

    def tombstones(self, table: str) -> list[Key]:
        return sorted((k for k, t in self.store.table(table).tracking.items() if t.deleted), key=repr)

    def knowledge(self, scope: str) -> Knowledge:
        sc = self._scope(scope)
        return sc.knowledge.add_range(sc.rid, 1, self.store.clock)

    def pending(self, scope: str) -> set[Pending]:
        return set(self._scope(scope).pending)

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[model.Conflict]:
        """The conflict log of ``scope`` (of every scope when None), oldest first."""
        names = [scope] if scope is not None else self.scopes()
        out = sorted((c for n in names for c in self._scope(n).conflicts), key=lambda c: c.id or 0)
        return out if limit is None else out[:limit]

    def forget_tombstones(self, scope: str) -> int:
        """Clean up the tombstones of ``scope``'s tables: their versions go into
        forgotten knowledge (SEMANTICS.md, "Deletes and cleanup"); returns how
        many. A peer whose knowledge lacks them is then outdated."""
        sc = self._scope(scope)
        gone = []
        for name in sc.tables:
            t = self.store.tables[name]
            for key, track in list(t.tracking.items()):
                if track.deleted:
                    gone.append(track.version(sc.name, sc.rid))
                    del t.tracking[key]
        sc.forgotten = sc.forgotten | Knowledge.from_versions(gone)
        return len(gone)

    # -- management (the Database protocol) ------------------------------------------
    def scopes(self) -> list[str]:
        return sorted(self.store.scopes)

    def deprovision(self, scope: str) -> None:
        """Forget ``scope`` (its knowledge, pending changes, conflict log); rows stay."""
        self._scope(scope)
        del self.store.scopes[scope]

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        """A new replica id for ``scope`` (``moved``: keep it). Local changes
        made so far keep their versions under the old id, which the knowledge
        keeps; new ones are the new id's."""
        sc = self._scope(scope)
        if moved:
            return sc.rid
        old, new = sc.rid, os.urandom(REPLICA_ID_BYTES)
        for name in sc.tables:
            for track in self.store.tables[name].tracking.values():
                if track.via != scope:
                    track.origin, track.via = (old, track.lt), scope
                if track.creation is not None and track.creation[0] is None:
                    track.creation = (old, track.creation[1])
        sc.knowledge = sc.knowledge.add_range(old, 1, self.store.clock) if self.store.clock else sc.knowledge
        sc.rid = new
        return new

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> model.RepairReport:
        """Nothing to migrate: a memory table's shape is fixed when it is created."""
        self._scope(scope)
        return model.RepairReport(scope, False, (), (), 0, 0, 0)

    def repair(self, scope: str, *, restamp: bool = False) -> model.RepairReport:
        """Nothing to repair: every write goes through the tracked write API."""
        self._scope(scope)
        return model.RepairReport(scope, False, (), (), 0, 0, 0)

    def compact(self, scope: str | None = None) -> None:
        """Nothing to compact: there is no change log, only tracking rows."""

    def status(self, scope: str | None = None) -> list[model.Status]:
        out = []
        for name in [scope] if scope is not None else self.scopes():
            sc, tick = self._scope(name), self.store.clock
            tracks = [t for n in sc.tables for t in self.store.tables[n].tracking.values()]
            pending = len({(p.table, p.key) for p in sc.pending})
            out.append(
                model.Status(
                    name, sc.rid, tick, self.knowledge(name), sc.forgotten, sc.fingerprint, tuple(sc.tables),
                    len(tracks), sum(t.deleted for t in tracks), len(sc.conflicts), pending,
                )
            )  # fmt: skip
        return out

    # -- the Peer contract ---------------------------------------------------------
    def describe(self, scope: str) -> model.ReplicaInfo:
        sc = self._scope(scope)
        tables = tuple(self.store.tables[n].schema for n in sc.tables)
        tick = self.store.clock
        return model.ReplicaInfo(
            scope, sc.rid, tick, sc.knowledge.add_range(sc.rid, 1, tick), sc.forgotten, sc.fingerprint, tables
        )

    def schemas(self, scope: str) -> dict[str, model.TableSchema]:
        return {n: self.store.tables[n].schema for n in self._scope(scope).tables}

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return read_batch(self.store, self._scope(scope), known, after, upto, max_rows, max_bytes)[0]

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        while True:
            data, last, final = read_batch(self.store, self._scope(scope), known, after, upto, max_rows, max_bytes)
            yield data
            if final or last >= upto:
                return
            after = last

    def apply(self, scope: str, data: bytes, policy: model.ConflictHandler) -> model.ApplyReport:
        return Apply(self.store, self._scope(scope), policy).run(data)

    def finish(self, scope: str, end: model.SessionEnd) -> Knowledge:
        """End a session (Peer.finish): merge ``end.merge`` minus what stays
        out, forget pending changes the source's knowledge beats, log the
        failures, drop made-with records the knowledge now covers. A retried
        call (same ``end.session``) changes nothing."""
        store, sc = self.store, self._scope(scope)
        if end.session not in sc.sessions:
            sc.sessions.add(end.session)
            merge = end.merge.exclude(end.excluded)
            # The source's row for such a key holds or beats the pending
            # version, and this replica's row holds or beats the source's.
            sc.pending = {p for p in sc.pending if p.version not in merge}
            save_knowledge(sc, sc.knowledge | merge)
            log_conflicts(store, sc, list(end.failures))
            whole = sc.knowledge.add_range(sc.rid, 1, store.clock)
            for name in sc.tables:
                for track in store.tables[name].tracking.values():
                    mw = track.made_with
                    if mw is not None and mw[0] == scope and whole.contains_knowledge(mw[1]):
                        track.made_with = None
        return self.knowledge(scope)

    def close(self) -> None:
        self._store = None
